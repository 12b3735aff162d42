"""Steps added by plugins: the `register_steps` hook's registry, checked like the connector registry.

A custom step is `function(frame: pl.DataFrame, options) -> pl.DataFrame`; `options` is whatever
follows its name in headwater.yaml.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

from headwater.common.registry import PluginRegistry, RegistrationError, check_metadata, check_name, first_line
from headwater.processing.rules import RULES
from headwater.processing.steps import BUILTIN_STEPS

METADATA_KEYS = frozenset({"description"})


@dataclass(frozen=True)
class CustomStep:
    name: str
    function: Callable[..., Any]
    # The registering plugin (headwater.plugins.connectors.Plugin: name, package, version).
    plugin: Any
    description: str = ""


class StepRegistry(PluginRegistry[CustomStep]):
    """Custom steps by name, filled by the register_steps hook of every plugin."""

    kind = "step"

    def __init__(self) -> None:
        super().__init__(_make_step)

    def reserved(self, name: str) -> str | None:
        if name in BUILTIN_STEPS or name in RULES:
            return "a built-in name; the built-in is kept"
        return None


def _make_step(plugin: Any, name: Any, function: Any, metadata: dict[str, Any]) -> CustomStep:
    name = check_name("step", name)
    if not callable(function):
        raise RegistrationError(f"step {name!r}: expected a function(frame, options), got {type(function).__name__}")
    check_metadata("step", name, metadata, METADATA_KEYS)
    description = metadata.get("description") or inspect.getdoc(function) or ""
    if not isinstance(description, str):
        raise RegistrationError(f"step {name!r}: description must be text, got {type(description).__name__}")
    return CustomStep(name=name, function=function, plugin=plugin, description=first_line(description))

"""Steps added by plugins: the `register_steps` hook's registry, checked like the connector registry.

A custom step is `function(frame: pl.DataFrame, options) -> pl.DataFrame`; `options` is whatever
follows its name in headwater.yaml.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

from headwater.processing.rules import RULES
from headwater.processing.steps import BUILTIN_STEPS

STEP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
METADATA_KEYS = frozenset({"description"})


@dataclass(frozen=True)
class CustomStep:
    name: str
    function: Callable[..., Any]
    # The registering plugin (headwater.connectors.Plugin: name, package, version).
    plugin: Any
    description: str = ""


class StepRegistrationError(ValueError):
    """A plugin called register() with arguments Headwater cannot use."""


class StepRegistry:
    """Custom steps by name, filled by the register_steps hook of every plugin."""

    def __init__(self) -> None:
        self._steps: dict[str, CustomStep] = {}
        self.problems: list[str] = []

    def registrar(self, plugin: Any) -> Callable[..., None]:
        """The `register` callable handed to one plugin's hook implementation."""

        def register(name: str, function: Callable[..., Any], **metadata: Any) -> None:
            source = f"plugin {plugin.name!r} ({plugin.package})"
            try:
                step = _make_step(plugin, name, function, metadata)
            except StepRegistrationError as error:
                self.problems.append(f"{source}: {error}")
                return
            if name in BUILTIN_STEPS or name in RULES:
                self.problems.append(f"{source} registers step {name!r}, a built-in name; the built-in is kept")
            elif name in self._steps:
                first = self._steps[name].plugin
                self.problems.append(
                    f"{source} registers step {name!r}, already registered by plugin {first.name!r} "
                    f"({first.package}); the first registration is kept"
                )
            else:
                self._steps[name] = step

        return register

    def get(self, name: str) -> CustomStep | None:
        return self._steps.get(name)

    def names(self) -> list[str]:
        return sorted(self._steps)

    def __iter__(self):
        return iter(self._steps[name] for name in self.names())


def _make_step(plugin: Any, name: Any, function: Any, metadata: dict[str, Any]) -> CustomStep:
    if not isinstance(name, str) or not STEP_NAME.match(name):
        raise StepRegistrationError(
            f"step name {name!r} is invalid: use lower-case letters, digits and _ (starting with a letter)"
        )
    if not callable(function):
        raise StepRegistrationError(
            f"step {name!r}: expected a function(frame, options), got {type(function).__name__}"
        )
    unknown = sorted(set(metadata) - METADATA_KEYS)
    if unknown:
        raise StepRegistrationError(
            f"step {name!r}: unknown metadata {', '.join(unknown)}; allowed: {', '.join(sorted(METADATA_KEYS))}"
        )
    description = metadata.get("description") or inspect.getdoc(function) or ""
    if not isinstance(description, str):
        raise StepRegistrationError(f"step {name!r}: description must be text, got {type(description).__name__}")
    return CustomStep(
        name=name,
        function=function,
        plugin=plugin,
        description=description.strip().splitlines()[0] if description.strip() else "",
    )

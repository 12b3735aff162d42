"""The connector registry: what a plugin registers, and how a connector's settings are described."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import dlt


@dataclass(frozen=True)
class Setting:
    """One parameter of a connector's source function, which is its config contract."""

    name: str
    annotation: Any
    required: bool
    secret: bool
    default: Any = None

    @property
    def type_name(self) -> str:
        if self.annotation is inspect.Parameter.empty:
            return "any"
        if typing.get_origin(self.annotation) is None and hasattr(self.annotation, "__name__"):
            return self.annotation.__name__
        return str(self.annotation).replace("typing.", "")


@dataclass(frozen=True)
class Connector:
    name: str
    source: Callable[..., Any]
    plugin: str
    description: str = ""
    docs_url: str | None = None
    secret_settings: frozenset[str] = frozenset()
    primary_keys: dict[str, Any] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)
    pii: dict[str, list[str]] = field(default_factory=dict)

    def settings(self) -> list[Setting]:
        """Every parameter the source takes, read from its signature."""
        result = []
        for parameter in _signature(self.source).parameters.values():
            if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            default = parameter.default
            injected = default is dlt.secrets.value or default is dlt.config.value
            result.append(
                Setting(
                    name=parameter.name,
                    annotation=parameter.annotation,
                    required=default is inspect.Parameter.empty or injected,
                    secret=default is dlt.secrets.value or parameter.name in self.secret_settings,
                    default=None if injected or default is inspect.Parameter.empty else default,
                )
            )
        return result


def _signature(source: Callable[..., Any]) -> inspect.Signature:
    """The source's signature with real types, also where the plugin uses `from __future__ import annotations`."""
    signature = inspect.signature(source)
    try:
        hints = typing.get_type_hints(inspect.unwrap(source))
    except Exception:  # an annotation that cannot be evaluated stays a string and is not type-checked
        return signature
    return signature.replace(
        parameters=[
            parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
            for parameter in signature.parameters.values()
        ]
    )


class ConnectorRegistry:
    """Connectors by name, filled by the register_connectors hook of every plugin."""

    def __init__(self) -> None:
        self._connectors: dict[str, Connector] = {}
        self.problems: list[str] = []

    def registrar(self, plugin: str) -> Callable[..., None]:
        """The `register` callable handed to one plugin's hook implementation."""

        def register(name: str, source: Callable[..., Any], **metadata: Any) -> None:
            if name in self._connectors:
                self.problems.append(
                    f"plugin {plugin!r} registers connector {name!r}, already registered by "
                    f"{self._connectors[name].plugin!r}; the first registration is kept"
                )
                return
            description = metadata.pop("description", None) or inspect.getdoc(source) or ""
            secrets = frozenset(metadata.pop("secrets", ()))
            self._connectors[name] = Connector(
                name=name,
                source=source,
                plugin=plugin,
                description=description.strip().splitlines()[0] if description else "",
                secret_settings=secrets,
                **metadata,
            )

        return register

    def get(self, name: str) -> Connector | None:
        return self._connectors.get(name)

    def names(self) -> list[str]:
        return sorted(self._connectors)

    def __iter__(self):
        return iter(self._connectors[name] for name in self.names())

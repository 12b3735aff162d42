"""What plugins register through a `register_*(register)` hook: named things, checked, first one wins.

Connectors, enrichment steps and notifiers share this mechanism; each kind only says how to
turn one `register(name, thing, **metadata)` call into its own record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

T = TypeVar("T")


class RegistrationError(ValueError):
    """A plugin called register() with arguments Headwater cannot use."""


def check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise RegistrationError(
            f"{kind} name {name!r} is invalid: use lower-case letters, digits and _ (starting with a letter)"
        )
    return name


def check_metadata(kind: str, name: str, metadata: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(metadata) - allowed)
    if unknown:
        raise RegistrationError(
            f"{kind} {name!r}: unknown metadata {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def first_line(text: str | None) -> str:
    """A one-line description from a docstring or a given text."""
    text = (text or "").strip()
    return text.splitlines()[0] if text else ""


class PluginRegistry(Generic[T]):
    """Records of one kind by name; a bad or clashing registration is kept in `problems`, never raised."""

    kind = "item"

    def __init__(self, make: Callable[[Any, Any, Any, dict[str, Any]], T]) -> None:
        # make(plugin, name, thing, metadata) -> record, raising RegistrationError when it cannot.
        self._make = make
        self._items: dict[str, T] = {}
        self.problems: list[str] = []

    def reserved(self, name: str) -> str | None:
        """Why a name is not available to plugins, or None."""
        return None

    def registrar(self, plugin: Any) -> Callable[..., None]:
        """The `register` callable handed to one plugin's hook implementation."""
        source = f"plugin {plugin.name!r} ({plugin.package})"

        def register(name: str, thing: Any, **metadata: Any) -> None:
            try:
                record = self._make(plugin, name, thing, metadata)
            except RegistrationError as error:
                self.problems.append(f"{source}: {error}")
                return
            reserved = self.reserved(name)
            if reserved:
                self.problems.append(f"{source} registers {self.kind} {name!r}, {reserved}")
            elif name in self._items:
                first = self._items[name].plugin
                self.problems.append(
                    f"{source} registers {self.kind} {name!r}, already registered by plugin {first.name!r} "
                    f"({first.package}); the first registration is kept"
                )
            else:
                self._items[name] = record

        return register

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items[name] for name in self.names())

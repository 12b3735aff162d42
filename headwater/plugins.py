"""The one plugin manager: built-in connectors and installed plugins register through the same hook."""

from __future__ import annotations

import functools
import importlib.metadata
import os

import pluggy

from headwater import hookspecs
from headwater.connectors import ConnectorRegistry

ENTRY_POINT_GROUP = "headwater"
# Comma-separated plugin names; when set, only these installed plugins load (built-ins always do).
PLUGINS_ENV = "HEADWATER_PLUGINS"


def _new_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("headwater")
    manager.add_hookspecs(hookspecs)
    return manager


@functools.cache
def connector_registry() -> ConnectorRegistry:
    """Load plugins once and collect every connector they register."""
    import connectors as builtin_connectors

    registry = ConnectorRegistry()
    plugins: list[tuple[str, object]] = [("headwater (built-in)", builtin_connectors)]
    allowed = {name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(",") if name.strip()}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed and entry_point.name not in allowed:
            continue
        try:
            plugins.append((entry_point.name, entry_point.load()))
        except Exception as error:  # a broken plugin must not stop the others
            registry.problems.append(f"plugin {entry_point.name!r} failed to import: {error}")

    for plugin_name, module in plugins:
        manager = _new_manager()
        try:
            manager.register(module, name=plugin_name)
            manager.hook.register_connectors(register=registry.registrar(plugin_name))
        except Exception as error:
            registry.problems.append(f"plugin {plugin_name!r} failed to register its connectors: {error}")
    return registry

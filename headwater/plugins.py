"""The one plugin manager: built-in connectors and installed plugins register through the same hook."""

from __future__ import annotations

import functools
import importlib.metadata
import os

import pluggy

from headwater import __version__, hookspecs
from headwater.connectors import ConnectorRegistry, Plugin

ENTRY_POINT_GROUP = "headwater"
# Comma-separated entry-point names; when set, only these installed plugins load (built-ins always do).
PLUGINS_ENV = "HEADWATER_PLUGINS"
BUILTIN = Plugin(name="builtin", package="headwater", version=__version__)


def allowed_plugins() -> set[str] | None:
    value = os.environ.get(PLUGINS_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


@functools.cache
def connector_registry() -> ConnectorRegistry:
    """Load plugins once and collect every connector they register; broken plugins are reported, not fatal."""
    import connectors as builtin_connectors

    registry = ConnectorRegistry()
    plugins: list[tuple[Plugin, object]] = [(BUILTIN, builtin_connectors)]
    allowed = allowed_plugins()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        dist = entry_point.dist
        plugin = Plugin(
            name=entry_point.name,
            package=dist.name if dist else entry_point.value,
            version=dist.version if dist else "",
        )
        try:
            plugins.append((plugin, entry_point.load()))
        except Exception as error:  # a broken plugin must not stop the others
            registry.problems.append(
                f"plugin {plugin.name!r} ({plugin.package}) failed to import {entry_point.value!r}: "
                f"{type(error).__name__}: {error}"
            )

    for plugin, module in plugins:
        # One manager per plugin, so one plugin raising inside the hook cannot hide the others' connectors.
        manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        manager.add_hookspecs(hookspecs)
        try:
            manager.register(module, name=plugin.name)
            manager.hook.register_connectors(register=registry.registrar(plugin))
        except Exception as error:
            registry.problems.append(
                f"plugin {plugin.name!r} ({plugin.package}) failed while registering connectors: "
                f"{type(error).__name__}: {error}"
            )
    return registry

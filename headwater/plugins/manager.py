"""The one plugin manager: built-in connectors and installed plugins register through the same hook."""

from __future__ import annotations

import functools
import importlib.metadata
import os

import pluggy

from headwater import __version__, hookspecs
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from headwater.processing.registry import StepRegistry

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
    plugins: list[tuple[Plugin, object]] = [(BUILTIN, builtin_connectors), *_installed_plugins(registry.problems)]

    for plugin, module in plugins:
        _call_hook(plugin, module, "register_connectors", registry.registrar(plugin), registry.problems)
    return registry


def _call_hook(plugin: Plugin, module: object, hook: str, register, problems: list[str]) -> None:
    """Call one plugin's `hook(register=...)`; a plugin raising inside it is reported by name, not fatal."""
    # One manager per plugin, so one plugin raising inside a hook cannot hide what the others register.
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    try:
        manager.register(module, name=plugin.name)
        getattr(manager.hook, hook)(register=register)
    except Exception as error:
        what = hook.removeprefix("register_")
        problems.append(
            f"plugin {plugin.name!r} ({plugin.package}) failed while registering {what}: "
            f"{type(error).__name__}: {error}"
        )


def _installed_plugins(problems: list[str]) -> list[tuple[Plugin, object]]:
    """Import every allowed `headwater` entry point; one that fails to import is reported, not fatal."""
    plugins: list[tuple[Plugin, object]] = []
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
            problems.append(
                f"plugin {plugin.name!r} ({plugin.package}) failed to import {entry_point.value!r}: "
                f"{type(error).__name__}: {error}"
            )
    return plugins


@functools.cache
def step_registry() -> StepRegistry:
    """Collect every custom enrichment step the installed plugins register (built-in steps need no plugin)."""
    registry = StepRegistry()
    for plugin, module in _installed_plugins(registry.problems):
        register_steps_of(plugin, module, registry)
    return registry


def register_steps_of(plugin: Plugin, module: object, registry: StepRegistry) -> None:
    """Run one plugin's register_steps hook into registry; a plugin raising inside it is reported by name."""
    _call_hook(plugin, module, "register_steps", registry.registrar(plugin), registry.problems)


@functools.cache
def notifier_registry():
    """Collect every alert notifier: the built-ins (headwater.plugins.notifiers) and installed plugins alike."""
    from headwater.plugins import notifiers  # imported on first use: it brings httpx

    registry = notifiers.NotifierRegistry()
    for plugin, module in [(BUILTIN, notifiers), *_installed_plugins(registry.problems)]:
        _call_hook(plugin, module, "register_notifiers", registry.registrar(plugin), registry.problems)
    return registry

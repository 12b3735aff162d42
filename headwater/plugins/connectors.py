"""The connector registry: what a plugin registers, and how a connector's settings are described."""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import dlt

from headwater.common.registry import PluginRegistry, RegistrationError, check_metadata, check_name, first_line

# Metadata a plugin may pass to register(); anything else is a registration error.
METADATA_KEYS = frozenset(
    {"description", "docs_url", "secrets", "primary_keys", "cursors", "pii", "cursor_in_settings", "list_keys",
     "preflight", "acknowledge", "change_feed"}
)


# Source state key under which a streaming connector reports how far its feed trails after a load (a dict, e.g.
# lag_bytes, behind_seconds); each batch of `headwater stream` records it (headwater.ops.stream_batches).
STREAM_LAG = "stream_lag"


def in_load() -> bool:
    """True while dlt extracts into a load package; False when `headwater check` reads a resource's first item, so a
    streaming connector neither consumes nor creates anything then."""
    try:
        dlt.current.load_package_state()
    except Exception:
        return False
    return True


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
        return type_text(self.annotation)


def type_text(annotation: Any) -> str:
    """A type as people write it: `dict[str, str | FileTable]`, without validators, tags or module paths."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(member) for member in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(map(repr, args))}]"
    if annotation is type(None):
        return "None"
    if origin is not None and args:
        return f"{type_text(origin)}[{', '.join(type_text(arg) for arg in args)}]"
    if isinstance(annotation, type) or hasattr(annotation, "__name__"):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


@dataclass(frozen=True)
class Plugin:
    """Where connectors come from: a plugin name and the distribution that installed it."""

    name: str
    package: str
    version: str


@dataclass(frozen=True)
class Connector:
    name: str
    source: Callable[..., Any]
    plugin: Plugin
    description: str = ""
    docs_url: str | None = None
    secret_settings: frozenset[str] = frozenset()
    # Per resource, when the connector knows them: primary key, incremental cursor column, PII columns.
    primary_keys: dict[str, str | list[str]] = field(default_factory=dict)
    cursors: dict[str, str] = field(default_factory=dict)
    pii: dict[str, list[str]] = field(default_factory=dict)
    # True where the increment is declared inside the settings (e.g. an API's incremental query
    # parameter), so a `cursor:` table option would fight it.
    cursor_in_settings: bool = False
    # list_keys(settings, table, columns) -> chunks (lists of rows of key values) of every key of a source table, so
    # that `deletes:` finds rows gone from the source (headwater.load.deletes); None: the connector cannot list them.
    list_keys: Callable[..., Any] | None = None
    # preflight(settings, tables) -> {table: problem}: what `headwater check` can tell is wrong with a table before
    # any run, beyond a failed read (for filesystem: a glob that matches no file); tables None means all of them.
    preflight: Callable[..., dict[str, str]] | None = None
    # acknowledge(settings, source_state): called once a load committed, with the source's dlt state as committed;
    # a change feed or broker lets go of what that state says raw holds (a replication slot advanced, messages
    # acknowledged). The connector must not rely on it alone: a load killed before it runs is acknowledged by
    # the next load, from the same state.
    acknowledge: Callable[..., None] | None = None
    # True where each load holds only the keys that changed since the last one, deletes among them (a change
    # feed), not the whole table: an scd2 table then retires only the keys a load holds (headwater.load.write_modes).
    change_feed: bool = False

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
        # With their Annotated validators, which check the value when headwater.yaml is read.
        hints = typing.get_type_hints(inspect.unwrap(source), include_extras=True)
    except Exception:  # an annotation that cannot be evaluated stays a string and is not type-checked
        return signature
    return signature.replace(
        parameters=[
            parameter.replace(annotation=hints.get(parameter.name, parameter.annotation))
            for parameter in signature.parameters.values()
        ]
    )


def _is_dlt_source_function(source: Any) -> bool:
    from dlt.extract.decorators import DltSourceFactoryWrapper
    from dlt.extract.resource import DltResource

    return isinstance(source, (DltSourceFactoryWrapper, DltResource)) or (
        callable(source) and hasattr(source, "__wrapped__") and "dlt" in type(source).__module__
    )


class ConnectorRegistry(PluginRegistry[Connector]):
    """Connectors by name, filled by the register_connectors hook of every plugin."""

    kind = "connector"

    def __init__(self) -> None:
        super().__init__(_make_connector)


def _make_connector(plugin: Plugin, name: Any, source: Any, metadata: dict[str, Any]) -> Connector:
    name = check_name("connector", name)
    if not _is_dlt_source_function(source):
        raise RegistrationError(
            f"connector {name!r}: source must be a @dlt.source or @dlt.resource function, got {type(source).__name__}"
        )
    check_metadata("connector", name, metadata, METADATA_KEYS)
    if metadata.get("list_keys") is not None and not callable(metadata["list_keys"]):
        raise RegistrationError(f"connector {name!r}: list_keys must be a function (settings, table, columns)")
    if metadata.get("preflight") is not None and not callable(metadata["preflight"]):
        raise RegistrationError(f"connector {name!r}: preflight must be a function (settings, tables)")
    if metadata.get("acknowledge") is not None and not callable(metadata["acknowledge"]):
        raise RegistrationError(f"connector {name!r}: acknowledge must be a function (settings, source_state)")
    return Connector(
        name=name,
        source=source,
        plugin=plugin,
        description=first_line(metadata.get("description") or inspect.getdoc(source)),
        docs_url=metadata.get("docs_url"),
        secret_settings=frozenset(metadata.get("secrets", ())),
        primary_keys=dict(metadata.get("primary_keys") or {}),
        cursors=dict(metadata.get("cursors") or {}),
        pii={resource: list(columns) for resource, columns in (metadata.get("pii") or {}).items()},
        cursor_in_settings=bool(metadata.get("cursor_in_settings", False)),
        list_keys=metadata.get("list_keys"),
        preflight=metadata.get("preflight"),
        acknowledge=metadata.get("acknowledge"),
        change_feed=bool(metadata.get("change_feed", False)),
    )

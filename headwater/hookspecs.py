"""The hooks a Headwater plugin may implement. Public API: never rename a hook or reorder its arguments."""

import pluggy

hookspec = pluggy.HookspecMarker("headwater")
hookimpl = pluggy.HookimplMarker("headwater")


@hookspec
def register_connectors(register):
    """Call register(name, source, **metadata) once per connector; source is a @dlt.source or @dlt.resource function."""


@hookspec
def register_steps(register):
    """Call register(name, function, description=...) once per custom enrichment step.

    function(frame: polars.DataFrame, options) -> polars.DataFrame, where options is whatever follows the
    step's name in a table's `steps:` list.
    """


@hookspec
def register_notifiers(register):
    """Call register(name, factory, description=...) once per alert notifier.

    factory(options: dict) -> send, where options is the mapping under the notifier's name in `alerts:`
    (${NAME} references resolved) and send(event: dict) delivers one JSON-able alert event. factory may
    raise ValueError to reject its options; send may raise, which is logged and never fails the run.
    """

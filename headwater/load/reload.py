"""Reloading data on request: ``--full-refresh SOURCE[.TABLE]`` and a backfill window ``--since/--until``.

Both are checked against the project before anything runs, and an unknown name is an error that
lists the allowed ones.

- **Full refresh of SOURCE.TABLE** empties that table and resets its cursor, then reloads it from
  scratch (dlt ``refresh="drop_data"`` on that resource only); the source's other tables load as usual.
  **Of SOURCE**, every table and cursor of the source is emptied and reloaded. Tables are truncated,
  not dropped, so views built on them (dbt staging models) keep working.
- **Backfill** re-reads the window ``since <= cursor < until`` of every table that has a ``cursor:``
  and is written with ``merge`` or ``scd2``, where reloaded rows replace themselves. The regular
  cursor does not move (dlt keeps no state for a bounded window), so the next run continues where
  it was. Every other table of the run loads as usual, and the run says which and why
  (``backfill_outcome``): ``append`` and ``replace`` tables (appending the window again would
  duplicate it, replacing would shrink the table to the window: reload those with
  ``--full-refresh SOURCE.TABLE``), tables without a ``cursor:``, and tables whose cursor is a
  parameter in the connector's settings (rest_api). A table being fully refreshed ignores the window.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from headwater.plugins.connectors import ConnectorRegistry
from headwater.project.config import ProjectConfig, SourceConfig, TableConfig

BACKFILL_MODES = ("merge", "scd2")
# What re-reading a window would do to a table written in these modes.
NOT_BACKFILLED_MODES = {"append": "would load the window's rows a second time",
                        "replace": "would shrink the table to the window"}


class ReloadError(ValueError):
    """A --full-refresh or --since/--until value the project cannot honour; str() says what is allowed."""


@dataclass(frozen=True)
class BackfillOutcome:
    """What the --since/--until window did to one table."""

    backfilled: bool
    detail: str  # backfilled: the cursor and window; otherwise why not, and what the run did instead


@dataclass(frozen=True)
class Reload:
    """The validated reload request of one run."""

    # source name -> tables to refresh; an empty set means the whole source.
    full_refresh: dict[str, frozenset[str]] = field(default_factory=dict)
    since: Any = None
    until: Any = None

    def refreshes_source(self, source: str) -> bool:
        return source in self.full_refresh and not self.full_refresh[source]

    def refreshed_tables(self, source: str) -> frozenset[str]:
        return self.full_refresh.get(source, frozenset())

    @property
    def backfills(self) -> bool:
        return self.since is not None or self.until is not None

    def backfill_incremental(self, source: SourceConfig, table: TableConfig):
        """The bounded cursor that replaces ``table``'s regular one in this run, or None."""
        outcome = self.backfill_outcome(source, table.name)
        if outcome is None or not outcome.backfilled:
            return None
        import dlt  # only when a window is used: the CLI imports this module to build its options

        return dlt.sources.incremental(table.cursor, initial_value=self.since, end_value=self.until)

    def backfill_outcome(self, source: SourceConfig, table_name: str, cursor_in_settings: bool = False
                         ) -> BackfillOutcome | None:
        """Whether the window reaches ``table_name`` of ``source``, and if not why; None without a window.

        ``cursor_in_settings``: the source's connector takes its cursor in its settings (rest_api).
        """
        if not self.backfills:
            return None
        if self.refreshes_source(source.name) or table_name in self.refreshed_tables(source.name):
            return BackfillOutcome(False, "--full-refresh reloads it whole instead")
        if cursor_in_settings:
            return BackfillOutcome(False, "its cursor is a parameter in the source's settings (`type: incremental`), "
                                          "which --since/--until do not reach; loaded as usual")
        table = next((table for table in source.tables if table.name == table_name), None)
        if table is None or not table.cursor:
            why = "the table has no `cursor:`" if table else "the table is not under `tables:` with a `cursor:`"
            return BackfillOutcome(False, f"no cursor ({why}; --since/--until need one); loaded as usual")
        mode = table.effective_write_disposition
        if mode not in BACKFILL_MODES:
            return BackfillOutcome(False, f"write_disposition {mode} {NOT_BACKFILLED_MODES.get(mode, '')}; loaded "
                                          f"as usual; reload it with --full-refresh {source.name}.{table.name}")
        return BackfillOutcome(True, f"{table.cursor} from {_shown(self.since)} to {_shown(self.until)}")


def not_backfilled(project: ProjectConfig, reload: Reload, registry: ConnectorRegistry) -> list[str]:
    """Before the run: `source.table: not backfilled: why` for each table under `tables:` the window misses.

    Tables a source finds by itself (no `tables:`) are known only once it is built: the run summary names them.
    """
    lines = []
    for source in project.sources:
        connector = registry.get(source.connector) if source.enabled else None
        for table in source.tables if connector is not None else ():
            outcome = reload.backfill_outcome(source, table.name, connector.cursor_in_settings)
            if outcome is not None and not outcome.backfilled:
                lines.append(f"{source.name}.{table.name}: not backfilled: {outcome.detail}")
    return lines


def _shown(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)


def plan_reload(
    project: ProjectConfig,
    full_refresh: list[str] | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Reload:
    """Check the request against the project; raise ReloadError naming what is allowed."""
    refresh: dict[str, set[str]] = {}
    for item in full_refresh or []:
        source_name, _, table_name = str(item).partition(".")
        source = _source(project, source_name, item)
        if table_name:
            _check_table(source, table_name, item)
            if refresh.get(source_name) != set():  # refreshing the whole source already covers the table
                refresh.setdefault(source_name, set()).add(table_name)
        else:
            refresh[source_name] = set()

    start, end = parse_cursor_value(since, "--since"), parse_cursor_value(until, "--until")
    if start is not None and end is None:
        if not isinstance(start, datetime):
            raise ReloadError("--since with a number needs --until: the window must be bounded")
        end = datetime.now(timezone.utc)  # a bounded window keeps the regular cursor where it is
    if start is not None and end is not None:
        if type(start) is not type(end):
            raise ReloadError("--since and --until must both be dates/timestamps or both be numbers")
        if start >= end:
            raise ReloadError(f"--since ({since}) must be before --until ({until or 'now'})")

    return Reload(full_refresh={name: frozenset(tables) for name, tables in refresh.items()}, since=start, until=end)


def parse_cursor_value(text: str | None, option: str) -> int | datetime | None:
    """An integer cursor value, or an ISO date/timestamp (UTC unless it names a zone)."""
    if text is None or str(text).strip() == "":
        return None
    text = str(text).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ReloadError(
            f"{option} {text!r} is neither an integer nor an ISO date/timestamp (e.g. 2024-05-01 or "
            "2024-05-01T12:00:00+00:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def add_reload_arguments(parser: argparse.ArgumentParser) -> None:
    """--full-refresh, --since and --until, shared by `python -m flows.daily` and `headwater run`."""
    parser.add_argument("--full-refresh", action="append", metavar="SOURCE[.TABLE]",
                        help="drop and reload a source, or one of its tables, cursor included (repeatable)")
    parser.add_argument("--since", metavar="VALUE",
                        help="backfill: re-read merge/scd2 tables from this cursor value (ISO date/time or integer)")
    parser.add_argument("--until", metavar="VALUE",
                        help="backfill window end, exclusive (default: now); the regular cursor does not move")


def _source(project: ProjectConfig, name: str, item: str) -> SourceConfig:
    enabled = [source.name for source in project.sources if source.enabled]
    for source in project.sources:
        if source.name == name and source.enabled:
            return source
    close = difflib.get_close_matches(name, enabled, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ReloadError(f"--full-refresh {item}: no enabled source {name!r}; {hint}allowed: {', '.join(enabled)}")


def _check_table(source: SourceConfig, table: str, item: str) -> None:
    names = [configured.name for configured in source.tables]
    if names and table not in names:  # without `tables:` the resources are known only once the source is built
        close = difflib.get_close_matches(table, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ReloadError(
            f"--full-refresh {item}: source {source.name!r} has no table {table!r}; {hint}allowed: "
            + ", ".join(f"{source.name}.{name}" for name in names)
        )

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
  it was. ``append`` and ``replace`` tables are not backfilled, with a warning: appending the window
  again would duplicate it, and replacing would shrink the table to the window. Reload those with
  ``--full-refresh SOURCE.TABLE`` instead. A table being fully refreshed ignores the window.
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from headwater.project.config import ProjectConfig, SourceConfig, TableConfig

BACKFILL_MODES = ("merge", "scd2")


class ReloadError(ValueError):
    """A --full-refresh or --since/--until value the project cannot honour; str() says what is allowed."""


@dataclass(frozen=True)
class Reload:
    """The validated reload request of one run."""

    # source name -> tables to refresh; an empty set means the whole source.
    full_refresh: dict[str, frozenset[str]] = field(default_factory=dict)
    since: Any = None
    until: Any = None
    warnings: tuple[str, ...] = ()

    def refreshes_source(self, source: str) -> bool:
        return source in self.full_refresh and not self.full_refresh[source]

    def refreshed_tables(self, source: str) -> frozenset[str]:
        return self.full_refresh.get(source, frozenset())

    @property
    def backfills(self) -> bool:
        return self.since is not None or self.until is not None

    def backfill_incremental(self, source: str, table: TableConfig):
        """The bounded cursor that replaces ``table``'s regular one in this run, or None."""
        if not self.backfills or not table.cursor or table.effective_write_disposition not in BACKFILL_MODES:
            return None
        if self.refreshes_source(source) or table.name in self.refreshed_tables(source):
            return None
        import dlt  # only when a window is used: the CLI imports this module to build its options

        return dlt.sources.incremental(table.cursor, initial_value=self.since, end_value=self.until)


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

    warnings = []
    if start is not None or end is not None:
        skipped = [
            f"{source.name}.{table.name} ({table.effective_write_disposition})"
            for source in project.sources if source.enabled
            for table in source.tables
            if table.cursor and table.effective_write_disposition not in BACKFILL_MODES
        ]
        if skipped:
            warnings.append(
                "backfill skips tables that would duplicate or lose rows, loading them as usual: "
                + ", ".join(skipped) + "; reload them with --full-refresh SOURCE.TABLE"
            )
    return Reload(
        full_refresh={name: frozenset(tables) for name, tables in refresh.items()},
        since=start, until=end, warnings=tuple(warnings),
    )


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

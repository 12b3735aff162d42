"""Freshness: how old each raw table's newest data is, measured against its SLA (headwater.project.freshness).

A table's age is now minus the newest value of its `cursor:` column when it has one (the time the
data itself describes; taken from dlt's committed cursor state, so the raw table is not read), else
minus the time of the last successful dlt load that wrote rows into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from headwater.load.stored_schemas import cursor_values, pipeline_name
from headwater.project.freshness import FreshnessSLA, format_age

if TYPE_CHECKING:
    from headwater.postgres.address import PostgresAddress
    from headwater.project.config import ProjectConfig, SourceConfig, TableConfig

@dataclass
class FreshnessResult:
    """One table's freshness in one run; ``status`` is 'pass', 'warn' or 'error'."""

    source: str
    table: str
    basis: str  # 'cursor:<column>' or 'load'
    last_value: datetime | None  # newest cursor value or last load time; None when nothing was ever loaded
    age_seconds: float | None
    warn_after_seconds: float | None
    error_after_seconds: float | None
    status: str
    checked_at: datetime

    @property
    def breached(self) -> bool:
        return self.status != "pass"

    @property
    def relation(self) -> str:
        return f"raw_{self.source}.{self.table}"

    def message(self) -> str:
        limit = self.error_after_seconds if self.status == "error" else self.warn_after_seconds
        if self.age_seconds is None:
            return f"{self.relation}: no data loaded yet ({self.status})"
        return (
            f"{self.relation}: newest data is {format_age(self.age_seconds)} old "
            f"(by {self.basis}), {self.status}_after {format_age(limit or 0)}"
        )


def effective_sla(source: "SourceConfig", table: "TableConfig | None") -> FreshnessSLA | None:
    """The table's own SLA when it sets one (null switches it off), else the source's."""
    table_sla = getattr(table, "freshness", None) if table is not None else None
    sla = table_sla if table_sla is not None else getattr(source, "freshness", None)
    return sla if sla is not None and sla.enabled else None


def evaluate_freshness(
    project: "ProjectConfig", address: "PostgresAddress", now: datetime | None = None
) -> list[FreshnessResult]:
    """Every table with an SLA, measured against the destination now (or at `now`, for tests and replays)."""
    now = now or datetime.now(timezone.utc)
    targets = [
        (source, table, sla)
        for source in project.sources
        if source.enabled
        for table in source.tables
        if (sla := effective_sla(source, table)) is not None
    ]
    if not targets:
        return []
    results = []
    cursors: dict[str, dict] = {}  # per source, the cursor values of its committed dlt state
    with address.connect(autocommit=True) as connection:
        for source, table, sla in targets:
            if table.cursor and source.name not in cursors:
                cursors[source.name] = cursor_values(connection, source.dataset, pipeline_name(source.name))
            stored = cursors.get(source.name, {}).get((table.name, table.cursor))
            basis, last = _newest(connection, source.dataset, table.name, table.cursor, stored)
            age = max((now - last).total_seconds(), 0.0) if last is not None else None
            results.append(
                FreshnessResult(
                    source=source.name,
                    table=table.name,
                    basis=basis,
                    last_value=last,
                    age_seconds=age,
                    warn_after_seconds=sla.warn_after.total_seconds() if sla.warn_after else None,
                    error_after_seconds=sla.error_after.total_seconds() if sla.error_after else None,
                    status=_status(age, sla),
                    checked_at=now,
                )
            )
    return results


def _status(age: float | None, sla: FreshnessSLA) -> str:
    # A table that never received data breaches at the strictest level it has.
    for level, limit in (("error", sla.error_after), ("warn", sla.warn_after)):
        if limit is not None and (age is None or age > limit.total_seconds()):
            return level
    return "pass"


def _newest(connection, schema: str, table: str, cursor: str | None,
            stored: Any = None) -> tuple[str, datetime | None]:
    """(basis, newest timestamp) of a raw table; the cursor is used when it holds times, else load times.

    ``stored`` is the cursor's newest value in dlt's committed state (headwater.load.stored_schemas): when it
    is a time it is the answer, without reading the table; a table dlt keeps no cursor state for is read.
    """
    from psycopg import errors, sql

    if not _exists(connection, schema, table):
        return ("cursor:" + cursor if cursor else "load"), None
    if cursor and (moment := _as_time(stored)) is not None:
        return f"cursor:{cursor}", moment
    if cursor:
        try:
            value = connection.execute(
                sql.SQL("select max({}) from {}.{}").format(
                    sql.Identifier(cursor), sql.Identifier(schema), sql.Identifier(table)
                )
            ).fetchone()[0]
        except errors.Error:
            value = None  # a cursor column dlt renamed or dropped: fall back to load times
        moment = _as_time(value)
        if moment is not None:
            return f"cursor:{cursor}", moment
    if not _exists(connection, schema, "_dlt_loads"):
        return "load", None
    # dlt stamps every row with the load that wrote it; status 0 marks a completed load.
    value = connection.execute(
        sql.SQL(
            "select max(l.inserted_at) from {schema}._dlt_loads l where l.status = 0 and exists "
            "(select 1 from {schema}.{table} t where t._dlt_load_id = l.load_id)"
        ).format(schema=sql.Identifier(schema), table=sql.Identifier(table))
    ).fetchone()[0]
    return "load", _as_time(value)


def _exists(connection, schema: str, table: str) -> bool:
    row = connection.execute("select to_regclass(%s)", (f'"{schema}"."{table}"',)).fetchone()
    return row[0] is not None


def _as_time(value: Any) -> datetime | None:
    """A cursor value as an aware datetime; naive times are taken as UTC, numbers are not times."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

"""Deleting quarantine rows: resolved ones (replayed or superseded), and open ones only when asked for by name.

`headwater quarantine purge` deletes on request; a run deletes the resolved rows older than the source's
`quarantine: {retention: ...}` (headwater.project.quarantine_settings). A resolved row's age counts from when
it was resolved (`replayed_at`), an open row's from when it was (last) quarantined.

The copy dlt keeps of a quarantine table's last load in the staging schema (`raw_<source>_staging`, for the
merge) loses the same rows, in the same transaction.

A resolved row is kept while an open row of the same key stays: a replay tells which of two versions of a
key is newer by the load that read each (headwater.quarantine.versions), and for a row a replay loaded
that load is written only in the replayed row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from psycopg import sql

from headwater.postgres.address import PostgresAddress
from headwater.quarantine.naming import QUARANTINE_SUFFIX, quarantine_table_name, table_of
from headwater.quarantine.records import ID, QUARANTINED, REPLAYED, SUPERSEDED

RESOLVED = (REPLAYED, SUPERSEDED)
STAGING_SUFFIX = "_staging"  # dlt's staging dataset: `<dataset>_staging`


@dataclass(frozen=True)
class PurgeRequest:
    """Which rows to delete: resolved ones, open ones, or both; only those older than ``older_than`` if given."""

    resolved: bool = True
    open: bool = False
    older_than: timedelta | None = None


@dataclass
class Purged:
    """The rows of one table's quarantine deleted (or, counted before asking, that would be)."""

    table: str
    resolved: int = 0
    open: int = 0

    @property
    def rows(self) -> int:
        return self.resolved + self.open


def purge_quarantine(address: PostgresAddress, dataset: str, request: PurgeRequest, tables: list[str] | None = None,
                     keys: dict[str, list[str]] | None = None, count_only: bool = False,
                     now: datetime | None = None) -> list[Purged]:
    """Delete the rows ``request`` picks from the quarantine tables of ``dataset`` (only ``tables``' if given),
    per table; with ``count_only`` nothing is deleted. ``keys``: each table's primary key, to keep resolved rows
    of keys still quarantined."""
    cutoff = (now or datetime.now(timezone.utc)) - request.older_than if request.older_than else None
    found = []
    with address.connect() as connection:
        names = _quarantine_tables(connection, dataset, tables)
        staged = set(_quarantine_tables(connection, dataset + STAGING_SUFFIX, names))
        for table in names:
            relation = sql.Identifier(dataset, quarantine_table_name(table))
            columns = _columns(connection, dataset, quarantine_table_name(table))
            key = [name for name in (keys or {}).get(table, []) if name in columns]
            picked = _picked(connection, relation, request, cutoff, key)
            found.append(_counted(table, [status for _, status in picked]))
            if count_only or not picked:
                continue
            identifiers = [identifier for identifier, _ in picked]
            connection.execute(sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(relation, sql.Identifier(ID)),
                               (identifiers,))
            if table in staged:
                connection.execute(
                    sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
                        sql.Identifier(dataset + STAGING_SUFFIX, quarantine_table_name(table)), sql.Identifier(ID)),
                    (identifiers,))
        connection.commit()
    return [purged for purged in found if purged.rows]


def _picked(connection, relation: sql.Identifier, request: PurgeRequest, cutoff: datetime | None,
            key: list[str]) -> list[tuple[str, str]]:
    """(quarantine id, status) of the rows the request picks; resolved rows of a key still quarantined stay."""
    statuses = [*(RESOLVED if request.resolved else ()), *((QUARANTINED,) if request.open or key else ())]
    extra = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(name)) for name in ("record", *key) if key)
    rows = connection.execute(
        sql.SQL("SELECT {}, status, CASE WHEN status = %(open)s THEN quarantined_at "
                "ELSE coalesce(replayed_at, quarantined_at) END{} FROM {} WHERE status = ANY(%(statuses)s)"
                ).format(sql.Identifier(ID), extra, relation),
        {"open": QUARANTINED, "statuses": statuses}).fetchall()
    picked, staying = [], set()
    for identifier, status, since, *rest in rows:
        is_open = status == QUARANTINED
        row_key = _key_of(key, rest[1:], rest[0]) if key else None
        if (request.open if is_open else request.resolved) and (cutoff is None or (since is not None
                                                                                   and since < cutoff)):
            picked.append((identifier, status, None if is_open else row_key))
        elif is_open:
            staying.add(row_key)
    return [(identifier, status) for identifier, status, row_key in picked if row_key is None or row_key not in staying]


def _key_of(key: list[str], values: list, record: str | None) -> tuple:
    """A row's key as text: its key columns, else (rows quarantined before a replay) the fields of its record."""
    fields = {}
    if any(value is None for value in values):
        try:
            fields = json.loads(record) if record else {}
        except ValueError:
            fields = {}
        fields = fields if isinstance(fields, dict) else {}
    return tuple(str(value if value is not None else fields.get(name)) for name, value in zip(key, values, strict=True))


def _counted(table: str, statuses: list[str]) -> Purged:
    purged = Purged(table)
    for status in statuses:
        if status == QUARANTINED:
            purged.open += 1
        else:
            purged.resolved += 1
    return purged


def _quarantine_tables(connection, schema: str, tables: list[str] | None) -> list[str]:
    found = connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND table_name LIKE %s ORDER BY 1",
        (schema, "%" + QUARANTINE_SUFFIX.replace("_", r"\_"))).fetchall()
    names = [table_of(name) for (name,) in found]
    return [name for name in names if tables is None or name in tables]


def _columns(connection, schema: str, table: str) -> set[str]:
    return {name for (name,) in connection.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (schema, table)).fetchall()}

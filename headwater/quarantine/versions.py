"""Which version of a key is newer, so that a replayed row never takes its table back in time.

By the time a quarantined row is replayed, a later run may have loaded a newer version of its key.
Replayed as it is, the old row would replace the new one. A replayed row of a table that merges on a
key is therefore applied only when no version of its key is newer: neither the one the table holds
nor another replayed row. Of two versions, the newer is the one with

1. the higher cursor (the table's incremental column), when the table has one;
2. else, for rows read from landing files, the later file modification time, then the later line;
3. where those do not tell (neither applies, a value is missing, or the values are equal), the later
   load that read it: `_dlt_load_id` of the table's row (for a row a replay loaded, the load that read
   the quarantined row), `read_load_id` of the quarantined one.

A version that is not newer does not lose: a replayed row equal to the table's is applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from headwater.common.file_rows import LINE_COLUMN, MODIFIED_COLUMN
from headwater.quarantine.records import OWN_COLUMNS, READ_LOAD_ID, REPLAYED


class SqlClient(Protocol):
    """What is used of dlt's SQL client (the destination's own driver, so replay opens no second one)."""

    def execute_query(self, query: str, *args: Any): ...
    def make_qualified_table_name(self, table_name: str, quote: bool = True) -> str: ...
    def escape_column_name(self, column_name: str, quote: bool = True) -> str: ...


@dataclass(frozen=True)
class VersionOrder:
    """How a table's versions of a key are ordered: by `columns` (cursor, or file time and line), then load."""

    key: tuple[str, ...]
    columns: tuple[str, ...] = ()  # empty: by the load that read each version alone

    def describe(self) -> str:
        if not self.columns:
            return "the load that read each version"
        if self.columns == (MODIFIED_COLUMN, LINE_COLUMN):
            return "file modification time and line"
        return f"cursor {self.columns[0]}"


@dataclass(frozen=True)
class Version:
    """One version of a key: its key values, its values of the order's columns, and the load that read it."""

    key: tuple
    values: tuple
    load_id: str | None

    def is_newer_than(self, other: Version) -> bool:
        known = self.values and all(value is not None for value in self.values + other.values)
        if known and self.values != other.values:
            return self.values > other.values
        return _load_number(self.load_id) > _load_number(other.load_id)


def version_order(columns: dict[str, dict], cursor: str | None) -> VersionOrder | None:
    """The order of a table's versions from its stored columns and cursor; None when it has no key to order by."""
    key = tuple(name for name, column in columns.items() if column.get("primary_key"))
    if not key:
        return None
    if cursor and cursor in columns:
        return VersionOrder(key, (cursor,))
    if MODIFIED_COLUMN in columns and LINE_COLUMN in columns:
        return VersionOrder(key, (MODIFIED_COLUMN, LINE_COLUMN))
    return VersionOrder(key)


def superseded(
    client: SqlClient,
    column_types: dict[tuple[str, str], str],
    table: str,
    quarantine: str,
    order: VersionOrder,
    versions: list[Version],
) -> set[int]:
    """Positions in `versions` (replayed rows about to be applied) that a newer version of their key supersedes.

    `column_types` maps (table, column) to the SQL type of each column of the source's schema.
    """
    newest: dict[tuple, int] = {}
    lost: set[int] = set()
    for position, version in enumerate(versions):
        best = newest.get(version.key)
        if best is None:
            newest[version.key] = position
        elif version.is_newer_than(versions[best]):
            lost.add(best)
            newest[version.key] = position
        else:
            lost.add(position)
    survivors = [(position, versions[position]) for position in sorted(newest.values())]
    return lost | _older_than_stored(client, column_types, table, quarantine, order, survivors)


def _older_than_stored(client, column_types, table, quarantine, order, candidates) -> set[int]:
    """The candidates whose key the table holds in a newer version, compared in the database in its column types."""
    types = {column: kind for (name, column), kind in column_types.items() if name == table}
    wanted = [*order.key, *order.columns, "_dlt_load_id"]
    candidates = [(position, version) for position, version in candidates if None not in version.key]
    if not candidates or any(column not in types for column in wanted):
        return set()  # the table has not been created, or holds no version of these keys to compare with
    stored = client.make_qualified_table_name(table)

    def column(alias: str, name: str) -> str:
        return f"{alias}.{client.escape_column_name(name)}"

    arrays = [[_text(version.key[index]) for _, version in candidates] for index in range(len(order.key))]
    arrays += [[_text(version.values[index]) for _, version in candidates] for index in range(len(order.columns))]
    arrays += [[version.load_id for _, version in candidates], [position for position, _ in candidates]]
    names = [f"k{index}" for index in range(len(order.key))] + [f"v{index}" for index in range(len(order.columns))]
    unnest = ", ".join(["%s::text[]"] * len(names) + ["%s::text[]", "%s::int[]"])
    joined = " AND ".join(f"{column('t', name)} = c.k{index}::{types[name]}" for index, name in enumerate(order.key))
    newer = f"{_stored_load(client, column_types, table, quarantine, order, column)} > c.read_load::numeric"
    if order.columns:
        ours = ", ".join(column("t", name) for name in order.columns)
        theirs = ", ".join(f"c.v{index}::{types[name]}" for index, name in enumerate(order.columns))
        known = " AND ".join([f"{column('t', name)} IS NOT NULL" for name in order.columns]
                             + [f"c.v{index} IS NOT NULL" for index in range(len(order.columns))])
        newer = f"CASE WHEN {known} AND ({ours}) <> ({theirs}) THEN ({ours}) > ({theirs}) ELSE {newer} END"
    query = (f"SELECT c.position FROM unnest({unnest}) AS c({', '.join(names)}, read_load, position) "
             f"JOIN {stored} AS t ON {joined} WHERE {newer}")
    with client.execute_query(query, *arrays) as cursor:
        return {position for (position,) in cursor.fetchall()}


def _stored_load(client, column_types, table, quarantine, order, column) -> str:
    """SQL for the load that read the table's row `t`: for a row a replay loaded, the load that had read the
    quarantined row (the replay marked it `replayed` in the same load, with the key); else the row's own load."""
    own = f"{column('t', '_dlt_load_id')}::numeric"
    marks = {name for (name_of_table, name) in column_types if name_of_table == quarantine}
    if set(order.key) & OWN_COLUMNS or not {READ_LOAD_ID, "_dlt_load_id", *order.key} <= marks:
        return own  # the quarantine table does not hold the key of the rows replays loaded
    keys = " AND ".join(f"{column('q', name)}::text = {column('t', name)}::text" for name in order.key)
    return (f"coalesce((SELECT max({column('q', READ_LOAD_ID)}::numeric) "
            f"FROM {client.make_qualified_table_name(quarantine)} AS q WHERE {column('q', 'status')} = '{REPLAYED}' "
            f"AND {column('q', '_dlt_load_id')} = {column('t', '_dlt_load_id')} AND {keys}), {own})")


def _text(value: Any) -> str | None:
    """A value as text Postgres reads back into the column's type."""
    if value is None:
        return None
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # no zone means UTC, as everywhere in Headwater
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _load_number(load_id: str | None) -> Decimal:
    # dlt's load ids are Unix times as decimal text: compared as numbers, not as strings.
    try:
        return Decimal(load_id) if load_id else Decimal(0)
    except InvalidOperation:
        return Decimal(0)

"""Hard deletes: rows whose primary key is gone from the source table, found after the table's load.

A source that deletes a row without marking it (no ``deleted_flag:``) leaves no trace in an incremental
extract. With ``deletes:`` on a table, every key of the source table is read after the load of the same
run (through the connector's ``list_keys``) and compared with the raw table's keys:

- ``deletes: detect`` on ``merge``: rows whose key is gone are removed from the raw table;
- ``deletes: flag`` on ``merge``: they stay, with ``_deleted_at`` (added to the raw table) set to the time
  of the run that noticed; a key that is back in the source clears it (a reloaded row arrives with it empty);
- ``deletes: detect`` on ``scd2``: the current version of a gone key is retired (``_valid_to`` set).

How the keys are compared, and why that is exact: the source's keys are streamed in chunks into a
temporary table in the destination (``COPY``), typed like the raw table's key columns, and the raw table
is anti-joined against it by equality, all in the one transaction that then removes or flags the rows.
Nothing is ever compared by order: walking both sides in key order (keyset pagination, a merge of two
sorted streams) would need MariaDB, SQLite and Postgres to sort text keys alike, and they do not
(MariaDB's utf8mb4_general_ci sorts 'a' with 'A' and 'é' with 'e', SQLite sorts by bytes, Postgres by its
locale), so a key near a chunk border would land in the wrong range and look deleted. Equality in
Postgres with its deterministic collations is byte equality: a key matches only its identical self.
Memory stays bounded by one chunk on this side; Postgres spills the comparison to disk when it must.

Why it never removes a row the source still has: the keys are read after the extract, so a loaded row
was in the source when it was read and is missing from the listing only if it was deleted since. Keys
that arrived after the extract are in the listing but not in the raw table, and only raw rows missing
from the listing are touched, so they can change nothing. A source whose load failed is not compared at
all (headwater.load.pipeline), and any error while reading or comparing rolls the whole transaction back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

from headwater.project.deletes import DELETED_AT, VALID_TO

if TYPE_CHECKING:
    from headwater.plugins.connectors import Connector
    from headwater.postgres.address import PostgresAddress
    from headwater.project.config import SourceConfig, TableConfig

# The temporary table the source's keys are streamed into; dropped when the transaction ends.
KEY_TABLE = "headwater_source_keys"

# What happens to a row whose key is gone, by write disposition and mode.
REMOVED, FLAGGED, RETIRED = "removed", "flagged", "retired"


def deletes_action(table: "TableConfig") -> str | None:
    """removed, flagged or retired: what `deletes:` does to ``table``'s rows gone from the source."""
    if not table.deletes:
        return None
    if table.effective_write_disposition == "scd2":
        return RETIRED
    return FLAGGED if table.deletes == "flag" else REMOVED


# -- what a run found ----------------------------------------------------------------------------------------


@dataclass
class DeleteResult:
    """What comparing one table's keys with its source did, and what it cost."""

    action: str  # removed | flagged | retired
    rows: int = 0  # rows removed or flagged, current versions retired
    restored: int = 0  # flagged rows whose key is back in the source: flag cleared
    source_keys: int = 0  # keys read from the source
    chunks: int = 0  # how many chunks they came in
    seconds: float = 0.0
    error: str | None = None  # the comparison failed and changed nothing

    @property
    def changed(self) -> bool:
        return self.error is None and (self.rows > 0 or self.restored > 0)

    def describe(self) -> str:
        """What happened, in words: '2 rows removed, their keys are gone from the source (...)'."""
        if self.error:
            return f"not compared, nothing changed: {self.error}"
        cost = f"({self.source_keys:,} source keys compared in {self.seconds:.1f}s)"
        done = []
        if self.rows:
            done.append({
                REMOVED: _count(self.rows, "row") + " removed",
                FLAGGED: _count(self.rows, "row") + f" flagged deleted ({DELETED_AT} set)",
                RETIRED: _count(self.rows, "current version") + f" retired ({VALID_TO} set)",
            }[self.action] + f", {'its key is' if self.rows == 1 else 'their keys are'} gone from the source")
        if self.restored:
            done.append(f"{_count(self.restored, 'flag')} cleared ({DELETED_AT} emptied), "
                        f"{'its key is' if self.restored == 1 else 'their keys are'} back in the source")
        return f"{'; '.join(done) or 'no key gone from the source'} {cost}"


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


# -- finding them --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawTable:
    """A raw table and its key columns, named as dlt named them in the destination."""

    schema: str
    name: str
    keys: tuple[str, ...]


def detect_deletes(
    source: "SourceConfig", connector: "Connector", settings: dict, address: "PostgresAddress", naming: Any
) -> dict[str, DeleteResult]:
    """Compare every table of ``source`` that has `deletes:` with its source table; results by table name.

    Call only after the source loaded without error. ``settings`` are the source's resolved settings,
    ``naming`` dlt's naming convention of the source's schema (source names -> raw names). A table that
    has no raw table yet has nothing to delete and gets no result.
    """
    results: dict[str, DeleteResult] = {}
    for table in source.tables:
        action = deletes_action(table)
        if action is None:
            continue
        keys = [table.primary_key] if isinstance(table.primary_key, str) else list(table.primary_key or [])
        raw = RawTable(source.dataset, naming.normalize_table_identifier(table.name),
                       tuple(naming.normalize_identifier(key) for key in keys))
        # A generator: the source is only read once the destination transaction is open.
        result = apply_deletes(address, raw, action, connector.list_keys(settings, table.name, keys))
        if result is not None:
            results[table.name] = result
    return results


def apply_deletes(address: "PostgresAddress", raw: RawTable, action: str,
                  chunks: Iterable[Sequence[Sequence]]) -> DeleteResult | None:
    """Stream the source's key ``chunks`` into the destination, then remove, flag or retire in one transaction.

    None when the raw table does not exist yet (nothing loaded, nothing to delete; the source is not read).
    """
    result = DeleteResult(action=action)
    started = time.perf_counter()
    target = sql.Identifier(raw.schema, raw.name)
    try:
        with address.connect() as connection:  # one transaction: committed on success, rolled back on error
            if connection.execute("select to_regclass(%s)", (_qualified(raw),)).fetchone()[0] is None:
                return None
            # Naive source timestamps are UTC, as dlt loads them.
            connection.execute("set local time zone 'UTC'")
            _create_key_table(connection, target, raw.keys)
            with connection.cursor().copy(sql.SQL("copy {} ({}) from stdin").format(
                    sql.Identifier(KEY_TABLE), _columns(raw.keys))) as copy:
                for chunk in chunks:
                    for key in chunk:
                        copy.write_row(key)
                    result.source_keys += len(chunk)
                    result.chunks += 1
            connection.execute(sql.SQL("analyze {}").format(sql.Identifier(KEY_TABLE)))  # so the planner hash-joins
            result.rows, result.restored = _APPLY[action](connection, target, raw.keys)
    except Exception as error:  # reported with the table; the load itself stands
        # The first line says what went wrong; drivers add the statement and hints below it.
        result.error = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
    result.seconds = time.perf_counter() - started
    return result


def _qualified(raw: RawTable) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in (raw.schema, raw.name))


def _create_key_table(connection, target, keys: Sequence[str]) -> None:
    # Typed like the raw key columns, so COPY parses each source value as the load stored it.
    connection.execute(sql.SQL("create temp table {} on commit drop as select {} from {} with no data").format(
        sql.Identifier(KEY_TABLE), _columns(keys), target))


def _columns(keys: Sequence[str]):
    return sql.SQL(", ").join(sql.Identifier(key) for key in keys)


def _in_source(keys: Sequence[str]):
    """True for a raw row (aliased ``r``) whose key is among the source's: equal in every key column."""
    match = sql.SQL(" and ").join(sql.SQL("s.{key} = r.{key}").format(key=sql.Identifier(key)) for key in keys)
    return sql.SQL("exists (select from {} s where {})").format(sql.Identifier(KEY_TABLE), match)


def _remove(connection, target, keys) -> tuple[int, int]:
    cursor = connection.execute(sql.SQL("delete from {} r where not {}").format(target, _in_source(keys)))
    return cursor.rowcount, 0


def _flag(connection, target, keys) -> tuple[int, int]:
    column = sql.Identifier(DELETED_AT)
    # Headwater's own column, unknown to dlt (sql_database ignores hints on columns its source lacks): rows
    # dlt writes later leave it empty, which is right, since they were just read from the source.
    connection.execute(sql.SQL("alter table {} add column if not exists {} timestamptz").format(target, column))
    flagged = connection.execute(sql.SQL("update {} r set {col} = now() where r.{col} is null and not {}").format(
        target, _in_source(keys), col=column)).rowcount
    restored = connection.execute(sql.SQL("update {} r set {col} = null where r.{col} is not null and {}").format(
        target, _in_source(keys), col=column)).rowcount
    return flagged, restored


def _retire(connection, target, keys) -> tuple[int, int]:
    column = sql.Identifier(VALID_TO)
    cursor = connection.execute(sql.SQL("update {} r set {col} = now() where r.{col} is null and not {}").format(
        target, _in_source(keys), col=column))
    return cursor.rowcount, 0


_APPLY = {REMOVED: _remove, FLAGGED: _flag, RETIRED: _retire}

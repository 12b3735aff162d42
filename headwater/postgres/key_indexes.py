"""An index on the primary key of every merge table, so an incremental merge costs the delta, not the table.

dlt's merge finds the rows a load replaces with ``DELETE FROM <table> WHERE EXISTS (SELECT 1 FROM
<staging> WHERE <key> = ...)`` (and scd2 with a cursor retires versions by ``(<key>) IN (SELECT ...
FROM <staging>)``). Without an index on the key Postgres reads the whole raw table for it, so a run
that changes 1% of a table costs as much as reading all of it. (dlt's scd2 still reads every current
version for the ``<row hash> NOT IN (...)`` of its insert; that statement is dlt's.) dlt's Postgres destination indexes
no primary key of its own (its ``create_indexes`` covers only ``unique`` columns, and those also
land on the staging table, which may hold a key twice before the merge deduplicates it).

The index is unique where the table holds one row per key: a delete-insert merge table (dlt
deduplicates each load by key before it inserts). Besides the lookup, a unique index tells the
planner, before any ANALYZE, that a key matches at most one row; without it a raw table freshly
loaded and not yet analyzed looks to the planner as if each staged key matched thousands of rows, and
it scans the table anyway. scd2 tables (several versions per key), nested tables (their root key)
and tables that already hold a key twice (rows appended before the table became a merge table) get
a plain index. A table that stops being a merge table loses Headwater's index (a unique one would
refuse its next append); one that becomes scd2 gets a plain one in its place.

A table with a plain index that holds rows but was never analyzed is analyzed first (a bounded
sample, once), so that the planner chooses that index too.

It is created in the load's schema update, inside dlt's transaction, for every merge table a load
writes whose index is missing: a new table gets it while empty, a table created before Headwater
indexed keys gets it on its next load, once. ``CREATE INDEX CONCURRENTLY`` cannot run inside a
transaction; the plain ``CREATE INDEX`` holds off other writers of that one table while it builds,
and the source's lock (headwater.load.source_lock) already keeps every other writer away during
a load; readers (dbt, Soda, dashboards) go on reading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

# Suffix of the index names Headwater gives, so they are told from indexes a user created.
INDEX_SUFFIX = "__hw_key"
MAX_IDENTIFIER = 63  # Postgres truncates longer names; ours are shortened with a hash instead


def key_index_name(table: str) -> str:
    name = f"{table}{INDEX_SUFFIX}"
    if len(name.encode()) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha256(table.encode()).hexdigest()[:8]
    return f"{table.encode()[:MAX_IDENTIFIER - len(INDEX_SUFFIX) - 9].decode(errors='ignore')}_{digest}{INDEX_SUFFIX}"


@dataclass(frozen=True)
class KeyIndex:
    columns: tuple[str, ...]
    unique: bool


def wanted_index(table_schema: dict) -> KeyIndex | None:
    """The index a table written by merge (delete-insert, upsert or scd2) looks its rows up by; None for others.

    A root table's primary key; a nested table's root key (``_dlt_root_id``), by which the merge deletes
    the nested rows of the root rows it replaces.
    """
    if table_schema.get("write_disposition") != "merge":
        return None
    columns = (table_schema.get("columns") or {}).items()
    keys = tuple(name for name, column in columns if column.get("primary_key"))
    if keys:
        return KeyIndex(keys, unique=table_schema.get("x-merge-strategy", "delete-insert") != "scd2")
    root_keys = tuple(name for name, column in columns if column.get("root_key"))
    return KeyIndex(root_keys, unique=False) if root_keys else None


@dataclass
class _Existing:
    ours: KeyIndex | None = None  # the index Headwater made, if any
    led_by: set[tuple[str, ...]] = field(default_factory=set)  # leading columns of every index
    unanalyzed: bool = False  # holds rows but has no planner statistics yet


def _existing(sql_client, tables: list[str]) -> dict[str, _Existing]:
    """Indexes of ``tables`` in the client's dataset, one catalog query; a table not created yet is left out."""
    rows = sql_client.execute_sql(
        "SELECT c.relname, c.reltuples <= 0 AND pg_relation_size(c.oid) > 0, ic.relname, i.indisunique, "
        "array(SELECT a.attname::text FROM "
        "unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, position) "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum ORDER BY k.position) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_index i ON i.indrelid = c.oid LEFT JOIN pg_class ic ON ic.oid = i.indexrelid "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)",
        sql_client.dataset_name, tables,
    ) or []
    found: dict[str, _Existing] = {}
    for table, unanalyzed, index, unique, columns in rows:
        existing = found.setdefault(table, _Existing(unanalyzed=bool(unanalyzed)))
        if index is None:
            continue
        existing.led_by.add(tuple(columns))
        if index == key_index_name(table):
            existing.ours = KeyIndex(tuple(columns), bool(unique))
    return found


def headwater_index(sql_client, table: str) -> KeyIndex | None:
    """The key index Headwater gave ``table``, if it has one (a table no longer merged loses it on its next load)."""
    existing = _existing(sql_client, [table])
    return existing[table].ours if table in existing else None


def sync_key_indexes(sql_client, wanted: dict[str, KeyIndex | None],
                     before_change: Callable[[str], None] | None = None) -> dict[str, KeyIndex | None]:
    """Give each table of ``wanted`` its key index (None: no Headwater index); returns the tables changed.

    ``before_change(table)`` is called before an index of ``table`` is dropped or created.

    Runs in the caller's transaction. A table that holds a key twice gets a plain index where a unique
    one was wanted, so the load goes on.
    """
    if not wanted:
        return {}
    existing = _existing(sql_client, sorted(wanted))
    changed: dict[str, KeyIndex | None] = {}
    for table, index in sorted(wanted.items()):
        if table not in existing:
            continue
        have = existing[table]
        if index is not None and not index.unique and have.unanalyzed:
            # Loaded, never analyzed (autovacuum has not come by): without statistics the planner takes a key
            # for one that matches thousands of rows and reads the table instead of using the index (a unique
            # index tells it otherwise). ANALYZE reads a sample of bounded size, whatever the table's.
            sql_client.execute_sql(f"ANALYZE {sql_client.make_qualified_table_name(table)}")
        if have.ours == index or (index is not None and have.ours is None and _covered(have.led_by, index)):
            continue
        qualified_index = sql_client.make_qualified_table_name(key_index_name(table))
        if before_change is not None:
            before_change(table)
        if have.ours is not None:
            sql_client.execute_sql(f"DROP INDEX IF EXISTS {qualified_index}")
        if index is not None:
            index = _create(sql_client, table, index)
        changed[table] = index
    return changed


def _covered(led_by: set[tuple[str, ...]], index: KeyIndex) -> bool:
    # An index of the user's (or a primary-key constraint) led by the key columns serves the lookup already.
    return any(columns[:len(index.columns)] == index.columns for columns in led_by)


def _create(sql_client, table: str, index: KeyIndex) -> KeyIndex:
    name = sql_client.capabilities.escape_identifier(key_index_name(table))
    columns = ", ".join(sql_client.escape_column_name(column) for column in index.columns)
    target = sql_client.make_qualified_table_name(table)
    # Asked before, not found out by a failed CREATE: a failed statement would end dlt's transaction. Building
    # the index reads the whole table anyway, once.
    if index.unique and sql_client.execute_sql(
            f"SELECT 1 FROM {target} GROUP BY {columns} HAVING count(*) > 1 LIMIT 1"):
        index = KeyIndex(index.columns, unique=False)  # rows appended before the table was merged hold a key twice
    sql_client.execute_sql(f"CREATE {'UNIQUE ' if index.unique else ''}INDEX {name} ON {target} ({columns})")
    return index

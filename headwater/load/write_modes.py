"""How each table is written: the dlt hints for a table's write mode, deletes and cursor.

Modes (``write_disposition`` in headwater.yaml):

- ``append``: every extracted row is added.
- ``merge``: upsert on the primary key with dlt's ``delete-insert`` strategy. It deduplicates each
  load by key (keeping the row with the highest ``deduplicate_by``), so a replayed load job or a key
  that appears twice in one batch never duplicates rows. dlt's ``upsert`` strategy does neither.
- ``replace``: each run's extract becomes the whole table. The destination is configured with
  ``insert-from-staging`` (see ``REPLACE_STRATEGY``), so the swap happens in one transaction and a
  crash never leaves the table empty.
- ``scd2``: history. Each distinct version of a row is kept with ``_valid_from``/``_valid_to``
  (``_valid_to`` is NULL for the current version). A version is identified by a deterministic hash
  of the row's columns computed on the Arrow batch (``ROW_HASH_COLUMN``): an unchanged row is never
  re-versioned.
    * without ``cursor`` (full extract): a current row whose key is missing from the extract is retired;
    * with ``cursor`` (incremental): only keys present in the extract are compared; a missing key is
      just unchanged. Deletes then come only from ``deleted_flag``.

``deleted_flag``: a column that marks rows the source deleted (a boolean that is true, or any other
type that is non-null, e.g. ``deleted_at``). On ``merge`` such rows are removed from the destination
(dlt ``hard_delete``); on ``scd2`` they retire the current version and are not stored as a version.
"""

from __future__ import annotations

import hashlib
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.extract import DltResource

from headwater.project.config import TableConfig
from headwater.quarantine.naming import is_quarantine_table

# The replace strategy Headwater configures on its Postgres destination: staging, then one swap transaction.
REPLACE_STRATEGY = "insert-from-staging"
# Column holding the row-version hash of scd2 tables, and their validity range.
ROW_HASH_COLUMN = "_headwater_row_hash"
VALID_FROM, VALID_TO = "_valid_from", "_valid_to"
# Separates values inside the hashed text; NUL marks a null value, since a Postgres text value cannot contain it.
_FIELD_SEPARATOR = "\x1f"
_NULL = "\x00"


def table_hints(table: TableConfig, incremental: Any = None, change_feed: bool = False) -> dict:
    """Keyword arguments for ``DltResource.apply_hints`` that make dlt write ``table`` as configured.

    ``incremental`` replaces the table's regular cursor (a backfill window passes its own). ``change_feed``: the
    connector's loads hold only changed keys (Connector.change_feed), as an incremental extract does.
    """
    mode = table.effective_write_disposition
    hints: dict = {}
    columns: dict[str, dict] = {}
    if table.primary_key:
        hints["primary_key"] = table.primary_key
    if table.cursor:
        hints["incremental"] = incremental if incremental is not None else dlt.sources.incremental(table.cursor)

    if mode == "merge":
        hints["write_disposition"] = {"disposition": "merge", "strategy": "delete-insert"}
        if table.deduplicate_by:
            columns[table.deduplicate_by] = {"name": table.deduplicate_by, "dedup_sort": "desc"}
        if table.deleted_flag:
            columns[table.deleted_flag] = {"name": table.deleted_flag, "hard_delete": True}
    elif mode == "scd2":
        disposition: dict = {
            "disposition": "merge",
            "strategy": "scd2",
            "validity_column_names": [VALID_FROM, VALID_TO],
            "row_version_column_name": ROW_HASH_COLUMN,
        }
        if table.deleted_flag:
            # Flagged rows are left out of the new versions, so their current version is retired.
            disposition["source_filter"] = not_deleted_condition(table.deleted_flag)
        if table.cursor or change_feed:
            # An incremental extract holds only changed rows: compare just the keys it contains.
            keys = _key_list(table.primary_key)
            disposition["destination_scope"] = f"({keys}) IN (SELECT {keys} FROM {{staging_table}})"
        hints["write_disposition"] = disposition
    else:
        hints["write_disposition"] = mode
    if columns:
        hints["columns"] = columns
    return hints


def apply_write_mode(resource: DltResource, table: TableConfig, incremental: Any = None,
                     change_feed: bool = False) -> None:
    """Apply ``table``'s write disposition, keys and cursor to ``resource`` as dlt hints."""
    resource.apply_hints(**table_hints(table, incremental, change_feed))


def add_history_hash(resource: DltResource, table: TableConfig) -> None:
    """For scd2, add the row-hash column to every item: added last, so it covers the rows as stored."""
    if table.effective_write_disposition == "scd2":
        resource.add_map(_hash_unless_quarantined)


def _hash_unless_quarantined(item: Any, meta: Any = None) -> Any:
    # Rows on their way to the quarantine table keep their own columns.
    hints = getattr(meta, "hints", None)
    if isinstance(hints, dict) and is_quarantine_table(str(hints.get("table_name") or "")):
        return item
    return add_row_hash(item)


def not_deleted_condition(column: str) -> str:
    """SQL that is true for rows the source did not delete, whatever the flag column's type.

    A boolean flag deletes when true; any other type deletes when non-null. Casting to text covers
    both in one expression, because Postgres renders a false boolean as 'false'.
    """
    quoted = _quote(column)
    return f"({quoted} IS NULL OR CAST({quoted} AS TEXT) = 'false')"


def add_row_hash(item: Any) -> Any:
    """Add ``ROW_HASH_COLUMN`` (md5 of every other column, by column name) to an Arrow table or rows."""
    if isinstance(item, pa.RecordBatch):
        item = pa.Table.from_batches([item])
    if isinstance(item, pa.Table):
        return _hash_arrow(item)
    if isinstance(item, dict):
        return {**item, ROW_HASH_COLUMN: _hash_values([item.get(name) for name in sorted(_hashed(item))])}
    if isinstance(item, list):
        return [add_row_hash(row) for row in item]
    return item


def _hash_arrow(table: pa.Table) -> pa.Table:
    names = sorted(_hashed(table.column_names))
    if ROW_HASH_COLUMN in table.column_names:
        table = table.drop_columns([ROW_HASH_COLUMN])
    if not names or table.num_rows == 0:
        return table.append_column(ROW_HASH_COLUMN, pa.array([_hash_values([])] * table.num_rows, pa.string()))
    texts = [_as_text(table[name]) for name in names]
    # One text per row, columns in name order, so the hash does not depend on column order or batching.
    joined = pc.binary_join_element_wise(*texts, _FIELD_SEPARATOR)
    hashes = [hashlib.md5(value.encode()).hexdigest() for value in joined.to_pylist()]
    return table.append_column(ROW_HASH_COLUMN, pa.array(hashes, pa.string()))


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    try:
        text = pc.cast(column, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):  # nested or binary values: their Python repr
        text = pa.chunked_array([pa.array([None if v is None else repr(v) for v in column.to_pylist()], pa.string())])
    return pc.fill_null(text, _NULL)


def _hash_values(values: list) -> str:
    text = _FIELD_SEPARATOR.join(_NULL if value is None else str(value) for value in values)
    return hashlib.md5(text.encode()).hexdigest()


def _hashed(names) -> list[str]:
    # dlt's own columns are added after this step, but a re-hashed item must not hash its old hash.
    return [name for name in names if name != ROW_HASH_COLUMN and not name.startswith("_dlt_")]


def _key_list(primary_key: str | list[str] | None) -> str:
    keys = [primary_key] if isinstance(primary_key, str) else list(primary_key or [])
    return ", ".join(_quote(key) for key in keys)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'

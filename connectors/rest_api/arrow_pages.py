"""Flat pages of a rest_api resource as Arrow tables, typed as dlt types the same records given as dicts.

dlt normalizes records given as dicts one by one in Python; an Arrow table it writes to Parquet as it
extracts, and its normalize step only moves the file. A page whose records are all flat (every value
null, a boolean, a number or a string) becomes one Arrow table holding what dlt's normalizer would
have made of those records:

- columns in the order their keys first appear; a column with no value in the rows that load is left
  out, as dlt creates no column until a value arrives;
- integers as bigint, floats (and integers among floats) as double, booleans, strings as text;
- strings dlt detects as ISO timestamps (the column's first value that loads does, or the table has
  the column as a timestamp already) as timestamps with time zone, a value without an offset taken as
  UTC, when every value parses as one (else the column is text);
- `_dlt_load_id` and `_dlt_id` last, in dlt's order.

Timestamps are typed, and columns of nulls left out, in a second step that runs after dlt's
incremental step: dlt compares an incremental cursor with the value in the source's state as the
API wrote it (text), exactly as it does for dicts, and the table's steps and rules see the columns
they saw before (a `required` column present, if null). Until then such a column carries
``TYPED_LATER`` in its Arrow field, and the table processor leaves it to this module.

Pages after the first are joined (``BATCH_RECORDS``) and fetched a few ahead in a background thread.

A page with nested values (objects, arrays), records that are not objects, integers beyond 64 bits or
a column mixing kinds (a boolean and a number, a number and a string) stays a list of dicts: dlt
nests and types it as before (child tables, `a__b` columns, variant columns). A resource that other
resources resolve from stays dicts as a whole: its children read fields of each record.
"""

from __future__ import annotations

import base64
import functools
import os
from array import array as typed_array
from itertools import chain
from typing import Any, Callable, Iterator

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.data_types.type_helpers import coerce_value
from dlt.common.schema.detections import is_iso_timestamp
from dlt.extract import DltResource
from dlt.extract.items_transform import ItemTransform

from headwater.common.widening import ALL_NULL_HINT, TYPED_LATER, is_text
from headwater.load.read_ahead import read_ahead

TIMESTAMP = pa.timestamp("us", "UTC")
BATCH_RECORDS = 10_000  # records per Arrow table, pages joined (dlt's fixed cost per item is paid once per table)
ROW_ID_BYTES = 12  # random bytes per `_dlt_id`: 16 characters of base64 (dlt's own ids have 10 bytes, 14 characters)
_LATER = {TYPED_LATER: b"1"}


def page_as_table(rows: Any, stored: dict[str, dict] | None = None,
                  normalize: Callable[[str], str] = str) -> pa.Table | None:
    """A page of records as an Arrow table, or None when it must stay dicts (see the module docstring).

    ``stored``: the table's columns as dlt's schema has them so far, named as the schema's naming
    convention (``normalize``) names the records' keys.
    """
    stored = stored or {}
    if not isinstance(rows, list) or not rows:
        return None
    try:
        table = _columns_of(rows)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None  # records that are not objects, kinds Arrow cannot hold in one column, integers beyond 64 bits
    fields, arrays = [], []
    for field, array in zip(table.schema, table.columns, strict=True):
        kind = field.type
        if pa.types.is_nested(kind):
            return None
        if pa.types.is_null(kind) or (is_text(kind) and _may_be_timestamps(stored.get(normalize(field.name)))):
            field = field.with_metadata(_LATER)
        fields.append(field)
        arrays.append(array)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _columns_of(rows: list) -> pa.Table:
    """The records as columns; a TypeError when one is not an object (dict.keys refuses it)."""
    first = dict.keys(rows[0])
    if all(map(first.__eq__, map(dict.keys, rows))):
        return pa.Table.from_pylist(rows)  # Arrow takes the columns from the first record
    keys = dict.fromkeys(chain.from_iterable(rows))  # every key, in the order they first appear
    return pa.table({key: pa.array([row.get(key) for row in rows]) for key in keys})


def _stored_type(stored: dict | None) -> str | None:
    return None if stored is None or stored.get(ALL_NULL_HINT) else stored.get("data_type")


def _may_be_timestamps(stored: dict | None) -> bool:
    """A text column dlt may type as timestamps: new to the table (its first value decides), or one already."""
    return _stored_type(stored) in (None, "timestamp")


def _holds_timestamps(array: pa.ChunkedArray, stored: dict | None) -> bool:
    """Whether dlt would type this text column as a timestamp, and every value of it parses as one."""
    stored_type = _stored_type(stored)
    if stored_type is None:  # dlt types a new column by its first value
        first = array.drop_null()[:1].to_pylist()
        if not first or is_iso_timestamp(str, first[0]) != "timestamp":
            return False
    elif stored_type != "timestamp":
        return False
    return iso_timestamps(array) is not None


def iso_timestamps(array: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array | None:
    """ISO 8601 text as timestamps in UTC as dlt's normalizer makes them; None when a value is not one.

    Arrow's parser reads the usual forms (offsets `Z`, `+hh:mm`, `+hhmm`) in C++; a value without an
    offset is UTC. Any other form goes through dlt's own coercion, value by value.
    """
    try:
        return pc.cast(array, TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        return pc.assume_timezone(pc.cast(array, pa.timestamp("us")), "UTC")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    try:
        values = [None if value is None else coerce_value("timestamp", "text", value) for value in array.to_pylist()]
        return pa.array(values, type=TIMESTAMP)
    except (ValueError, TypeError, OverflowError, pa.ArrowException):
        return None


def typed_later(table: pa.Table, stored: dict[str, dict] | None = None,
                normalize: Callable[[str], str] = str) -> pa.Table:
    """The marked columns typed as dlt would type the values that reached it: text that dlt detects as ISO
    timestamps as timestamps, columns without a value left out; dlt's `_dlt_load_id` and `_dlt_id` columns
    after the others. ``stored`` and ``normalize`` as for page_as_table."""
    stored = stored or {}
    fields, arrays = [], []
    for field, array in zip(table.schema, table.columns, strict=True):
        if array.null_count == len(array):
            continue  # dlt makes no column of a key without a value (a step or rule may have taken the others)
        if (field.metadata or {}).get(TYPED_LATER) == b"1":
            timestamps = is_text(field.type) and _holds_timestamps(array, stored.get(normalize(field.name)))
            field = pa.field(field.name, TIMESTAMP if timestamps else field.type)
            array = iso_timestamps(array) if timestamps else array
        fields.append(field)
        arrays.append(array)
    rows = table.num_rows
    # dlt writes the load id into its column where it finds one, so this placeholder gives dict rows' order.
    fields.append(pa.field("_dlt_load_id", pa.string(), nullable=False))
    arrays.append(pa.nulls(rows, pa.string()))
    fields.append(pa.field("_dlt_id", pa.string(), nullable=False))
    arrays.append(row_ids(rows))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=table.schema.metadata))


def row_ids(count: int) -> pa.StringArray:
    """``count`` random row ids for `_dlt_id`, like dlt's (base64 text), made in one go rather than one by one."""
    text = base64.b64encode(os.urandom(ROW_ID_BYTES * count))  # every 3 bytes give 4 characters: no padding
    width = ROW_ID_BYTES * 4 // 3
    offsets = typed_array("i", range(0, width * count + 1, width))
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text))


class JoinedPages(list):
    """Pages of one walk handed on together: each stays a page of its own until it is an Arrow table."""


class _PagesAsTables(ItemTransform):
    """Right after the pages are fetched: each flat page an Arrow table (timestamps still text, nulls kept).

    Joined pages whose tables have one schema leave as one table; a page whose columns differ from
    the one before (a field that changed type) starts another, which the table processor widens to.
    """

    def __init__(self, table: str) -> None:
        super().__init__(self)
        self.table = table

    def __call__(self, item: Any, meta: Any = None) -> Any:
        if not isinstance(item, list):
            return item
        if not isinstance(item, JoinedPages):
            table = self._table_of(item)
            return item if table is None else table
        return self._joined(item)

    def _joined(self, pages: JoinedPages) -> Iterator[Any]:
        tables: list[pa.Table] = []
        for page in pages:
            table = self._table_of(page)
            if tables and (table is None or not table.schema.equals(tables[0].schema, check_metadata=True)):
                yield pa.concat_tables(tables)
                tables = []
            if table is None:
                yield page  # stays records: dlt nests and types them
            else:
                tables.append(table)
        if tables:
            yield pa.concat_tables(tables)

    def _table_of(self, page: list) -> pa.Table | None:
        schema = _live_schema()
        if schema is None or self.table not in schema.tables:
            return page_as_table(page)
        return page_as_table(page, schema.get_table_columns(self.table), schema.naming.normalize_identifier)


class _TypedLater(ItemTransform):
    """After dlt's incremental step: the marked columns typed, dlt's columns added."""

    placement_affinity = 1.2  # behind the incremental (1) and add_limit (1.1), before a fork to child resources

    def __init__(self, table: str) -> None:
        super().__init__(self)
        self.table = table

    def __call__(self, item: Any, meta: Any = None) -> Any:
        # Rows for the quarantine table (named in meta) and pages left as dicts pass as they are.
        if not isinstance(item, pa.Table) or _names_another_table(meta):
            return item
        schema = _live_schema()
        if schema is None or self.table not in schema.tables:
            return typed_later(item)
        return typed_later(item, schema.get_table_columns(self.table), schema.naming.normalize_identifier)


def with_arrow_pages(resources: list[DltResource]) -> list[DltResource]:
    """resources, each that no other resource resolves from turning its flat pages into Arrow tables."""
    parents = {id(resource._pipe.parent) for resource in resources if resource._pipe.parent is not None}
    for resource in resources:
        if id(resource._pipe) in parents or not isinstance(resource.table_name, str):
            continue  # a parent's children read its records; a table named per record is named by dlt per row
        if resource._pipe.parent is None and callable(resource._pipe.gen):
            resource._pipe.replace_gen(_joining_pages(resource._pipe.gen))
        resource.add_step(_PagesAsTables(resource.table_name))
        resource.add_step(_TypedLater(resource.table_name))
    return resources


def _joining_pages(paginate: Callable) -> Callable:
    """paginate, its pages handed on in JoinedPages of about BATCH_RECORDS records; the first page alone.

    dlt's work per item (schema, hints, a Parquet write) and the table processor's are per list, not
    per record: fewer, longer lists cost less. The pages after the first are asked for in a background
    thread (headwater.load.read_ahead), a few ahead, while this thread turns the earlier ones into Arrow
    and dlt writes them. The first page goes on its own and before any other is asked for, so a read
    limited to one item (`headwater check`) still asks for one page only.
    """

    @functools.wraps(paginate)  # dlt reads the signature (the incremental parameter) through __wrapped__
    def pages(*args: Any, **kwargs: Any) -> Iterator[Any]:
        walk = paginate(*args, **kwargs)
        first = next(walk, None)
        if first is None:
            return
        yield first
        joined, records = JoinedPages(), 0
        # The next pages are fetched and parsed in a background thread while dlt writes this batch.
        for page in read_ahead(walk):
            if not isinstance(page, list):
                if joined:
                    yield joined
                    joined, records = JoinedPages(), 0
                yield page
                continue
            joined.append(page)
            records += len(page)
            if records >= BATCH_RECORDS:
                yield joined
                joined, records = JoinedPages(), 0
        if joined:
            yield joined

    return pages


def _live_schema():
    try:
        return dlt.current.source_schema()
    except Exception:  # outside an extract (a resource iterated directly): nothing stored yet
        return None


def _names_another_table(meta: Any) -> bool:
    hints = getattr(meta, "hints", None)
    return isinstance(hints, dict) and bool(hints.get("table_name"))

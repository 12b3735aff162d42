"""Column types that widen instead of rejecting: one lattice for batches on the way in and tables in Postgres.

A column keeps the type its values have had, and takes a wider one when new values need it:
``bigint`` → ``decimal`` → ``double``, ``date`` → ``timestamp``, and anything that meets an
incompatible kind → ``text``. Nothing is narrowed, with one exception: a column created from values
that were all missing (``ALL_NULL_HINT``) takes the type of the first values it gets, so a sparse
column or a file where a column happens to be empty does not fix it as text forever.

Two places apply it: ``conform_batch`` on each Arrow batch before dlt sees it (a narrower batch is
cast up to the column's type; a wider one changes the column's type in dlt's schema), and the
Postgres destination (headwater.postgres.loader), which alters a table's column when dlt's schema
has widened it. JSON sits outside the lattice: a text column whose Arrow field carries
``JSON_TEXT_METADATA`` (objects and arrays of a landing file) is created as json, and a column that
is already text keeps its type. A column whose field carries ``TYPED_LATER`` is one its connector
types itself after dlt's incremental step (ISO timestamps that step compares as text, a column with
no value yet): ``conform_batch`` leaves it as it comes.
"""

from __future__ import annotations

from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.libs.pyarrow import get_column_type_from_py_arrow, get_py_arrow_datatype

# A column created from nothing but nulls: it takes the type of the first values it gets.
ALL_NULL_HINT = "x-headwater-all-null"
# Arrow field metadata of a text column that holds JSON text (objects and arrays of a landing file):
# the column is created as json (jsonb in Postgres), or takes that type after holding only nulls.
JSON_TEXT_METADATA = b"headwater.json_text"
# Arrow field metadata of a column its connector types after dlt's incremental step (text that becomes
# timestamps, nulls that become no column: connectors/rest_api/arrow_pages.py): not conformed here.
TYPED_LATER = b"headwater.typed_later"
# The kinds the lattice orders; columns of other types (json, binary, time, wei) are left as they come.
LATTICE = frozenset({"bool", "bigint", "decimal", "double", "date", "timestamp", "text"})
MAX_DECIMAL_PRECISION = 38
BIGINT_DIGITS = 19


def widest(current: dict, new: dict) -> dict:
    """The dlt column type (data_type, precision, scale, timezone) that holds the values of both."""
    a, b = current.get("data_type"), new.get("data_type")
    if a is None:
        return _type_only(new)
    if b is None or a not in LATTICE or b not in LATTICE:
        return _type_only(current)
    if a == b:
        if a == "decimal":
            return _decimal_for(current, new)
        if a == "bigint":
            precisions = [current.get("precision"), new.get("precision")]
            return {"data_type": "bigint"} if None in precisions else {"data_type": "bigint",
                                                                         "precision": max(precisions)}
        return _type_only(current)
    pair = {a, b}
    if pair == {"bigint", "double"} or pair == {"decimal", "double"}:
        return {"data_type": "double"}
    if pair == {"bigint", "decimal"}:
        decimal = current if a == "decimal" else new
        return _decimal_for(decimal, {"data_type": "decimal", "precision": BIGINT_DIGITS, "scale": 0})
    if pair == {"date", "timestamp"}:
        return _type_only(current if a == "timestamp" else new)
    return {"data_type": "text"}


def is_widening(stored: dict, new: dict) -> bool:
    """``new`` holds every value of ``stored`` and differs from it (what the destination may alter to)."""
    return _type_only(stored) != _type_only(new) and widest(stored, new) == _type_only(new)


def _decimal_for(a: dict, b: dict) -> dict:
    if a.get("precision") is None or b.get("precision") is None:
        return _type_only(a)  # an unconstrained decimal already holds any number
    scale = max(a.get("scale") or 0, b.get("scale") or 0)
    digits = max((a.get("precision") or MAX_DECIMAL_PRECISION) - (a.get("scale") or 0),
                 (b.get("precision") or MAX_DECIMAL_PRECISION) - (b.get("scale") or 0))
    if digits + scale > MAX_DECIMAL_PRECISION:
        return {"data_type": "double"}
    return {"data_type": "decimal", "precision": digits + scale, "scale": scale}


def _type_only(column: dict) -> dict:
    return {key: column[key] for key in ("data_type", "precision", "scale", "timezone")
            if column.get(key) is not None}


def conform_batch(batch: pa.Table, columns: dict[str, dict], caps: Any,
                  normalize: Callable[[str], str] = str,
                  typed_by_source: frozenset[str] = frozenset(),
                  retyped: frozenset[str] = frozenset()) -> tuple[pa.Table, dict[str, dict]]:
    """``batch`` cast to its table's column types, and the column hints dlt needs where the batch widens one.

    ``columns``: the table's columns as dlt's schema has them so far (the destination's types, and
    what earlier batches of this run made them), named as the schema's naming convention
    (``normalize``) names the batch's columns. ``typed_by_source``: columns whose type the connector
    declares (a database column's type): they are left as the connector sends them, unless they are
    ``retyped``: a step changed their type, so they are conformed like any column and always get a
    hint of their type, which replaces the connector's. Returns the batch and {column: hint} for each
    column whose type changes (widened, created from nulls, typed after being all nulls, or retyped).
    """
    hints: dict[str, dict] = {}
    arrays, fields, changed = [], [], False
    for field, array in zip(batch.schema, batch.columns, strict=True):
        if (field.name in typed_by_source and field.name not in retyped) or _typed_later(field):
            arrays.append(array)
            fields.append(field)
            continue
        column = columns.get(normalize(field.name)) or {}
        array, hint = _conform_column(field, array, column, caps)
        if field.name in retyped and hint is None:
            hint = type_hint(array.type)  # said for every batch: the connector's declared type must not win
        if hint is not None:
            hints[field.name] = hint
        if array.type != field.type:
            changed = True
            field = pa.field(field.name, array.type, nullable=True, metadata=field.metadata)
        arrays.append(array)
        fields.append(field)
    if not changed:
        return batch, hints
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=batch.schema.metadata)), hints


def _typed_later(field: pa.Field) -> bool:
    return (field.metadata or {}).get(TYPED_LATER) == b"1"


def _conform_column(field: pa.Field, array, column: dict, caps: Any):
    stored = _type_only(column)
    if pa.types.is_null(field.type):
        if not stored.get("data_type"):  # a new column with no value yet: text until values arrive
            return pc.cast(array, pa.string()), {"data_type": "text", "nullable": True, ALL_NULL_HINT: True}
        return _cast(array, stored, caps), None
    try:
        arriving = get_column_type_from_py_arrow(field.type)
    except Exception:  # a type dlt does not map: dlt reports it itself
        return array, None
    holds_json = is_text(field.type) and (field.metadata or {}).get(JSON_TEXT_METADATA) == b"1"
    if holds_json:
        arriving = {"data_type": "json"}
    if not stored.get("data_type"):
        return array, ({"data_type": "json", "nullable": True} if holds_json else None)
    if column.get(ALL_NULL_HINT):  # the column had only nulls: it takes this batch's type
        return array, {**_hint(arriving), ALL_NULL_HINT: False}
    target = widest(stored, arriving)
    if target == stored:
        return _cast(array, stored, caps), None
    return _cast(array, target, caps), _hint(target)


def type_hint(arrow_type: pa.DataType) -> dict:
    """The dlt column hint that gives a column exactly this Arrow type, a precision or scale it had before cleared."""
    return _hint(_column_type(arrow_type))


def retype_hint(stored: dict, arrow_type: pa.DataType) -> dict:
    """The hint for a column whose values now have ``arrow_type``: that type, or the wider one the column has."""
    arriving = _column_type(arrow_type)
    if not stored.get("data_type") or stored.get(ALL_NULL_HINT):
        return _hint(arriving)
    return _hint(widest(stored, arriving))


def _column_type(arrow_type: pa.DataType) -> dict:
    column_type = get_column_type_from_py_arrow(arrow_type)
    if column_type["data_type"] == "timestamp" and column_type.get("precision") == 6:
        # Microseconds are Postgres' own precision: the plain `timestamp with time zone` every source lands as.
        del column_type["precision"]
    return column_type


def _hint(column_type: dict) -> dict:
    """A dlt column hint that sets the type whole: a precision or scale the old type had does not stay."""
    return {"data_type": column_type["data_type"], "precision": column_type.get("precision"),
            "scale": column_type.get("scale"), **({"timezone": column_type["timezone"]}
                                                  if "timezone" in column_type else {})}


def is_text(arrow_type) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type)


def _cast(array, column: dict, caps: Any):
    if column.get("data_type") not in LATTICE:
        return array
    target = get_py_arrow_datatype(column, caps, "UTC")
    if array.type == target or (is_text(array.type) and is_text(target)):
        return array  # string, large_string and string_view are one type to dlt and Postgres
    if pa.types.is_timestamp(array.type) and pa.types.is_timestamp(target) and array.type.tz is None and target.tz:
        # Timestamps without a zone are taken as UTC, the policy for every source.
        array = pc.assume_timezone(array, "UTC")
    try:
        return pc.cast(array, target, safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return array  # left as it is: the destination's cast reports the column and the file

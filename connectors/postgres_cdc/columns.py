"""A source table's columns and key, read from PostgreSQL's catalog, and the dlt hints that land them exactly.

Values travel as the text PostgreSQL writes (snapshot and changes alike); the hints give each raw column
the source column's type, and the destination converts the text with that type's own input function
(headwater.postgres.column_types), so a value lands as the source held it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from headwater.postgres.column_types import UNCHANGED_COLUMNS, UNCONSTRAINED_NUMERIC

# Columns every change row carries: where it came from in the source's log, and what it did.
LSN = "_cdc_lsn"  # the end of the source transaction that wrote the row (the snapshot's point for snapshot rows)
OPERATION = "_cdc_op"  # snapshot, insert, update, delete
COMMITTED_AT = "_cdc_committed_at"  # when that transaction committed (the snapshot's start for snapshot rows)
DELETED = "_cdc_deleted"  # deletes: apply — true on a delete, which removes the key from raw
DELETED_AT = "_deleted_at"  # deletes: flag — when the source deleted the row, which stays in raw
# UNCHANGED_COLUMNS: columns an update left as they were (unchanged TOASTed values), or a flagged delete does
# not carry; the raw row's values are kept for them (headwater.postgres.loader).

_INTEGER_BITS = {"int2": 16, "int4": 32, "int8": 64}
_TEXT = {"data_type": "text"}
_BY_TYPE = {
    "float4": {"data_type": "double"}, "float8": {"data_type": "double"}, "bool": {"data_type": "bool"},
    "date": {"data_type": "date"}, "time": {"data_type": "time"},
    "timestamptz": {"data_type": "timestamp", "timezone": True},
    "timestamp": {"data_type": "timestamp", "timezone": False},
    "json": {"data_type": "json"}, "jsonb": {"data_type": "json"}, "bytea": {"data_type": "binary"},
}


class TableError(ValueError):
    """A configured table the source cannot stream; the message names it and says what to do."""


@dataclass(frozen=True)
class SourceTable:
    schema: str
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    hints: dict[str, dict]  # column -> dlt column hints

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


_COLUMNS = """
    select a.attname, coalesce(b.typname, t.typname), a.atttypmod, t.typcategory = 'A' or b.typcategory = 'A',
           a.attnum = any(coalesce(i.indkey::int2[], '{}'))
    from pg_attribute a
    join pg_type t on t.oid = a.atttypid
    left join pg_type b on b.oid = t.typbasetype and t.typtype = 'd'
    left join pg_index i on i.indrelid = a.attrelid and i.indisprimary
    where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped
    order by a.attnum
"""


def read_table(connection: psycopg.Connection, schema: str, name: str) -> SourceTable:
    found = connection.execute("select to_regclass(format('%%I.%%I', %s::text, %s::text))::oid",
                               (schema, name)).fetchone()[0]
    if found is None:
        raise TableError(f"table {schema}.{name} does not exist in the source database (check `tables:` and "
                         f"`schema:` of the postgres_cdc source)")
    columns, key, hints = [], [], {}
    for column, type_name, modifier, is_array, in_key in connection.execute(_COLUMNS, (found,)):
        columns.append(column)
        if in_key:
            key.append(column)
        hints[column] = {"name": column, **column_hint(type_name, modifier, is_array), "nullable": not in_key}
    if not key:
        raise TableError(f"table {schema}.{name} has no primary key: changes are merged on it. Add one "
                         f"(ALTER TABLE {schema}.{name} ADD PRIMARY KEY (...)) or leave the table out of `tables:`")
    return SourceTable(schema, name, tuple(columns), tuple(key), hints)


def column_hint(type_name: str, modifier: int, is_array: bool = False) -> dict:
    """dlt's type for a PostgreSQL column type; types dlt has none for (interval, inet, arrays...) land as text."""
    if is_array:
        return dict(_TEXT)
    if type_name in _INTEGER_BITS:
        return {"data_type": "bigint", "precision": _INTEGER_BITS[type_name]}
    if type_name == "numeric":
        if modifier < 0:  # numeric without precision: any number of digits, any scale
            return {"data_type": "decimal", UNCONSTRAINED_NUMERIC: True}
        precision, scale = ((modifier - 4) >> 16) & 0xFFFF, (modifier - 4) & 0xFFFF
        return {"data_type": "decimal", "precision": precision, "scale": scale}
    return dict(_BY_TYPE.get(type_name, _TEXT))


def metadata_hints(deletes: str) -> dict[str, dict]:
    hints = {
        LSN: {"name": LSN, "data_type": "bigint"},
        OPERATION: {"name": OPERATION, "data_type": "text"},
        COMMITTED_AT: {"name": COMMITTED_AT, "data_type": "timestamp", "timezone": True},
        UNCHANGED_COLUMNS: {"name": UNCHANGED_COLUMNS, "data_type": "text"},
    }
    if deletes == "flag":
        hints[DELETED_AT] = {"name": DELETED_AT, "data_type": "timestamp", "timezone": True}
    else:
        hints[DELETED] = {"name": DELETED, "data_type": "bool", "hard_delete": True}
    return hints

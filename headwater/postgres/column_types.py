"""Postgres column types that hold source values exactly, and the COPY that fills them.

dlt's Postgres destination lands JSON as `json` when it loads Parquet, and a decimal without a declared
precision as numeric(38, 9), which rounds. Headwater lands JSON as `jsonb`, and a decimal marked with
UNCONSTRAINED_NUMERIC as `numeric` without precision or scale. The ADBC driver's binary COPY cannot
fill either type from what Arrow holds:

- jsonb's binary input is a version byte (1) and then the JSON text; the driver sends the bare text, so
  text bound for a jsonb column gets the version byte in front;
- the driver writes text as it is, whatever the column's type: text bound for a bigint or a time column
  would be read as that type's binary form, refused with a message about the protocol or, when its
  length happens to fit, stored as a wrong value. Text reaches such columns when a column's values
  changed type (decimals wider than Arrow's decimal types, or of no fixed scale, arrive as text on
  purpose): a load file with such a column is copied into a temporary table, where it stays text, and
  Postgres converts it on the way into the real table, refusing what does not parse with its own reason.

Which columns need this is read from the destination table itself, so a table created before (with a
`json` column, say) keeps getting what its columns take.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.compute as pc
from dlt.destinations.impl.postgres.factory import PostgresTypeMapper
from dlt.destinations.impl.postgres.postgres_adapter import GEOMETRY_HINT

# dlt column hint: a decimal of no fixed precision or scale (PostgreSQL's bare `numeric`, say).
UNCONSTRAINED_NUMERIC = "x-unconstrained-numeric"
# A merged row's column naming (as a JSON array) the columns whose stored values the row keeps: a change
# feed's update that did not carry them (PostgreSQL's unchanged TOASTed values), or a flagged delete.
UNCHANGED_COLUMNS = "_cdc_unchanged"
JSONB_VERSION = pa.scalar(b"\x01", pa.binary())
# Destination types that take text as the driver writes it; text bound for any other type is converted by Postgres.
TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "citext", "json"})
JSONB = "jsonb"  # takes text too, given jsonb's binary form (with_jsonb_columns)

# {schema} and {table} are the driver's placeholders: $1 and $2 for ADBC, %s for psycopg.
_COLUMN_TYPES = """
    select a.attname, t.typname from pg_attribute a join pg_type t on t.oid = a.atttypid
    where a.attrelid = to_regclass(format('%I.%I', {schema}::text, {table}::text)) and a.attnum > 0
      and not a.attisdropped
"""
_DECLARED_TYPES = """
    select a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, null) from pg_attribute a
    where a.attrelid = to_regclass(format('%I.%I', {schema}::text, {table}::text)) and a.attnum > 0
      and not a.attisdropped
"""


class ExactPostgresTypeMapper(PostgresTypeMapper):
    """dlt's Postgres types, with JSON as jsonb and unconstrained decimals as bare numeric."""

    def to_destination_type(self, column, table) -> str:
        if not column.get(GEOMETRY_HINT):
            if column["data_type"] == "json":
                return "jsonb"
            if column["data_type"] == "decimal" and column.get(UNCONSTRAINED_NUMERIC):
                return "numeric"
        return super().to_destination_type(column, table)


def with_exact_types(capabilities):
    """Postgres destination capabilities that create columns with ExactPostgresTypeMapper."""
    capabilities.type_mapper = ExactPostgresTypeMapper
    return capabilities


def copy_into(cursor, table: str, batches: pa.RecordBatchReader, db_schema_name: str | None = None, **ingest) -> int:
    """COPY ``batches`` into ``db_schema_name.table`` through the ADBC ``cursor``; returns the rows copied.

    Text bound for jsonb is given jsonb's binary form; a file with text bound for a column of another
    type (numeric, bigint, time...) is copied through a temporary table (see the module docstring).
    Anything else is copied as it is.
    """
    types = _destination_types(cursor, db_schema_name, table)
    text_columns = [field.name for field in batches.schema if _is_text(field.type)]
    if any(_converted_from_text(types.get(name)) for name in text_columns):
        return _copy_through_text_table(cursor, table, batches, db_schema_name, types, text_columns)
    jsonb = [name for name in text_columns if types.get(name) == JSONB]
    if jsonb:
        batches = with_jsonb_columns(batches, jsonb)
    schema = {"db_schema_name": db_schema_name} if db_schema_name else {}
    return cursor.adbc_ingest(table, batches, mode="append", **schema, **ingest)


def _destination_types(cursor, db_schema_name: str | None, table: str) -> dict[str, str]:
    cursor.execute(_COLUMN_TYPES.format(schema="$1", table="$2"), (db_schema_name or "public", table))
    return dict(cursor.fetchall())


def destination_types(connection, db_schema_name: str, table: str) -> dict[str, str]:
    """Column name -> pg_type.typname of ``db_schema_name.table``, through a psycopg ``connection``."""
    query = _COLUMN_TYPES.replace("%I", "%%I").format(schema="%s", table="%s")
    return dict(connection.execute(query, (db_schema_name, table)).fetchall())


def declared_types(connection, db_schema_name: str, table: str) -> dict[str, tuple[str, str]]:
    """Column name -> (the type as declared, without its modifier) of ``db_schema_name.table``, as ``format_type``
    names them (``numeric(12,2)``, ``numeric``), through a psycopg ``connection``; empty when there is no table."""
    query = _DECLARED_TYPES.replace("%I", "%%I").format(schema="%s", table="%s")
    return {name: (declared, base) for name, declared, base in connection.execute(query, (db_schema_name, table))}


def _converted_from_text(destination_type: str | None) -> bool:
    return destination_type is not None and destination_type not in TEXT_TYPES and destination_type != JSONB


def _is_text(arrow_type: pa.DataType) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def with_jsonb_columns(batches: pa.RecordBatchReader, names: list[str]) -> pa.RecordBatchReader:
    indexes = [batches.schema.get_field_index(name) for name in names]
    schema = batches.schema
    for index in indexes:
        field = schema.field(index)
        binary = pa.large_binary() if pa.types.is_large_string(field.type) else pa.binary()
        schema = schema.set(index, field.with_type(binary))

    def converted():
        for batch in batches:
            columns = list(batch.columns)
            for index in indexes:
                text, binary = columns[index], schema.field(index).type
                # The version byte in the column's own binary type: the kernel takes one type (large text, too).
                columns[index] = pc.binary_join_element_wise(
                    JSONB_VERSION.cast(binary), text.cast(binary), pa.scalar(b"", binary)
                )
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, converted())


def _copy_through_text_table(cursor, table, batches, db_schema_name, types, text_columns) -> int:
    staging = f"headwater_copy_{uuid.uuid4().hex[:12]}"
    cursor.adbc_ingest(staging, batches, mode="create", temporary=True)
    names = batches.schema.names
    converted = {name for name in text_columns if types.get(name, "text") not in ("text", "varchar", "bpchar")}
    target = f"{quoted(db_schema_name)}.{quoted(table)}" if db_schema_name else quoted(table)
    select = ", ".join(
        f"{quoted(name)}::{types[name]}" if name in converted else quoted(name) for name in names
    )
    cursor.execute(
        f"insert into {target} ({', '.join(quoted(name) for name in names)}) select {select} from {quoted(staging)}"
    )
    rows = cursor.rowcount
    cursor.execute(f"drop table {quoted(staging)}")
    return rows


def quoted(identifier: str) -> str:
    """A Postgres identifier in double quotes."""
    return '"' + identifier.replace('"', '""') + '"'

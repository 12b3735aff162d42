"""Arrow batches into a Postgres table by binary COPY, encoded by pgpq and sent over psycopg.

The ADBC driver encodes each value for binary COPY at about as much CPU as the server spends storing it
(1M rows of 10 columns: ~1.4 core-seconds on the client). pgpq encodes the same batch from Arrow's
buffers in a fraction of that (~0.2 s), which leaves the client's core to a second COPY stream: on a
2-core machine that also runs the server, two pgpq streams load in about 0.55× the time of one ADBC
stream (benchmarks/results.md).

Binary COPY carries no type per value: the server reads each field as its column's binary form. So
this path is taken only when every column of the batches has an Arrow type whose binary form is the
one the destination column reads (``encodable``): int64 for bigint, UTC timestamps for timestamptz,
text for text and varchar, and so on. Anything else (text bound for a numeric column, nanosecond
times, nested lists) goes the driver's way (headwater.postgres.column_types.copy_into).
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from pgpq import ArrowToPostgresBinaryEncoder

from headwater.common.widening import is_text
from headwater.postgres.column_types import JSONB, quoted

# Destination types that read text's binary form (the bytes of the text): text's own and its kin.
_TEXT_READERS = frozenset({"text", "varchar", "bpchar", "name", "json"})
# Postgres sends COPY data on in chunks; bigger writes only cost memory.
_CHUNK_ROWS = 64 * 1024


def _destination_types_for(arrow_type: pa.DataType) -> frozenset[str]:
    """The Postgres types (pg_type.typname) whose binary form pgpq writes for ``arrow_type``; empty when none."""
    if pa.types.is_int64(arrow_type):
        return frozenset({"int8"})
    if pa.types.is_int32(arrow_type):
        return frozenset({"int4"})
    if pa.types.is_int16(arrow_type) or pa.types.is_int8(arrow_type):
        return frozenset({"int2"})
    if pa.types.is_float64(arrow_type):
        return frozenset({"float8"})
    if pa.types.is_float32(arrow_type):
        return frozenset({"float4"})
    if pa.types.is_boolean(arrow_type):
        return frozenset({"bool"})
    if is_text(arrow_type):
        return _TEXT_READERS
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return frozenset({"bytea", JSONB})  # jsonb: bytes already in its binary form (version byte first)
    if pa.types.is_date32(arrow_type):
        return frozenset({"date"})
    if pa.types.is_time64(arrow_type) and arrow_type.unit == "us":
        return frozenset({"time"})
    if pa.types.is_timestamp(arrow_type) and arrow_type.unit in ("s", "ms", "us"):
        # An instant (a zone given) is what timestamptz holds; a bare wall time is what timestamp holds.
        return frozenset({"timestamptz"} if arrow_type.tz else {"timestamp"})
    if pa.types.is_decimal128(arrow_type):
        return frozenset({"numeric"})
    return frozenset()


def encodable(schema: pa.Schema, destination_types: dict[str, str]) -> bool:
    """Whether every column of ``schema`` can be sent as the binary form its destination column reads.

    ``destination_types``: column name -> pg_type.typname of the destination table. jsonb columns
    count as encodable from text: ``copy_binary``'s caller gives them jsonb's version byte first
    (column_types' jsonb conversion turns them into binary, which is sent as it is).
    """
    for field in schema:
        wanted = destination_types.get(field.name)
        if wanted is None:
            return False
        if wanted == JSONB and is_text(field.type):
            continue
        if wanted not in _destination_types_for(field.type):
            return False
    return True


def copy_binary(cursor, schema_name: str, table: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
    """COPY ``batches`` (of ``schema``) into ``schema_name.table`` through the psycopg ``cursor``, column by
    name; returns the rows sent. Nothing is committed here."""
    encoder = ArrowToPostgresBinaryEncoder(schema)
    columns = ", ".join(quoted(name) for name in schema.names)
    rows = 0
    statement = f"COPY {quoted(schema_name)}.{quoted(table)} ({columns}) FROM STDIN WITH (FORMAT BINARY)"
    with cursor.copy(statement) as copy:
        copy.write(encoder.write_header())
        for batch in batches:
            for offset in range(0, batch.num_rows, _CHUNK_ROWS):
                chunk = batch.slice(offset, _CHUNK_ROWS)
                copy.write(encoder.write_batch(chunk))
                rows += chunk.num_rows
        copy.write(encoder.finish())
    return rows

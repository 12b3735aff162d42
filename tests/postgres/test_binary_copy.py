"""pgpq's binary COPY lands every value as the ADBC driver's COPY does, and is taken only where it can be."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa
import pytest

from headwater.postgres.binary_copy import copy_binary, encodable
from headwater.postgres.column_types import copy_into, destination_types, with_jsonb_columns
from headwater.postgres.copy_streams import STREAMS_VARIABLE, copy_streams
from tests.conftest import query
from tests.load.helpers import execute

UTC = timezone.utc
TABLE_DDL = """
    create table {name} (
        id bigint not null, small smallint, medium integer, ratio real, price double precision, flag boolean,
        label text, code varchar(8), payload jsonb, blob bytea, born date, opens time,
        seen_at timestamptz, local_at timestamp, amount numeric, exact numeric(38, 9)
    )
"""


def world_rows() -> pa.Table:
    """Values shaped like exports and public files: nulls in every column, extremes, accents, emoji,
    dates before 2000 (Postgres's epoch) and far after, negative and large decimals."""
    return pa.table({
        "id": pa.array([1, 2, 3, 4], pa.int64()),
        "small": pa.array([-32768, 32767, None, 0], pa.int16()),
        "medium": pa.array([-2147483648, 2147483647, None, 7], pa.int32()),
        "ratio": pa.array([1.5, -0.25, None, float("inf")], pa.float32()),
        "price": pa.array([0.1, -1e308, None, float("nan")], pa.float64()),
        "flag": pa.array([True, False, None, True], pa.bool_()),
        "label": pa.array(["Zoë's café", "", None, "北京 🚲 \"quoted\", comma"], pa.large_string()),
        "code": pa.array(["NA", "12345678", None, "x"], pa.string()),
        "payload": pa.array(['{"a": [1, 2.5, null]}', "[]", None, '"text"'], pa.large_string()),
        "blob": pa.array([b"\x00\x01\xff", b"", None, b"abc"], pa.binary()),
        "born": pa.array([date(1899, 12, 31), date(2000, 1, 1), None, date(2999, 6, 30)], pa.date32()),
        "opens": pa.array([time(0, 0), time(23, 59, 59, 999999), None, time(9, 30)], pa.time64("us")),
        "seen_at": pa.array([datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=UTC), None,
                             datetime(2261, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
        "local_at": pa.array([datetime(1970, 1, 1), datetime(1999, 12, 31, 23, 59, 59), None,
                              datetime(2038, 1, 19, 3, 14, 8)], pa.timestamp("us")),
        "amount": pa.array([Decimal("-123456789012345678.123456789"), Decimal("0.000000001"), None,
                            Decimal("99999999999999999999999999999.000000000")], pa.decimal128(38, 9)),
        "exact": pa.array([Decimal("1.100000000"), Decimal("-0.000000001"), None, Decimal("0")],
                          pa.decimal128(38, 9)),
    })


def _cells(url: str, table: str) -> list[tuple]:
    return query(url, f"select * from {table} order by id")


def test_every_cell_lands_as_the_drivers_copy_lands_it(database_url):
    execute(database_url, "create schema raw; " + TABLE_DDL.format(name="raw.by_pgpq") + "; "
            + TABLE_DDL.format(name="raw.by_adbc"))
    rows = world_rows()
    with psycopg.connect(database_url) as connection:
        types = destination_types(connection, "raw", "by_pgpq")
        assert encodable(rows.schema, types)
        reader = with_jsonb_columns(pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches()), ["payload"])
        with connection.cursor() as cursor:
            assert copy_binary(cursor, "raw", "by_pgpq", reader.schema, reader) == 4
        connection.commit()
    with adbc.connect(database_url) as connection, connection.cursor() as cursor:
        copy_into(cursor, "by_adbc", pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches()),
                  db_schema_name="raw")
        connection.commit()

    landed = _cells(database_url, "raw.by_pgpq")
    assert landed == _cells(database_url, "raw.by_adbc") or _same_but_nan(landed, _cells(database_url, "raw.by_adbc"))
    first, _, empty, last = landed
    assert first[6] == "Zoë's café" and last[6] == "北京 🚲 \"quoted\", comma"
    assert first[8] == {"a": [1, 2.5, None]} and last[8] == "text"
    assert first[9] == b"\x00\x01\xff" and first[10] == date(1899, 12, 31)
    assert first[12] == datetime(1969, 7, 20, 20, 17, 40, tzinfo=UTC)
    assert last[12] == datetime(2261, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert first[14] == Decimal("-123456789012345678.123456789")
    assert last[14] == Decimal("99999999999999999999999999999.000000000")
    assert empty[1:] == (None,) * 15  # a row of nulls stays nulls


def _same_but_nan(left: list[tuple], right: list[tuple]) -> bool:
    """Equal rows, where NaN (never equal to itself) stands in the same places on both sides."""
    def normal(value):
        return "NaN" if isinstance(value, float) and value != value else value
    return [tuple(map(normal, row)) for row in left] == [tuple(map(normal, row)) for row in right]


@pytest.mark.parametrize("arrow_type, destination", [
    (pa.large_string(), "numeric"),  # text bound for a number: Postgres must parse it (column_types)
    (pa.large_string(), "time"),
    (pa.timestamp("ns", tz="UTC"), "timestamptz"),  # nanoseconds: pgpq writes none
    (pa.timestamp("us"), "timestamptz"),  # a wall time without a zone is not an instant
    (pa.timestamp("us", tz="UTC"), "timestamp"),
    (pa.int64(), "int4"),  # a wider integer than the column reads
    (pa.float64(), "numeric"),
    (pa.list_(pa.int64()), "_int8"),
    (pa.null(), "text"),
])
def test_columns_whose_binary_form_differs_go_the_drivers_way(arrow_type, destination):
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("value", arrow_type)])
    assert not encodable(schema, {"id": "int8", "value": destination})


def test_a_column_the_table_lacks_goes_the_drivers_way():
    assert not encodable(pa.schema([pa.field("id", pa.int64())]), {"other": "int8"})
    assert encodable(pa.schema([pa.field("id", pa.int64())]), {"id": "int8", "other": "text"})


def test_refused_values_roll_the_copy_back_with_postgres_reason(database_url):
    execute(database_url, "create schema raw; " + TABLE_DDL.format(name="raw.codes"))
    rows = pa.table({"id": [1, 2], "code": ["fits", "far too long for eight"]})
    with psycopg.connect(database_url) as connection, connection.cursor() as cursor:
        with pytest.raises(psycopg.errors.StringDataRightTruncation, match="character varying\\(8\\)"):
            copy_binary(cursor, "raw", "codes", rows.schema, rows.to_batches())
    assert query(database_url, "select count(*) from raw.codes") == [(0,)]


def test_streams_follow_the_cores_each_encoder_keeps_busy(monkeypatch):
    monkeypatch.delenv(STREAMS_VARIABLE, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert copy_streams(1_000_000, cores_per_stream=1) == 2  # pgpq: the server's core is the cost
    assert copy_streams(1_000_000, cores_per_stream=2) == 1  # ADBC: a client core per server core
    assert copy_streams(100_000, cores_per_stream=1) == 1  # too few rows to pay for a second connection
    monkeypatch.setenv(STREAMS_VARIABLE, "two")
    with pytest.raises(ValueError, match=f"{STREAMS_VARIABLE} must be a whole number.*got 'two'"):
        copy_streams(1_000_000)


def test_a_load_of_world_shaped_rows_lands_every_cell(database_url, tmp_path, monkeypatch):
    """Through dlt and Headwater's destination: the load job takes pgpq's path and lands every cell."""
    import dlt

    from headwater.postgres import loader
    from headwater.postgres.address import PostgresAddress

    copied = []  # the tables pgpq's path copied, by the real copy_binary

    def copy_binary_and_note(cursor, schema_name, table, schema, batches):
        copied.append(table)
        return copy_binary(cursor, schema_name, table, schema, batches)

    monkeypatch.setattr(loader, "copy_binary", copy_binary_and_note)
    rows = world_rows().drop_columns(["small", "medium", "ratio", "local_at", "exact", "payload"])
    destination = loader.postgres(credentials=PostgresAddress.from_url(database_url).dlt_credentials())
    pipeline = dlt.pipeline("binary_copy_test", destination=destination, dataset_name="raw_world",
                            pipelines_dir=str(tmp_path))
    pipeline.run(dlt.resource([rows], name="world"), loader_file_format="parquet")
    landed = query(database_url, "select id, price, flag, label, code, blob, born, opens, seen_at, amount "
                                 "from raw_world.world order by id")
    expected = [tuple(row[name] for name in ("id", "price", "flag", "label", "code", "blob", "born", "opens",
                                             "seen_at", "amount")) for row in rows.to_pylist()]
    assert _same_but_nan(landed, expected)
    assert landed[3][3] == "北京 🚲 \"quoted\", comma" and landed[0][9] == Decimal("-123456789012345678.123456789")
    assert timedelta(0) == landed[3][8] - datetime(2261, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert "world" in copied

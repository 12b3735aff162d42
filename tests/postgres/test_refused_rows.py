"""Refused rows of a load file found by copying halves into a scratch table: alone when they can be, together
when they cannot; a failure of the connection is no refusal."""

from __future__ import annotations

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
import pytest
from adbc_driver_manager import DatabaseError

from headwater.postgres.loader import postgres, refuses_data
from headwater.postgres.refused_rows import find_refused_rows
from tests.conftest import query
from tests.load.helpers import execute

COLUMNS = {"id": {"name": "id", "data_type": "bigint", "nullable": False},
           "opens": {"name": "opens", "data_type": "time"}}


@pytest.fixture
def shifts(database_url):
    execute(database_url, "create schema raw; create table raw.shifts (id bigint not null, opens time)")
    return database_url


def search(url: str, rows: pa.Table, **options):
    return find_refused_rows(url, "raw", "shifts", COLUMNS, postgres().capabilities(), rows, **options)


def test_each_refused_row_stands_alone_with_its_own_reason(shifts):
    opens = [f"{hour % 24:02d}:00" for hour in range(40)]
    opens[5], opens[33] = "soon", "later"
    ids = pa.array([None if index == 17 else index for index in range(40)], pa.int64())
    refusals = search(shifts, pa.table({"id": ids, "opens": opens}))
    assert [(refusal.rows, refusal.together) for refusal in refusals] == [([5], False), ([17], False), ([33], False)]
    assert [refusal.reason for refusal in refusals] == [
        'Postgres refused the row for raw.shifts: invalid input syntax for type time: "soon"',
        'Postgres refused the row for raw.shifts: null value in column "id" of relation "shifts" violates not-null '
        "constraint",
        'Postgres refused the row for raw.shifts: invalid input syntax for type time: "later"',
    ]
    assert query(shifts, "select count(*) from raw.shifts") == [(0,)]  # every copy was rolled back


def test_rows_that_copy_now_are_no_refusal(shifts):
    assert search(shifts, pa.table({"id": [1, 2], "opens": ["09:00", "10:00"]})) is None


def test_a_column_no_value_of_which_fits_refuses_every_row_together(shifts):
    refusals = search(shifts, pa.table({"id": [1, 2, 3], "opens": pa.array([{"at": 9}, None, {"at": 11}])}))
    [refusal] = refusals
    assert (refusal.rows, refusal.together, refusal.exhausted) == ([0, 1, 2], True, False)
    assert "Can't map Arrow type 'struct'" in refusal.reason


def test_rows_not_told_apart_within_the_copies_allowed_are_refused_together(shifts):
    rows = pa.table({"id": list(range(16)), "opens": [f"never {index}" for index in range(16)]})
    refusals = search(shifts, rows, max_copies_per_file=6)
    assert sorted(index for refusal in refusals for index in refusal.rows) == list(range(16))
    assert any(refusal.exhausted and len(refusal.rows) > 1 for refusal in refusals)
    assert all(refusal.together == refusal.exhausted for refusal in refusals)


def refusal_of(url: str, rows: pa.Table) -> DatabaseError:
    with adbc.connect(url) as connection, connection.cursor() as cursor:
        with pytest.raises(DatabaseError) as raised:
            cursor.adbc_ingest("shifts", rows, mode="append", db_schema_name="raw")
        return raised.value


def test_refused_rows_are_told_from_a_failed_connection(shifts):
    too_early = pa.array([-9_000_000_000_000_000_000], pa.int64()).cast(pa.timestamp("us"))
    execute(shifts, "alter table raw.shifts add column at timestamp")
    assert refuses_data(refusal_of(shifts, pa.table({"id": [1], "at": too_early})))  # 22008: out of range
    assert refuses_data(refusal_of(shifts, pa.table({"id": [1], "opens": pa.array([b"x"])})))  # 08P01: binary data
    with pytest.raises(DatabaseError) as closed:
        adbc.connect("postgresql://postgres@127.0.0.1:1/postgres")
    assert not refuses_data(closed.value)

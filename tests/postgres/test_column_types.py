"""The COPY that fills Postgres columns: text bound for a column of another type is converted by Postgres."""

from __future__ import annotations

from datetime import time

import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa

from headwater.postgres.column_types import copy_into
from tests.conftest import query
from tests.load.helpers import execute


def test_text_bound_for_a_number_or_a_time_is_converted_by_postgres_not_read_as_bytes(database_url):
    execute(database_url, "create schema raw; create table raw.shifts (id bigint, crew bigint, opens time)")
    # Eight characters, as long as a bigint: written as they are, they would land as 3544952156018063160.
    rows = pa.table({"id": [1, 2], "crew": ["12345678", "7"], "opens": ["09:30", "17:00:05"]})
    with adbc.connect(database_url) as connection, connection.cursor() as cursor:
        assert copy_into(cursor, "shifts", pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches()),
                         db_schema_name="raw") == 2
        connection.commit()
    assert query(database_url, "select id, crew, opens from raw.shifts order by id") == [
        (1, 12345678, time(9, 30)), (2, 7, time(17, 0, 5))]

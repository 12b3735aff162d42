"""A run with nothing new is cheap: the cursor filter runs in the source database and nothing is rewritten."""

from __future__ import annotations

import logging
import time

import psycopg
import sqlalchemy as sa

from tests.conftest import query
from tests.load.helpers import execute, load, write_project

ROWS = 20_000


def scan_counts(url: str) -> tuple[int, int]:
    """(rows read by sequential scans, index scans) of the source's orders table."""
    with psycopg.connect(url) as connection:
        connection.execute("select pg_stat_clear_snapshot()")
        return connection.execute(
            "select seq_tup_read, coalesce(idx_scan, 0) from pg_stat_user_tables where relname = 'orders'"
        ).fetchone()


def test_a_run_with_no_new_data_reads_by_index_and_writes_nothing(tmp_path, source_url, database_url, caplog):
    execute(source_url, f"""
        create table orders (id int primary key, note text, updated_at timestamptz not null);
        insert into orders select i, 'order ' || i, timestamptz '2024-01-01T00:00Z' + i * interval '1 minute'
          from generate_series(1, {ROWS}) i;
        create index orders_updated_at on orders (updated_at);
        analyze orders;
    """)
    path = write_project(tmp_path, {"src": "orders: {primary_key: id, cursor: updated_at}"})
    assert load(path, database_url, "src").rows == ROWS
    loads_before = query(database_url, "select load_id, status from raw_src._dlt_loads order by load_id")
    rows_before = query(database_url, "select id, _dlt_load_id from raw_src.orders order by id")
    seq_before, idx_before = scan_counts(source_url)

    statements: list[str] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "orders" in statement and statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", capture)
    caplog.set_level(logging.DEBUG, logger="connectors.sql_database")
    try:
        result = load(path, database_url, "src")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", capture)
    # connectorx (the default reader for Postgres) sends its query outside SQLAlchemy, and logs it.
    statements += [record.getMessage() for record in caplog.records if "connectorx query" in record.getMessage()]

    # The cursor condition is part of the query the source database runs...
    data_queries = [s for s in statements if "FROM orders" in s or "FROM public.orders" in s]
    assert data_queries and all("WHERE orders.updated_at >=" in s for s in data_queries), statements
    # ...which it answers through the index, without reading the table (statistics arrive asynchronously).
    deadline = time.monotonic() + 5
    while (counts := scan_counts(source_url))[1] == idx_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counts[1] > idx_before and counts[0] == seq_before, (seq_before, idx_before, counts)

    # Nothing was loaded: no new load recorded, and every row still carries the load id that wrote it.
    assert result.rows == 0 and result.load_ids == []
    assert query(database_url, "select load_id, status from raw_src._dlt_loads order by load_id") == loads_before
    assert query(database_url, "select id, _dlt_load_id from raw_src.orders order by id") == rows_before

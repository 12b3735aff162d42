"""Row counts for lineage and the catalog: a big table is estimated, also before its first ANALYZE."""

from __future__ import annotations

import psycopg

from headwater.postgres import row_counts
from headwater.postgres.row_counts import RowCount, count_rows
from tests.load.helpers import execute


def test_a_big_table_not_yet_analyzed_is_estimated_from_live_rows_not_counted(database_url, monkeypatch):
    # autovacuum off: the table stays as a raw table is right after its load, with no planner statistics
    execute(database_url, "create table big (id int) with (autovacuum_enabled = false); "
                          "create table small (id int) with (autovacuum_enabled = false); "
                          "insert into big select generate_series(1, 3000); insert into small values (1), (2)")
    monkeypatch.setattr(row_counts, "EXACT_COUNT_BELOW", 1000)
    with psycopg.connect(database_url, autocommit=True) as connection:
        assert connection.execute("select reltuples from pg_class where relname = 'big'").fetchone()[0] == -1
        counts = count_rows(connection, [("public", "big"), ("public", "small"), ("public", "missing")])
    assert counts == {("public", "big"): RowCount(3000, estimated=True), ("public", "small"): RowCount(2)}

"""PostgreSQL into Postgres passed through (connectors.sql_database.pass_through): the rows strictly inside the
cursor's window go from the source's binary COPY into the destination's, the edges come as Arrow batches.

The loads are real: a Postgres source read by sql_database, dlt and the destination. Every test checks the
rows against the source (count, keys, md5 of the ordered rows) and that the rows were, or were not, passed
through, by the line the copy job logs when it commits them. Every passed type is compared cell by cell in
tests/connectors/test_sql_database_types.py; the kill tests of tests/load/test_crash_recovery.py run
against this path too (their "passed" case).
"""

from __future__ import annotations

import logging

import pytest

from connectors.sql_database.pass_through import SWITCH_VARIABLE
from headwater.postgres.copy_ahead import MIN_ROWS_VARIABLE, PassedThrough
from tests.conftest import query
from tests.load.helpers import execute, fingerprint, load, load_losing_a_passed_commit, write_project

PASSED = "rows passed through from the source, committed by the load job"
@pytest.fixture(autouse=True)
def small_tables_pass(monkeypatch):
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1")
    monkeypatch.setenv(SWITCH_VARIABLE, "on")


def passed(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if PASSED in record.getMessage()]


def loaded_once(tmp_path, source_url: str, database_url: str, columns: str, values: str, cursor: str = "id"):
    """A source table events (``columns``) of 500 rows (``values``: SQL of i) loaded once; the project's path."""
    execute(source_url, f"create table events ({columns})")
    execute(source_url, f"insert into events select i, {values} from generate_series(1, 500) i")
    path = write_project(tmp_path / "project", {"src": f"events: {{cursor: {cursor}, write_disposition: append}}"})
    load(path, destination_url=database_url, source="src")
    return path


def load_logged(path, database_url: str, caplog):
    caplog.clear()
    with caplog.at_level(logging.INFO):
        return load(path, destination_url=database_url, source="src")


# (indexed: the window found through an index on the cursor, not by a scan)
@pytest.mark.parametrize(("cursor_type", "indexed"), [("timestamptz", False), ("timestamp", False), ("bigint", False),
                                                      ("timestamptz", True), ("bigint", True)])
def test_incremental_runs_pass_only_the_new_rows_and_lose_or_repeat_none(cursor_type, indexed, tmp_path, source_url,
                                                                         database_url, caplog):
    stamp = {"timestamptz": "timestamptz '2026-01-01 00:00:00+00' + {} * interval '1 minute'",
             "timestamp": "timestamp '2026-01-01 00:00:00' + {} * interval '1 minute'", "bigint": "{}"}[cursor_type]
    execute(source_url, f"create table events (id int, kind text, amount numeric(12, 2), changed {cursor_type})")
    if indexed:
        execute(source_url, "create index on events (changed)")

    def add(first: int, count: int, minute: str = "i / 10") -> None:
        execute(source_url, f"insert into events select i, 'kind-' || (i % 7), i * 0.25, {stamp.format(minute)} "
                            f"from generate_series({first}, {first + count - 1}) i")

    add(1, 3000)  # ten rows per cursor value: the last value is held by several rows
    path = write_project(tmp_path / "project", {"src": "events: {cursor: changed, write_disposition: append}"})
    columns = "id, kind, amount, changed"
    # a zoneless cursor lands as timestamptz, its wall time taken as UTC
    landed = columns.replace("changed", "changed at time zone 'UTC'") if cursor_type == "timestamp" else columns
    for first, count, minute in ((None, 0, ""), (3001, 5, "300"), (3006, 2000, "i / 10"), (5006, 0, "")):
        if count:
            add(first, count, minute)  # 5 more rows at the last value loaded, then later ones
        caplog.clear()
        with caplog.at_level(logging.INFO), caplog.at_level(logging.DEBUG, logger="connectors.sql_database"):
            result = load(path, destination_url=database_url, source="src")
        assert ("its window is found through the index on changed" in caplog.text) == indexed
        source = fingerprint(source_url, "events", columns, "id")
        assert fingerprint(database_url, "raw_src.events", landed, "id") == source
        assert source[0] == source[1], "duplicate ids"
        new = count if first is not None else 3000
        assert {load.table: load.rows for load in result.tables}["events"] == new
        assert bool(passed(caplog)) == (new > 100), caplog.text[-2000:]


def test_rows_the_destination_refuses_while_passed_are_read_as_arrow_and_quarantined(tmp_path, source_url,
                                                                                      database_url, caplog):
    path = loaded_once(tmp_path, source_url, database_url, "id int, name text", "'name-' || i")
    # the destination's column was narrowed by hand: a longer name cannot go into it
    execute(database_url, "alter table raw_src.events alter column name type varchar(9)")
    execute(source_url, "insert into events select i, case when i = 700 then 'a-very-long-name' "
                        "else 'name-' || i end from generate_series(501, 1000) i")
    result = load_logged(path, database_url, caplog)
    assert "it is read as Arrow instead" in caplog.text
    assert passed(caplog) == []
    assert [(load.table, load.rows, load.quarantined) for load in result.tables] == [("events", 499, 1)]
    assert query(database_url, "select count(*), count(distinct id) from raw_src.events") == [(999, 999)]
    assert query(database_url, "select count(*) from raw_src.events__quarantine") == [(1,)]


def test_passed_rows_wait_for_their_job_when_every_edge_row_is_refused(tmp_path, source_url, database_url, caplog):
    path = loaded_once(tmp_path, source_url, database_url, "id int, name text", "'name-' || i")
    execute(database_url, "alter table raw_src.events alter column name type varchar(9)")
    # only the newest row, an edge of the window, is too long: the middle passes, the edge row is refused
    execute(source_url, "insert into events select i, case when i = 1000 then 'a-very-long-name' "
                        "else 'name-' || i end from generate_series(501, 1000) i")
    result = load_logged(path, database_url, caplog)
    assert passed(caplog) == [f"raw_src.events: 499 {PASSED}"], caplog.text[-2000:]
    assert [(load.table, load.rows, load.quarantined) for load in result.tables] == [("events", 499, 1)]
    assert query(database_url, "select count(*), count(distinct id), max(id) from raw_src.events") == [(999, 999, 999)]
    assert query(database_url, "select count(*) from raw_src.events__quarantine") == [(1,)]


def test_passed_rows_whose_commit_fails_are_read_again_in_the_same_run(tmp_path, source_url, database_url,
                                                                       monkeypatch, caplog):
    path = loaded_once(tmp_path, source_url, database_url, "id int, name text", "'name-' || i")
    execute(source_url, "insert into events select i, 'name-' || i from generate_series(501, 1000) i")
    commit = PassedThrough.commit
    with caplog.at_level(logging.INFO):
        result = load_losing_a_passed_commit(path, database_url, monkeypatch)
    # The package whose passed rows were lost is discarded and the source read again, every row in a load file.
    assert result.error is None, result.error
    assert "rows passed through lost" in caplog.text
    assert "the load is discarded and the source read again with every row in a load file" in caplog.text
    assert {load.table: load.rows for load in result.tables} == {"events": 500}
    assert fingerprint(database_url, "raw_src.events", "id, name", "id") == fingerprint(
        source_url, "events", "id, name", "id")

    monkeypatch.setattr(PassedThrough, "commit", commit)
    execute(source_url, "insert into events select i, 'name-' || i from generate_series(1001, 1200) i")
    result = load_logged(path, database_url, caplog)  # the next run passes through again
    assert passed(caplog) == [f"raw_src.events: 199 {PASSED}"], caplog.text[-2000:]
    assert {load.table: load.rows for load in result.tables} == {"events": 200}
    assert fingerprint(database_url, "raw_src.events", "id, name", "id") == fingerprint(
        source_url, "events", "id, name", "id")


def test_a_text_cursor_holding_percent_signs_passes_exactly(tmp_path, source_url, database_url, caplog):
    path = loaded_once(tmp_path, source_url, database_url, "id int, code text", "'c%' || lpad(i::text, 6, '0')",
                       cursor="code")
    # one more row at the last value loaded (a new one: dlt keeps it), then later ones
    execute(source_url, "insert into events values (1500, 'c%000500')")
    execute(source_url, "insert into events select i, 'c%' || lpad(i::text, 6, '0') from generate_series(501, 900) i")
    result = load_logged(path, database_url, caplog)
    assert passed(caplog) == [f"raw_src.events: 399 {PASSED}"], caplog.text[-2000:]
    assert {load.table: load.rows for load in result.tables} == {"events": 401}
    assert fingerprint(database_url, "raw_src.events", "id, code", "id, code") == fingerprint(
        source_url, "events", "id, code", "id, code")


def test_a_column_the_load_widens_is_not_passed_through(tmp_path, source_url, database_url, caplog):
    path = loaded_once(tmp_path, source_url, database_url, "id int, amount numeric(10, 2)", "i * 0.25")
    execute(source_url, "alter table events alter column amount type numeric(20, 2)")
    execute(source_url, "insert into events select i, i * 1000000.25 from generate_series(501, 1000) i")
    result = load_logged(path, database_url, caplog)
    assert passed(caplog) == []  # the schema update widens the column first: the rows come as batches
    assert {load.table: load.rows for load in result.tables} == {"events": 500}
    assert query(database_url, "select format_type(atttypid, atttypmod) from pg_attribute where attname = 'amount' "
                               "and attrelid = 'raw_src.events'::regclass") == [("numeric(20,2)",)]
    assert fingerprint(database_url, "raw_src.events", "id, amount", "id") == fingerprint(
        source_url, "events", "id, amount", "id")


def test_values_arrow_gives_otherwise_go_through_arrow_when_an_index_finds_the_window(tmp_path, source_url,
                                                                                     database_url, caplog):
    """With the cursor indexed, no scan looks for a decimal NaN before the pass: one among the edge rows has the
    window read as Arrow whole, one in the middle fails the COPY, which is rolled back and read as Arrow."""
    # (unconstrained: a NaN fits the column dlt makes, as it does not a numeric(12, 2))
    path = loaded_once(tmp_path, source_url, database_url, "id bigint primary key, amount numeric", "i * 0.25")
    columns = "id, amount"

    def add(first: int, nan_at: int) -> None:
        execute(source_url, f"insert into events select i, case when i = {nan_at} then 'NaN' else i * 0.25 end "
                            f"from generate_series({first}, {first + 499}) i")

    # a NaN in the middle; at the top edge, where it is also the next load's bottom edge; then none at all
    for first, nan_at, said, passes in ((501, 700, "column amount holds NaN", False), (1001, 1500, None, False),
                                        (1501, 0, None, False), (2001, 0, None, True)):
        add(first, nan_at)
        result = load_logged(path, database_url, caplog)
        assert {load.table: load.rows for load in result.tables}["events"] == 500
        assert fingerprint(database_url, "raw_src.events", columns, "id") == fingerprint(source_url, "events",
                                                                                           columns, "id")
        middle = [record.getMessage() for record in caplog.records if "the middle of its window" in record.getMessage()]
        if said:  # in the middle: the COPY fails on it and the middle is read as Arrow
            assert len(middle) == 1 and said in middle[0], caplog.text[-2000:]
        else:
            assert middle == []
        assert bool(passed(caplog)) == passes, caplog.text[-2000:]
        assert "failed" not in caplog.text

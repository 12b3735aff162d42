"""Copy ahead (headwater.postgres.copy_ahead): an append table's rows COPY'd while extract still reads.

The loads are real: a Postgres source read by sql_database in many chunks, dlt, and the destination. Each
test checks the rows against the source (count, keys, md5 of the ordered rows) and that copy ahead did or
did not carry the rows, by the line the copy job logs when it commits them.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from connectors.sql_database.pass_through import SWITCH_VARIABLE as PASS_THROUGH_VARIABLE
from headwater.load.pipeline import load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres import copy_ahead
from headwater.postgres.address import PostgresAddress
from headwater.postgres.copy_ahead import MIN_ROWS_VARIABLE, SWITCH_VARIABLE
from headwater.postgres.copy_streams import STREAMS_VARIABLE
from headwater.project.config import load_project
from tests.conftest import REPO, fresh_database, query
from tests.load.helpers import execute, fingerprint, load, write_project

EVENTS = ("events", "id, kind, amount, seen_at, tags", "id")
TABLES = {"src": "events: {cursor: id, write_disposition: append}"}
COMMITTED = "rows copied during extract"


def add_events(url: str, first: int, count: int) -> None:
    execute(url, f"""
        insert into events select i, case when i % 11 = 0 then null else 'kind-' || (i % 7) end, i * 0.25,
               timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second',
               case when i % 5 = 0 then null else 'tag-' || (i % 13) end
          from generate_series({first}, {first + count - 1}) i
    """)


@pytest.fixture(autouse=True)
def arrow_only(monkeypatch):
    """The rows come as Arrow batches: not passed through from the source (tests/load/test_pass_through.py)."""
    monkeypatch.setenv(PASS_THROUGH_VARIABLE, "off")


@pytest.fixture
def events_source(source_url):
    execute(source_url, "create table events (id int primary key, kind text, amount numeric(12, 2), "
                        "seen_at timestamptz, tags varchar(20))")
    return source_url


def assert_equal_to_source(source_url: str, destination_url: str, dataset: str = "raw_src") -> None:
    source = fingerprint(source_url, "events", EVENTS[1], EVENTS[2])
    loaded = fingerprint(destination_url, f"{dataset}.events", EVENTS[1], EVENTS[2])
    assert loaded == source
    assert loaded[0] == loaded[1], "duplicate keys"


def copied_ahead(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if COMMITTED in record.getMessage()]


def test_a_large_append_load_is_copied_during_extract_and_lands_exact(tmp_path, events_source, database_url,
                                                                      monkeypatch, caplog):
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "5000")
    add_events(events_source, 1, 20_000)
    path = write_project(tmp_path / "project", TABLES, chunk_size=2000)
    with caplog.at_level(logging.INFO, logger="headwater.postgres"):
        result = load(path, destination_url=database_url, source="src")
    assert [table.rows for table in result.tables] == [20_000]
    # The COPY starts once 6000 rows (3 batches) are in the load file; the next 14,000 go to it alone.
    assert copied_ahead(caplog) == [
        "raw_src.events: 20000 rows copied during extract (14000 in no load file), committed by the load job"]
    assert_equal_to_source(events_source, database_url)
    assert copy_ahead.waiting_tables("raw_src") == frozenset()

    caplog.clear()
    add_events(events_source, 20_001, 3000)  # fewer than the threshold: the load file is copied as before
    with caplog.at_level(logging.INFO, logger="headwater.postgres"):
        load(path, destination_url=database_url, source="src")
    assert copied_ahead(caplog) == []
    assert_equal_to_source(events_source, database_url)

    caplog.clear()
    add_events(events_source, 23_001, 9000)  # an existing table, copied ahead into
    with caplog.at_level(logging.INFO, logger="headwater.postgres"):
        load(path, destination_url=database_url, source="src")
    # (the first chunk starts at the last id loaded, which dlt drops as already seen: 5999 rows in the file)
    assert copied_ahead(caplog) == [
        "raw_src.events: 9000 rows copied during extract (3001 in no load file), committed by the load job"]
    assert_equal_to_source(events_source, database_url)


def test_the_table_copy_ahead_creates_is_the_one_dlt_creates(tmp_path, events_source, monkeypatch, caplog):
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1000")
    add_events(events_source, 1, 5000)
    path = write_project(tmp_path / "project", TABLES, chunk_size=1000)
    columns = "select column_name, data_type, is_nullable, ordinal_position from information_schema.columns " \
              "where table_schema = 'raw_src' and table_name = 'events' order by ordinal_position"
    tables = {}
    for switch in ("on", "off"):
        monkeypatch.setenv(SWITCH_VARIABLE, switch)
        with fresh_database("hw_dest") as url, caplog.at_level(logging.INFO, logger="headwater.postgres"):
            caplog.clear()
            load(path, destination_url=url, source="src")
            assert bool(copied_ahead(caplog)) == (switch == "on")
            assert_equal_to_source(events_source, url)
            tables[switch] = query(url, columns)
    assert tables["on"] == tables["off"]
    assert [row[0] for row in tables["on"]] == ["id", "kind", "amount", "seen_at", "tags", "_dlt_load_id"]


def loaded_once(tmp_path, events_source: str, database_url: str, monkeypatch):
    """3000 events loaded; the next loads copy ahead from their first batch of 1000 rows."""
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1")
    add_events(events_source, 1, 3000)
    path = write_project(tmp_path / "project", TABLES, chunk_size=1000)
    load(path, destination_url=database_url, source="src")
    return path


def load_logged(path, database_url: str, caplog):
    with caplog.at_level(logging.INFO, logger="headwater"):
        return load(path, destination_url=database_url, source="src")


def test_a_column_added_at_the_source_is_not_copied_ahead_and_the_file_is_copied(
        tmp_path, events_source, database_url, monkeypatch, caplog):
    path = loaded_once(tmp_path, events_source, database_url, monkeypatch)
    # dlt's schema gains the column from the load's first batch (typed, though null until the last one):
    # the table must be altered, which an open COPY must not hold up.
    execute(events_source, "alter table events add column note text")
    add_events(events_source, 3001, 3000)
    execute(events_source, "update events set note = 'late ' || id where id > 5500")
    load_logged(path, database_url, caplog)
    assert copied_ahead(caplog) == []
    assert_equal_to_source(events_source, database_url)
    assert query(database_url, "select count(note) from raw_src.events") == [(500,)]


def test_a_column_that_appears_after_rows_went_to_the_copy_alone_reads_the_source_again(
        tmp_path, database_url, monkeypatch, caplog):
    """Event files gain a field part-way: dlt adds the column during the extract, which the open COPY cannot
    follow. Rows had gone to it alone, so the extract is dropped and the file read again, every row in the
    load file; every row lands once."""
    from connectors.filesystem import blocks

    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1")
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 16_000)  # about 300 lines per batch
    landing = tmp_path / "landing"
    landing.mkdir()
    lines = [{"id": i, "kind": f"kind-{i % 7}", **({"note": f"late {i}"} if i > 2000 else {})}
             for i in range(1, 3001)]
    (landing / "events.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    path = tmp_path / "project" / "headwater.yaml"
    path.parent.mkdir()
    path.write_text(f"sources:\n  drops:\n    connector: filesystem\n    settings:\n      bucket_url: '{landing}'\n"
                    f"      files: {{events: 'events.jsonl'}}\n    tables:\n      events: {{}}\n")
    project = load_project(path, connector_registry())
    with caplog.at_level(logging.INFO, logger="headwater"):
        result = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                             PostgresAddress.from_url(database_url))
    assert result.ok, result.error
    warnings = [record.getMessage() for record in caplog.records if "read again" in record.getMessage()]
    assert len(warnings) == 1 and "its columns changed during extract after" in warnings[0], warnings
    assert [table.rows for table in result.tables] == [3000]
    assert query(database_url, "select count(*), count(distinct id), sum(id), count(note) from raw_drops.events") == [
        (3000, 3000, 3000 * 3001 // 2, 1000)]


def test_a_row_refused_after_rows_went_to_the_copy_alone_is_quarantined_and_every_other_row_lands(
        tmp_path, events_source, database_url, monkeypatch, caplog):
    path = loaded_once(tmp_path, events_source, database_url, monkeypatch)
    # The destination's column narrowed by hand, which one row of the next load does not fit: row 5000, in
    # the second batch, which goes to the COPY alone (in no load file). The COPY fails; the load is read again
    # with every row in its load file, and the refused row is set aside from the file as any refused row is.
    execute(database_url, "alter table raw_src.events alter column tags type varchar(6)")
    add_events(events_source, 3001, 3000)
    execute(events_source, "update events set tags = 'a-much-longer-tag' where id = 5000")
    result = load_logged(path, database_url, caplog)
    assert "read again with every row in a load file" in caplog.text
    assert [(table.table, table.rows, table.quarantined) for table in result.tables] == [("events", 2999, 1)]
    assert query(database_url, "select count(*), count(distinct id), sum(id) from raw_src.events") == [
        (5999, 5999, 6000 * 6001 // 2 - 5000)]
    assert query(database_url, "select count(*) from raw_src.events__quarantine") == [(1,)]
    assert copy_ahead.waiting_tables("raw_src") == frozenset()


def test_a_batch_wider_than_the_existing_table_is_not_copied_ahead_and_the_column_widens(
        tmp_path, source_url, database_url, monkeypatch, caplog):
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1")
    execute(source_url, "create table events (id int primary key, amount int)")
    execute(source_url, "insert into events select i, i from generate_series(1, 3000) i")
    path = write_project(tmp_path / "project", TABLES, chunk_size=1000)
    load(path, destination_url=database_url, source="src")
    # A column the destination holds as bigint, for which a later load sends fractions from its first chunk:
    # the schema update must alter the column, so no COPY may hold the table; the load lands.
    execute(source_url, "alter table events alter column amount type numeric(30, 4)")
    execute(source_url, "insert into events select i, i + 0.125 from generate_series(3001, 5000) i")
    with caplog.at_level(logging.INFO, logger="headwater.postgres"):
        load(path, destination_url=database_url, source="src")
    assert copied_ahead(caplog) == []
    assert fingerprint(database_url, "raw_src.events", "id, amount", "id") == fingerprint(
        source_url, "events", "id, amount", "id")
    assert query(database_url, "select data_type from information_schema.columns where table_schema = 'raw_src' "
                               "and table_name = 'events' and column_name = 'amount'") == [("numeric",)]


def start_load(path, database_url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.load.load_child", str(path), database_url, "src"],
                            cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_loads_killed_at_random_moments_during_copy_ahead_end_exact(tmp_path, events_source, database_url,
                                                                   monkeypatch):
    """SIGKILL at a random moment of each of several loads (extract with its COPY open, the commit, dlt's
    bookkeeping), each load with new rows; every third kill is followed by a clean load, which must leave
    every row of the source, once, and no row of an unfinished load."""
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "20000")
    add_events(events_source, 1, 100_000)
    path = write_project(tmp_path / "project", TABLES, chunk_size=10_000)
    chooser, killed, next_id = random.Random(16), 0, 100_001
    for kill in range(1, 10):
        child = start_load(path, database_url)
        assert child.stderr.readline() == "loading\n"  # imports done: the load begins
        time.sleep(chooser.uniform(0.0, 1.0))  # a load of 100,000 rows takes about 0.4 s here
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            killed += 1
        child.communicate(timeout=120)
        add_events(events_source, next_id, 30_000)
        next_id += 30_000
        if kill % 3 == 0:
            load(path, destination_url=database_url, source="src")
            assert_equal_to_source(events_source, database_url)
            assert query(database_url, "select count(*) from raw_src.events e where not exists (select 1 from "
                                       "raw_src._dlt_loads l where l.load_id = e._dlt_load_id)") == [(0,)]
    assert killed >= 5, "too few loads were still running when killed: the delays need adjusting"


def test_tables_extracted_side_by_side_share_a_bounded_number_of_connections(tmp_path, source_url, database_url,
                                                                             monkeypatch, caplog):
    """dlt extracts a source's tables side by side; each table copied ahead holds its connections until its
    load job. Over MAX_CONNECTIONS in all, the other tables load their files as usual."""
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1")
    monkeypatch.setenv(STREAMS_VARIABLE, "2")
    names = ["alpha", "beta", "gamma"]
    for name in names:
        execute(source_url, f"create table {name} (id int primary key, label text);"
                            f"insert into {name} select i, '{name}-' || i from generate_series(1, 3000) i")
    tables = "\n".join(f"{name}: {{cursor: id, write_disposition: append}}" for name in names)
    path = write_project(tmp_path / "project", {"src": tables}, chunk_size=1000)
    with caplog.at_level(logging.INFO, logger="headwater.postgres"):
        load(path, destination_url=database_url, source="src")
    assert copy_ahead.MAX_CONNECTIONS == 4
    assert len(copied_ahead(caplog)) == 2  # 2 tables of 2 streams each; the third copied its file
    for name in names:
        assert fingerprint(database_url, f"raw_src.{name}", "id, label", "id") == fingerprint(
            source_url, name, "id, label", "id")

"""A large first load of a PostgreSQL table passed through in several streams side by side
(connectors.sql_database.parallel_ranges), every stream reading the coordinator's exported snapshot.

The loads are real: a Postgres source read by sql_database, dlt and the destination. Each test compares the
destination with the source by a checksum of every column over the rows in key order, and reads how the
table was split from the line the connector logs when the streams are done.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from tests.conftest import REPO, query
from tests.load.helpers import execute, load, load_losing_a_passed_commit, write_project

SPLIT = re.compile(r"passed through to the destination in (\d+) streams by (pages|cursor values) .* "
                   r"\(rows per stream: ([\d, ]+)\)")


pytestmark = pytest.mark.usefixtures("two_streams")


MIXED_COLUMNS = """id bigint, version bigint not null, amount numeric(18, 4), ratio double precision,
    happened_at timestamptz, day date, flag boolean, label text, note varchar(40), payload json, doc jsonb"""
# Every type passed, NULLs in each column but the cursor, text with tabs, quotes, backslashes, newlines and
# characters outside the BMP, JSON with escapes.
MIXED_VALUES = r"""i, i,
    case when i % 11 = 0 then null else i * 1.0001 - 50000 end,
    case when i % 13 = 0 then null else i / 7.0 end,
    case when i % 17 = 0 then null else timestamptz '2020-01-01 00:00:00+00' + i * interval '1.003 seconds' end,
    date '2000-01-01' + i % 9000,
    case when i % 3 = 0 then null else i % 2 = 0 end,
    case i % 5 when 0 then null when 1 then E'tab\there "quoted" \\back\nline;' || i
        when 2 then 'ünïcödé ✓ 😀 ' || i when 3 then '' else repeat('x,', i % 300) end,
    case when i % 4 = 0 then null else 'note,' || i || ';''' end,
    case when i % 6 = 0 then null else json_build_object('i', i, 's', E'a"b\\c', 'n', null, 'f', 1.50) end,
    case when i % 7 = 0 then null else jsonb_build_array(i, 'x', true, 2.5) end"""
# The row as text, the same on both sides: json lands as jsonb.
SOURCE_ROW = "(id, version, amount, ratio, happened_at, day, flag, label, note, payload::jsonb, doc)::text"
LANDED_ROW = "(id, version, amount, ratio, happened_at, day, flag, label, note, payload, doc)::text"


def checksum(url: str, relation: str, row: str, key: str = "id") -> tuple[int, int, str]:
    """(rows, distinct keys, md5 of the rows as text in key order)."""
    [result] = query(url, f"select count(*), count(distinct ({key})), "
                          f"md5(string_agg({row}, E'\\n' order by {key})) from {relation}")
    return result


def split_of(caplog) -> tuple[int, str, list[int]]:
    """(streams, by what, rows per stream) the connector logged; fails when it passed no table in streams."""
    found = [match for match in (SPLIT.search(record.getMessage()) for record in caplog.records) if match]
    assert len(found) == 1, caplog.text[-3000:]
    match = found[0]
    return int(match.group(1)), match.group(2), [int(rows) for rows in match.group(3).split(", ")]


@pytest.mark.parametrize("kind", ["table", "partitioned"])
def test_a_first_load_in_two_streams_lands_every_column_exactly(kind, tmp_path, source_url, database_url, caplog):
    partitioned = " partition by range (id)" if kind == "partitioned" else ""
    execute(source_url, f"create table events ({MIXED_COLUMNS}){partitioned}")
    if partitioned:  # no pages of its own: split by the cursor's values
        execute(source_url, "create table events_low partition of events for values from (minvalue) to (150000); "
                            "create table events_high partition of events for values from (150000) to (maxvalue)")
    execute(source_url, f"insert into events select {MIXED_VALUES} from generate_series(1, 300000) i")
    execute(source_url, "analyze events")
    path = write_project(tmp_path / "project", {"src": "events: {cursor: version, write_disposition: append}"},
                         chunk_size=50000)
    with caplog.at_level(logging.INFO):
        result = load(path, destination_url=database_url, source="src")
    streams, by, rows = split_of(caplog)
    assert (streams, by) == (2, "pages" if kind == "table" else "cursor values")
    assert all(stream > 50000 for stream in rows), rows  # both streams read a fair share
    assert sum(rows) == 299999  # every row but the edge (the highest cursor), which came through dlt
    assert {load.table: load.rows for load in result.tables}["events"] == 300000
    assert checksum(database_url, "raw_src.events", LANDED_ROW) == checksum(source_url, "events", SOURCE_ROW)
    assert query(database_url, "select count(distinct _dlt_load_id) from raw_src.events") == [(1,)]


class Writer:
    """Changes the source while a load runs: updates rows and inserts new ones, each change a transaction of its
    own with a new version (the cursor) from one sequence, committed one after the other."""

    def __init__(self, url: str):
        self.url, self.changes, self.error = url, 0, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as connection:
                next_id = 1_000_000
                while not self._stop.is_set():
                    with connection.transaction():
                        changed = self.changes * 7919 % 200000  # spread over the table's pages
                        connection.execute("update events set amount = amount + 1, label = label || '+', "
                                           "version = nextval('versions') where id = %s", (changed,))
                        connection.execute("insert into events values (%s, nextval('versions'), 1.5, 'new')",
                                           (next_id,))
                    next_id += 1
                    self.changes += 1
                    time.sleep(0.002)
        except BaseException as error:  # raised by stop(), in the test's thread
            self.error = error

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        assert self.error is None, self.error


def test_a_load_during_source_writes_lands_its_snapshot_and_the_next_run_the_rest(tmp_path, source_url,
                                                                                  database_url, caplog):
    # Every version of every row goes to history too (a trigger): the source as of any version can be rebuilt.
    execute(source_url, """
        create sequence versions;
        create table events (id bigint primary key, version bigint not null, amount numeric(12, 2), label text);
        create table history (like events);
        create function record_version() returns trigger language plpgsql as
          $$ begin insert into history values (new.*); return new; end $$;
        create trigger recorded after insert or update on events for each row execute function record_version();
        insert into events select i, nextval('versions'), i * 0.25, 'row ' || i from generate_series(1, 200000) i;
        analyze events;
    """)
    columns = "id, version, amount, label"
    path = write_project(tmp_path / "project", {"src": "events: {cursor: version, write_disposition: append}"},
                         chunk_size=50000)
    with Writer(source_url) as writer, caplog.at_level(logging.INFO):
        before = writer.changes
        load(path, destination_url=database_url, source="src")
        during = writer.changes - before
    assert split_of(caplog)[0] == 2
    [(end,)] = query(database_url, "select max(version) from raw_src.events")
    # The source as its snapshot saw it: each row's last version up to the highest the load read.
    as_of_snapshot = (f"(select distinct on (id) {columns} from history where version <= {end} "
                      f"order by id, version desc) as snapshot")
    assert checksum(database_url, "raw_src.events", f"({columns})::text") == checksum(
        source_url, as_of_snapshot, f"({columns})::text")
    [(later,)] = query(source_url, f"select count(*) from history where version > {end}")
    assert during > 0 and later > 0, "the source changed during the load, and after its snapshot"

    load(path, destination_url=database_url, source="src")  # the writes committed after the snapshot
    newest = (f"(select distinct on (id) {columns} from raw_src.events order by id, version desc) as newest")
    assert checksum(database_url, newest, f"({columns})::text") == checksum(source_url, "events",
                                                                            f"({columns})::text")
    [(landed, versions)] = query(database_url, "select count(*), count(distinct (id, version)) from raw_src.events")
    [(expected,)] = query(source_url, f"select (select count(distinct id) from history where version <= {end}) "
                                      f"+ (select count(*) from events where version > {end})")
    assert landed == versions == expected  # no version twice, none missing


def mixed_source(tmp_path, source_url: str, rows: int):
    """A source table events of ``rows`` rows of every passed type; the path of a project loading it."""
    execute(source_url, f"create table events ({MIXED_COLUMNS})")
    execute(source_url, f"insert into events select {MIXED_VALUES} from generate_series(1, {rows}) i")
    return write_project(tmp_path / "project", {"src": "events: {cursor: version, write_disposition: append}"},
                         chunk_size=50000)


def test_streams_whose_second_commit_fails_are_read_again_in_the_same_run_without_the_first_ones_rows(
        tmp_path, source_url, database_url, monkeypatch, caplog):
    path = mixed_source(tmp_path, source_url, 100000)
    with caplog.at_level(logging.INFO):
        result = load_losing_a_passed_commit(path, database_url, monkeypatch, stream=1)
    assert result.error is None, result.error
    assert split_of(caplog)[0] == 2
    # The first stream had committed: the discard deleted its rows before the source was read again.
    assert "rows passed through lost" in caplog.text
    assert "the load is discarded and the source read again with every row in a load file" in caplog.text
    assert {load.table: load.rows for load in result.tables} == {"events": 100000}
    assert checksum(database_url, "raw_src.events", LANDED_ROW) == checksum(source_url, "events", SOURCE_ROW)
    assert query(database_url, "select count(distinct _dlt_load_id) from raw_src.events") == [(1,)]


@pytest.mark.parametrize("kill_point", ["passed_streaming", "passed_committing"])
def test_a_first_load_killed_while_its_streams_copy_or_commit_is_exact_after_the_next_run(
        kill_point, tmp_path, source_url, database_url, caplog):
    path = mixed_source(tmp_path, source_url, 100000)
    child = subprocess.run([sys.executable, "-m", "tests.load.crash_child", str(path), database_url, "src",
                            kill_point], cwd=REPO, capture_output=True, text=True, timeout=180)
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-3000:]
    [(committed,)] = query(database_url, "select count(*) from raw_src.events")
    if kill_point == "passed_committing":  # the first stream's rows, of a load that never finished
        assert 0 < committed < 99999
        assert query(database_url, "select count(*) from raw_src._dlt_loads") == [(0,)]
    else:
        assert committed == 0

    execute(source_url, f"insert into events select {MIXED_VALUES} from generate_series(100001, 100500) i")
    with caplog.at_level(logging.INFO):
        result = load(path, destination_url=database_url, source="src")
    # Killed between the commits, the package was marked: recovery discards it (its load id deleted). Killed in
    # extract, no package was kept.
    assert ("were not committed; this run reads them again" in caplog.text) == (kill_point == "passed_committing")
    assert split_of(caplog)[0] == 2  # read again from the start, in two streams
    assert {load.table: load.rows for load in result.tables}["events"] == 100500
    assert checksum(database_url, "raw_src.events", LANDED_ROW) == checksum(source_url, "events", SOURCE_ROW)
    execute(source_url, f"insert into events select {MIXED_VALUES} from generate_series(100501, 100600) i")
    load(path, destination_url=database_url, source="src")  # and the run after is a normal one
    assert checksum(database_url, "raw_src.events", LANDED_ROW) == checksum(source_url, "events", SOURCE_ROW)

"""A load SIGKILLed at extract, normalize or load, then run again: the destination equals the source.

Also with a copy job split over 2 COPY streams (headwater.postgres.copy_streams): killed between the
streams' commits, or losing a stream's connection while committing; with the append table copied
ahead during extract (headwater.postgres.copy_ahead), its COPY open while extract runs; and with its rows
passed through from the source (connectors.sql_database.pass_through), in no load file.

Each kill lands in a subprocess (tests/load/crash_child.py). The next run must load what the
crashed one left, extract what changed since, and end with the same rows as the source: counts,
keys, an md5 of the ordered rows, and no duplicates, for an append and a merge table.

The same again when the next run starts without the crashed run's working folder (a fresh worker, a pod
whose disk is gone): the rows its copy jobs committed are found in headwater_ops.open_loads and removed
before the source is read again from the cursor dlt restores from the destination. After every run that
loaded, headwater_ops.open_loads is empty.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys

import pytest

from connectors.sql_database.pass_through import SWITCH_VARIABLE as PASS_THROUGH_VARIABLE
from headwater.load.pipeline import pipelines_dir
from headwater.postgres.address import PostgresAddress
from headwater.postgres.copy_ahead import MIN_ROWS_VARIABLE
from headwater.postgres.copy_streams import STREAMS_VARIABLE
from tests.conftest import REPO, query
from tests.load.helpers import execute, fingerprint, load, read, write_project

TABLES = {"src": """
    events: {cursor: id, write_disposition: append}
    accounts: {primary_key: id, cursor: updated_at, write_disposition: merge}
"""}
EVENTS = ("events", "id, kind, amount", "id")
ACCOUNTS = ("accounts", "id, owner, balance, updated_at", "id")


def add_data(url: str, first_event: int, events: int, changed_accounts: int, tick: int) -> None:
    """New events, and new and updated accounts, each change with a later updated_at."""
    execute(url, f"""
        insert into events select i, 'kind-' || (i % 7), i * 0.5
          from generate_series({first_event}, {first_event + events - 1}) i;
        update accounts set balance = balance + {tick}, updated_at = now() + interval '{tick} minutes'
          where id % {changed_accounts} = 0;
        insert into accounts select i, 'owner-' || i, i, now() + interval '{tick} minutes'
          from generate_series({tick * 1000}, {tick * 1000 + changed_accounts - 1}) i;
    """)


def assert_destination_equals_source(source_url: str, destination_url: str) -> None:
    for table, columns, key in (EVENTS, ACCOUNTS):
        source = fingerprint(source_url, table, columns, key)
        loaded = fingerprint(destination_url, f"raw_src.{table}", columns, key)
        assert loaded == source, table
        assert loaded[0] == loaded[1], f"{table} has duplicate keys"
    assert query(destination_url, "select * from headwater_ops.open_loads") == []  # every load recorded


def open_loads(database_url: str) -> list[tuple]:
    """(table, rows of that load id in it) per entry of headwater_ops.open_loads."""
    entries = query(database_url, "select dataset, table_name, load_id from headwater_ops.open_loads order by 1, 2")
    return [(f"{dataset}.{table}", query(database_url, f"select count(*) from {dataset}.{table} "
                                                       f"where _dlt_load_id = '{load_id}'")[0][0])
            for dataset, table, load_id in entries]


def orphans(database_url: str) -> int:
    """Events rows of no recorded load."""
    return query(database_url, "select count(*) from raw_src.events e where not exists "
                               "(select 1 from raw_src._dlt_loads l where l.load_id = e._dlt_load_id)")[0][0]


def delete_working_folder(path, database_url: str) -> None:
    """What a run on a fresh machine finds: no working folder for the source."""
    folder = pipelines_dir(read(path).state_dir, PostgresAddress.from_url(database_url)) / "headwater_src"
    assert folder.is_dir()
    shutil.rmtree(folder)


KILL_POINTS = ("extract", "normalize", "normalize_committed", "load_before_commit", "load_after_commit:events",
               "load_after_commit:accounts", "load_after_marker:events")


# Every kill point with one COPY stream; each other way rows reach the destination at the kill points where it
# differs: 2 streams around its commits, rows copied ahead or passed through from extract on (in no load file).
@pytest.mark.parametrize(("kill_point", "streams"), [
    *((kill_point, "1") for kill_point in KILL_POINTS),
    ("load_after_commit:events", "2"), ("load_after_commit:accounts", "2"),
    *((kill_point, "ahead") for kill_point in ("normalize", "load_before_commit", "load_after_commit:events",
                                               "load_after_marker:events")),
    *((kill_point, "passed") for kill_point in ("normalize_committed", "load_before_commit",
                                                "load_after_commit:accounts", "load_after_marker:events")),
])
def test_a_killed_load_is_completed_by_the_next_run(kill_point, streams, tmp_path, source_url, database_url,
                                                    monkeypatch, caplog):
    path = killed_load(tmp_path, source_url, database_url, monkeypatch, kill_point, streams)
    if kill_point == "load_after_commit:events":  # the committed job's rows belong to no finished load yet
        assert orphans(database_url) == 2000
        assert ("raw_src.events", 2000) in open_loads(database_url)  # recorded with them

    add_data(source_url, 5001, 500, 30, tick=3)
    with caplog.at_level(logging.INFO):
        load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "left unfinished" not in logged  # the working folder had the package: recovery finished it as before
    if streams in ("ahead", "passed"):
        # Events' second batch is in no load file (passed through, or copied ahead alone). Killed before the
        # events job finished, the crashed run's rows in no file were never committed (or their job not marked
        # done): its package is discarded. Killed in extract, nothing was pending; killed after the events job's
        # marker, it was done. (Killed after the accounts job, the events job may be either.)
        discarded = kill_point in ("normalize", "normalize_committed", "load_before_commit", "load_after_commit:events")
        if kill_point != "load_after_commit:accounts":
            assert ("were not committed; this run reads them again" in logged) == discarded, logged[-3000:]
        assert ("rows passed through from the source, committed by the load job" if streams == "passed" else
                "rows copied during extract") in logged
    load(path, destination_url=database_url, source="src")  # and the run after is a normal one
    assert_destination_equals_source(source_url, database_url)


# Each way rows reach the destination killed with its rows committed and its load unrecorded (the case the
# journal is for); every other kill point in one of them.
@pytest.mark.parametrize(("kill_point", "streams"), [
    *(("load_after_commit:events", streams) for streams in ("1", "2", "ahead", "passed")),
    ("load_after_commit:accounts", "2"), ("load_after_marker:events", "ahead"), ("load_before_commit", "passed"),
    ("load_recording", "1"), ("load_recording", "passed"), ("normalize_committed", "ahead"),
])
def test_a_killed_load_is_made_exact_by_a_run_without_its_working_folder(kill_point, streams, tmp_path, source_url,
                                                                         database_url, monkeypatch, caplog):
    path = killed_load(tmp_path, source_url, database_url, monkeypatch, kill_point, streams)
    left = orphans(database_url)
    if kill_point in ("load_after_commit:events", "load_after_marker:events", "load_recording"):
        assert left == 2000  # the crashed load's events are in the table, its load not recorded
    assert ("raw_src.events", left) in open_loads(database_url) or left == 0  # every one of them recorded
    delete_working_folder(path, database_url)

    add_data(source_url, 5001, 500, 30, tick=3)
    with caplog.at_level(logging.INFO):
        loaded = load(path, destination_url=database_url, source="src")
    # dlt restored the cursor from the destination, where the crashed load never moved it: its 2000 events are
    # read again, with the 500 new ones
    assert {table.table: table.rows for table in loaded.tables}["events"] == 2500
    assert_destination_equals_source(source_url, database_url)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert (f"removed {left} rows of load" in logged) == bool(left), logged[-3000:]
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)


@pytest.mark.parametrize(("kill_point", "streams", "said"), [
    # the package committed to the extract folder, but the pipeline's state does not name its schema yet
    ("extract_committed", "1", "before dlt recorded its state"),
    ("extract_committed", "ahead", "before dlt recorded its state"),  # and a COPY of events open since extract
    # normalized, nothing loaded: the destination has no dataset yet
    ("normalize_committed", "1", "the destination has no dataset raw_src"),
])
def test_a_first_load_killed_before_anything_loaded_is_read_again_by_the_next_run(kill_point, streams, said, tmp_path,
                                                                                 source_url, database_url,
                                                                                 monkeypatch, caplog):
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1" if streams == "ahead" else "1000000")
    path = first_load(tmp_path, source_url, database_url, loaded=False)
    child = run_child(path, database_url, kill_point)
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-3000:]
    with caplog.at_level(logging.INFO):
        loaded = load(path, destination_url=database_url, source="src")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "discarded pending load packages" in logged and said in logged, logged[-3000:]
    assert {table.table: table.rows for table in loaded.tables}["events"] == 5000
    assert_destination_equals_source(source_url, database_url)
    add_data(source_url, 5001, 500, 30, tick=3)
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)


def test_recover_says_why_a_first_load_killed_before_anything_loaded_is_discarded(tmp_path, source_url, database_url,
                                                                                 monkeypatch, capsys):
    from headwater.cli import main

    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1000000")
    path = first_load(tmp_path, source_url, database_url, loaded=False)
    assert run_child(path, database_url, "normalize_committed").returncode == -9
    monkeypatch.setenv("HEADWATER_CONFIG", str(path))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["recover", "src"]) == 0
    out = capsys.readouterr().out
    assert ("src's pending loads were discarded, not loaded: the destination has no dataset raw_src, so nothing "
            "of them was loaded.") in out, out
    assert "had been interrupted" not in out
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)


def test_a_working_folder_killed_while_dlt_made_its_package_folders_loads_exact(tmp_path, source_url,
                                                                                 database_url):
    # dlt writes each storage's version file before its package folders: a kill in between leaves them missing
    path = first_load(tmp_path, source_url, database_url)
    folder = pipelines_dir(read(path).state_dir, PostgresAddress.from_url(database_url)) / "headwater_src"
    for storage in ("load/new", "load/normalized", "load/loaded", "normalize/extracted"):
        shutil.rmtree(folder / storage)
    assert (folder / "load" / ".version").is_file()
    loaded = load(path, destination_url=database_url, source="src")
    assert {table.table: table.rows for table in loaded.tables}["events"] == 2000
    assert_destination_equals_source(source_url, database_url)


@pytest.mark.parametrize("kill_point", ["load_after_commit:events", "normalize"])
def test_a_package_left_on_a_machine_that_another_one_loaded_past_is_discarded(kill_point, tmp_path, source_url,
                                                                               database_url, monkeypatch, caplog):
    # killed on machine A; machine B (no folder) loads; A, its folder still holding the package, loads again
    path = killed_load(tmp_path, source_url, database_url, monkeypatch, kill_point, "1")
    folder = pipelines_dir(read(path).state_dir, PostgresAddress.from_url(database_url)) / "headwater_src"
    kept = folder.with_name("machine_a")
    folder.rename(kept)
    add_data(source_url, 5001, 500, 30, tick=3)
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)
    shutil.rmtree(folder)
    kept.rename(folder)
    add_data(source_url, 5501, 300, 20, tick=4)
    with caplog.at_level(logging.INFO):
        loaded = load(path, destination_url=database_url, source="src")
    assert "read their rows again" in "\n".join(record.getMessage() for record in caplog.records)
    assert {table.table: table.rows for table in loaded.tables}["events"] == 300
    assert_destination_equals_source(source_url, database_url)


@pytest.mark.parametrize("kill_point", ["streams_committing:events", "ahead_committing"])
def test_a_load_killed_between_two_commits_is_made_exact_by_a_run_without_its_working_folder(
        kill_point, tmp_path, source_url, database_url, monkeypatch):
    monkeypatch.setenv(STREAMS_VARIABLE, "2")
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1" if kill_point == "ahead_committing" else "1000000")
    path = first_load(tmp_path, source_url, database_url)
    child = run_child(path, database_url, kill_point)
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-3000:]
    left = orphans(database_url)
    assert 0 < left <= 2000 if kill_point.startswith("streams") else left <= 2000  # the first stream's rows
    assert ("raw_src.events", left) in open_loads(database_url) or left == 0
    delete_working_folder(path, database_url)

    add_data(source_url, 5001, 500, 30, tick=3)
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)


@pytest.mark.parametrize("table", ["events", "accounts"])
def test_a_load_killed_between_its_copy_streams_commits_is_completed_by_the_next_run(
        table, tmp_path, source_url, database_url, monkeypatch):
    monkeypatch.setenv(STREAMS_VARIABLE, "2")  # the runs after the kill copy in 2 streams too
    path = first_load(tmp_path, source_url, database_url)
    child = run_child(path, database_url, f"streams_committing:{table}")
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-3000:]
    if table == "events":  # one stream committed: part of the job's 2000 rows, of no finished load
        orphans = query(database_url, "select count(*) from raw_src.events e where not exists "
                                      "(select 1 from raw_src._dlt_loads l where l.load_id = e._dlt_load_id)")
        assert 0 < orphans[0][0] < 2000

    add_data(source_url, 5001, 500, 30, tick=3)
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)


def test_a_load_killed_between_the_commits_of_its_rows_copied_ahead_is_completed_by_the_next_run(
        tmp_path, source_url, database_url, monkeypatch):
    monkeypatch.setenv(STREAMS_VARIABLE, "2")
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1")  # events copied ahead from its first batch, over 2 COPY streams
    path = first_load(tmp_path, source_url, database_url)
    child = run_child(path, database_url, "ahead_committing")
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-3000:]
    orphans = query(database_url, "select count(*) from raw_src.events e where not exists "
                                  "(select 1 from raw_src._dlt_loads l where l.load_id = e._dlt_load_id)")
    assert orphans[0][0] <= 2000  # what the first stream took of the job's 2000 rows, of no finished load

    add_data(source_url, 5001, 500, 30, tick=3)
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)


def test_a_copy_stream_that_loses_its_connection_while_committing_is_copied_again_in_the_same_run(
        tmp_path, source_url, database_url):
    path = first_load(tmp_path, source_url, database_url)
    child = run_child(path, database_url, "streams_lost:events")
    assert child.returncode == 0, child.stdout[-2000:] + child.stderr[-3000:]
    assert "finished without being killed" in child.stdout
    # dlt retried the job: it deleted the committed stream's rows of its load id before copying again
    assert_destination_equals_source(source_url, database_url)
    add_data(source_url, 5001, 500, 30, tick=3)
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_url, database_url)


def killed_load(tmp_path, source_url: str, database_url: str, monkeypatch, kill_point: str, streams: str):
    """The first load, then the next one killed at ``kill_point``: copy jobs in one COPY stream, or in 2 (``streams``
    "1", "2"); events copied ahead from its first batch on ("ahead"); or events passed through from the source
    ("passed": all but the rows at the edges of its cursor's window)."""
    monkeypatch.setenv(STREAMS_VARIABLE, streams if streams in ("1", "2") else "1")
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1" if streams in ("ahead", "passed") else "1000000")
    monkeypatch.setenv(PASS_THROUGH_VARIABLE, "on" if streams == "passed" else "off")
    path = first_load(tmp_path, source_url, database_url)
    child = run_child(path, database_url, kill_point)
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-3000:]
    return path


def first_load(tmp_path, source_url: str, database_url: str, loaded: bool = True):
    """The source's tables loaded once (unless not ``loaded``), then changed: the next load has 2000 new events and
    changed accounts."""
    execute(source_url, """
        create table events (id int primary key, kind text, amount numeric(12, 2));
        create table accounts (id int primary key, owner text, balance numeric(12, 2), updated_at timestamptz);
    """)
    add_data(source_url, 1, 3000, 50, tick=1)
    path = write_project(tmp_path / "project", TABLES)
    if loaded:
        load(path, destination_url=database_url, source="src")
    add_data(source_url, 3001, 2000, 40, tick=2)
    return path


def run_child(path, database_url: str, kill_point: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.load.crash_child", str(path), database_url, "src", kill_point],
        cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=120,
    )

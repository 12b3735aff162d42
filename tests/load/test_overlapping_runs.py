"""Two runs of one source at once, from one project folder or two: the second waits for the first (or, past
`run.lock_wait`, skips the source), and the destination ends equal to the source, nothing loaded twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from headwater.load.source_lock import source_lock
from headwater.postgres.address import PostgresAddress
from tests.conftest import REPO, query
from tests.load.helpers import execute, fingerprint, load, read, registry, write_project

TABLES = {"src": """
    events: {cursor: id, write_disposition: append}
    accounts: {primary_key: id, cursor: updated_at, write_disposition: merge}
"""}
EVENTS = ("events", "id, kind, amount", "id")
ACCOUNTS = ("accounts", "id, owner, balance, updated_at", "id")
# Two loads whose calls overlap by more than this held the source lock at the same time for a while.
OVERLAP_SECONDS = 0.2


def add_data(url: str, first_event: int, events: int, tick: int) -> None:
    execute(url, f"""
        insert into events select i, 'kind-' || (i % 7), i * 0.5
          from generate_series({first_event}, {first_event + events - 1}) i;
        update accounts set balance = balance + {tick}, updated_at = now() + interval '{tick} minutes'
          where id % 7 = 0;
        insert into accounts select i, 'owner-' || i, i, now() + interval '{tick} minutes'
          from generate_series({tick * 100000}, {tick * 100000 + 4999}) i;
    """)


@pytest.fixture
def source_tables(source_url):
    execute(source_url, """
        create table events (id int primary key, kind text, amount numeric(12, 2));
        create table accounts (id int primary key, owner text, balance numeric(12, 2), updated_at timestamptz);
    """)
    add_data(source_url, 1, 150_000, tick=1)
    return source_url


def assert_destination_equals_source(source_url: str, destination_url: str) -> None:
    for table, columns, key in (EVENTS, ACCOUNTS):
        loaded = fingerprint(destination_url, f"raw_src.{table}", columns, key)
        assert loaded == fingerprint(source_url, table, columns, key), table
        assert loaded[0] == loaded[1], f"{table} has duplicate keys"


def start_load(path: Path, database_url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.load.load_child", str(path), database_url, "src"],
                            cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen) -> tuple[dict, str]:
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, out[-2000:] + err[-3000:]
    return json.loads(out.strip().splitlines()[-1]), err


@pytest.mark.parametrize("apart", [0, 0.5, 3])
def test_two_loads_of_one_project_started_together_end_exact(apart, tmp_path, source_tables, database_url):
    path = write_project(tmp_path / "project", TABLES, chunk_size=20_000)
    first = start_load(path, database_url)
    time.sleep(apart)
    second = start_load(path, database_url)
    (one, one_log), (two, two_log) = finish(first), finish(second)

    assert one["error"] is None and two["error"] is None
    assert one["skipped"] is None and two["skipped"] is None  # the default lock_wait outlasts the other load
    assert_destination_equals_source(source_tables, database_url)
    # Every event was loaded by exactly one of the two runs.
    assert one["rows"].get("events", 0) + two["rows"].get("events", 0) == 150_000
    # Whether the two loads met depends on how fast this machine loads; started together, they do. Where they
    # met (by more than the moment between releasing the lock and returning), one waited for the other and
    # said for whom; never both.
    met = min(one["ended"], two["ended"]) - max(one["began"], two["began"])
    if apart == 0:
        assert met > OVERLAP_SECONDS, (one, two)
    waits = [log for log in (one_log, two_log) if "waiting for source src, held by headwater load pid" in log]
    expected = {1} if met > OVERLAP_SECONDS else {0} if met <= 0 else {0, 1}
    assert len(waits) in expected, (met, one_log[-1500:], two_log[-1500:])

    add_data(source_tables, 150_001, 1000, tick=2)  # and later runs go on exactly
    load(path, destination_url=database_url, source="src")
    assert_destination_equals_source(source_tables, database_url)


def test_two_project_folders_loading_one_source_name_end_exact(tmp_path, source_tables, database_url):
    paths = [write_project(tmp_path / name, TABLES, chunk_size=20_000) for name in ("team_a", "team_b")]
    children = [start_load(path, database_url) for path in paths]
    results = [finish(child)[0] for child in children]
    assert all(result["error"] is None and result["skipped"] is None for result in results)
    assert sum(result["rows"].get("events", 0) for result in results) == 150_000
    assert_destination_equals_source(source_tables, database_url)

    for tick, path in enumerate(paths * 2, start=2):  # each folder in turn picks up where the other left off
        add_data(source_tables, 150_000 + tick * 1000, 1000, tick=tick)
        load(path, destination_url=database_url, source="src")
        assert_destination_equals_source(source_tables, database_url)


def test_a_source_held_past_lock_wait_is_skipped_and_said_so(tmp_path, source_tables, database_url):
    path = write_project(tmp_path / "project", TABLES)
    path.write_text(path.read_text() + "run: {lock_wait: 0}\n")
    project = read(path)
    address = PostgresAddress.from_url(database_url)
    with source_lock(address, "src", wait_seconds=0, purpose="quarantine replay"):
        from headwater.load.pipeline import load_source

        result = load_source(project, project.source("src"), registry().get("sql_database"), address)
    assert result.ok and result.tables == []
    assert result.skipped.startswith("another run was loading it (headwater quarantine replay src); waited 0 s")
    assert query(database_url, "select count(*) from information_schema.schemata where schema_name = 'raw_src'") \
        == [(0,)]  # nothing was written

    load(path, destination_url=database_url, source="src")  # the lock is free again: the next run loads
    assert_destination_equals_source(source_tables, database_url)


def test_a_waiting_load_goes_on_when_the_holder_lets_go(tmp_path, source_tables, database_url):
    path = write_project(tmp_path / "project", TABLES)
    path.write_text(path.read_text() + "run: {lock_wait: 30s}\n")
    address = PostgresAddress.from_url(database_url)
    held, release = threading.Event(), threading.Event()

    def hold():
        with source_lock(address, "src", wait_seconds=0, purpose="recover"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    result = load(path, destination_url=database_url, source="src")
    holder.join()
    assert time.monotonic() - started >= 1.0  # it waited for the holder
    assert result.skipped is None and result.rows == 150_000 + 5_000
    assert_destination_equals_source(source_tables, database_url)

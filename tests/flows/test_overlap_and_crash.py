"""Whole runs meeting each other: two at once, one killed, one building marts while another wants to.

A run killed outright is marked crashed by the next run, in headwater_ops and on the Prefect server; two
runs started together both succeed, the second having waited; a run that cannot get the marts leaves its
tables pending and the next run builds them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from headwater.marts.build_lock import build_lock
from headwater.postgres.address import PostgresAddress
from tests.conftest import REPO, fresh_database, query
from tests.load.helpers import SOURCE_URL_VARIABLE, execute, fingerprint, write_project

pytestmark = pytest.mark.slow

TABLES = {"src": "events: {cursor: id, write_disposition: append}"}


@pytest.fixture
def events_source(monkeypatch):
    with fresh_database("hw_src") as url:
        monkeypatch.setenv(SOURCE_URL_VARIABLE, url)
        execute(url, "create table events (id int primary key, kind text, amount numeric(12, 2));"
                     "insert into events select i, 'kind-' || (i % 7), i * 0.5 from generate_series(1, 150000) i")
        yield url


def start_run(project, database_url: str, prefect_api: str) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "HEADWATER_DATABASE_URL": database_url,
           "HEADWATER_CONFIG": str(project)}
    return subprocess.Popen([sys.executable, "-m", "flows.daily"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen) -> str:
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, out[-3000:] + err[-3000:]
    return out


def running_run(database_url: str) -> str | None:
    try:
        rows = query(database_url, "select run_id from headwater_ops.runs where status = 'running'")
    except psycopg.errors.UndefinedTable:
        return None
    return rows[0][0] if rows else None


def test_a_killed_run_is_marked_crashed_by_the_next_run(tmp_path, events_source, database_url, prefect_api):
    project = write_project(tmp_path / "project", TABLES, chunk_size=20_000)
    child = start_run(project, database_url, prefect_api)
    deadline = time.monotonic() + 120
    while (killed := running_run(database_url)) is None:
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    out = finish(start_run(project, database_url, prefect_api))
    assert f"Crashed earlier run {killed} (daily, started" in " ".join(out.split())
    assert "Run succeeded" in out
    runs = dict(query(database_url, "select run_id, status from headwater_ops.runs"))
    assert runs.pop(killed) == "crashed" and list(runs.values()) == ["succeeded"]
    [(failures,)] = query(database_url, "select failures from headwater_ops.runs where run_id = %s", killed)
    assert failures[0].startswith("run crashed: its process ended without finishing")
    assert fingerprint(database_url, "raw_src.events", "id, kind, amount", "id") == \
        fingerprint(events_source, "events", "id, kind, amount", "id")

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        assert client.read_flow_run(killed).state.type.value == "CRASHED"


def test_two_runs_started_together_both_succeed_and_load_each_row_once(tmp_path, events_source, database_url,
                                                                        prefect_api):
    project = write_project(tmp_path / "project", TABLES, chunk_size=20_000)
    outputs = [finish(child) for child in [start_run(project, database_url, prefect_api) for _ in range(2)]]
    assert all("Run succeeded" in out for out in outputs)
    assert query(database_url, "select sum(rows_loaded) from headwater_ops.table_loads "
                               "where source = 'src' and table_name = 'events'") == [(150_000,)]
    assert fingerprint(database_url, "raw_src.events", "id, kind, amount", "id") == \
        fingerprint(events_source, "events", "id, kind, amount", "id")


def test_a_run_that_cannot_get_the_marts_leaves_them_to_the_next_run(shop_project, database_url, prefect_api,
                                                                     monkeypatch):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    config = shop_project / "headwater.yaml"
    config.write_text(config.read_text() + "\nrun: {lock_wait: 0}\n")
    from flows.daily import daily

    with build_lock(PostgresAddress.from_url(database_url), wait_seconds=0):
        first = daily()
    assert first.ok and first.dbt is None
    assert first.build_skipped.startswith("another run was building the marts (headwater build pid ")
    pending = query(database_url, "select schema_name, table_name from headwater_ops.pending_rebuilds order by 1, 2")
    assert ("raw_shop_db", "customers") in pending and ("raw_shop_files", "orders") in pending

    second = daily()  # nothing new to load, yet it builds and publishes what the first run left
    assert second.ok, second.failures
    assert second.dbt is not None and second.dbt.success
    assert query(database_url, "select count(*) from headwater_ops.pending_rebuilds") == [(0,)]
    assert query(database_url, "select count(*) from marts.customers")[0][0] > 0

"""`headwater stream`: batch after batch of a postgres_cdc source, each recorded as it commits, marts built on a
cadence of their own, and a graceful stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from flows.stream import stream_flow
from tests.conftest import query
from tests.connectors.test_postgres_cdc import execute, source_and_raw, write_project


@pytest.fixture
def cdc_project(tmp_path, cdc_source, database_url, monkeypatch):
    execute(cdc_source, "create table items (id int primary key, name text)",
            "insert into items select g, 'n' || g from generate_series(1, 50) g")
    write_project(tmp_path, "tables: [items]\n")
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    return tmp_path


def test_each_batch_is_recorded_and_the_marts_build_on_their_cadence(cdc_project, cdc_source, database_url,
                                                                     prefect_api, capsys):
    summary = stream_flow(source="shop", max_batches=2, build_every=1)
    assert summary.ok, summary.failures
    assert summary.marts_left == "2 batches loaded 50 rows; the marts were built once."
    out = " ".join(capsys.readouterr().out.split())
    assert summary.marts_left in out
    assert query(database_url, "select batch, rows_loaded, tables, lag is not null from headwater_ops.stream_batches"
                              " order by batch") == [(1, 50, {"items": 50}, False), (2, 0, {}, True)]
    assert query(database_url, "select flow_name, status from headwater_ops.runs order by started_at") == [
        ("stream", "succeeded"), ("build", "succeeded")]
    assert query(database_url, "select count(*) from headwater_ops.pending_rebuilds") == [(0,)]

    from headwater.cli import main as headwater

    capsys.readouterr()
    assert headwater(["status"]) == 0
    status = capsys.readouterr().out
    section = status[status.index("Streams (newest batch per source)"):].splitlines()
    cells = next([cell.strip() for cell in line.split("│")[1:-1]] for line in section if "│ shop" in line)
    # source, batch, at, rows, quarantined, behind, unread, WAL kept, error
    assert cells[:2] + cells[3:6] == ["shop", "2", "0", "0", "0.0s"] and cells[8] == "", cells

    execute(cdc_source, "update items set name = 'changed' where id <= 5", "delete from items where id > 45")
    summary = stream_flow(source="shop", max_batches=1)
    assert summary.ok, summary.failures
    source_rows, raw = source_and_raw(cdc_source, database_url, "items", "id, name")
    assert raw == source_rows and len(raw) == 45
    # No build this time: the changed table waits for the next build, and the summary says so.
    assert summary.marts_left == ("1 batch loaded 10 rows; the tables of the last batches stay pending for the "
                                  "next build.")
    assert query(database_url, "select schema_name, table_name from headwater_ops.pending_rebuilds") == [
        ("raw_shop", "items")]


def test_sigterm_stops_the_stream_after_the_batch_under_way(cdc_project, database_url, prefect_api):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    stream = subprocess.Popen([sys.executable, "-m", "flows.stream", "shop"], cwd=cdc_project, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and stream.poll() is None:
        if query(database_url, "select to_regclass('headwater_ops.stream_batches') is not null")[0][0] and query(
                database_url, "select count(*) from headwater_ops.stream_batches")[0][0] >= 2:
            break
        time.sleep(0.2)
    stream.send_signal(signal.SIGTERM)
    output = stream.communicate(timeout=60)[0].decode()
    assert stream.returncode == 0, output
    batches = query(database_url, "select count(*), sum(rows_loaded) from headwater_ops.stream_batches")[0]
    assert batches[0] >= 2 and batches[1] == 50
    assert query(database_url, "select flow_name, status, rows_loaded from headwater_ops.runs") == [
        ("stream", "succeeded", 50)]
    assert "batch 1: 50 rows (items 50)" in output

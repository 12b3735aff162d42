"""Rows Postgres refuses are quarantined alone, with its reason; the rest of the source loads, run after run.

A lost connection is no refusal: the load is tried again and nothing is quarantined.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.load.pipeline import SourceLoad, load_source, open_pipeline
from headwater.load.recovery import pending_loads
from headwater.load.reload import plan_reload
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.postgres.copy_ahead import MIN_ROWS_VARIABLE
from headwater.project.config import load_project
from tests.conftest import REPO, query
from tests.landing_project import landing_project, load_drops
from tests.load.helpers import drop_connections, load_feed

SHIFTS = {"shifts": "t*.parquet", "other": "o*.csv"}
FIX = ("correct the file (a changed file is read again) or reload the table with the file's types "
       "(headwater run --full-refresh drops.shifts)")
TYPE_MISFIT = "a column's type does not fit the table's"


def write_shifts(path, ids: list[int], opens) -> None:
    """A Parquet landing file of shifts: `opens` is a time column, or whatever the values are."""
    values = opens if isinstance(opens, pa.Array) else pa.array(opens)
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "opens": values}), path)


def times(*values: str) -> pa.Array:
    return pa.array([time.fromisoformat(value) for value in values], pa.time64("us"))


def try_load(project, database_url: str) -> SourceLoad:
    return load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                       PostgresAddress.from_url(database_url))


def quarantined(database_url: str, table: str = "shifts") -> list[tuple]:
    return query(database_url, f"select location, rule, reason, record from raw_drops.{table}__quarantine "
                               "where status = 'quarantined' order by location")


def nothing_pending(project, database_url: str) -> bool:
    pipeline = open_pipeline(project, project.source("drops"), PostgresAddress.from_url(database_url))
    return pending_loads(pipeline).empty


def loaded_then_a_bad_file(tmp_path, database_url: str):
    """(landing, project) of `drops` loaded once; then t2.parquet, whose second row is "soon" where times were,
    and o2.csv, not loaded yet."""
    landing, project = landing_project(tmp_path, SHIFTS)
    write_shifts(landing / "t1.parquet", [1, 2], times("09:00", "10:00"))
    (landing / "o1.csv").write_text("id\n1\n")
    load_drops(project, database_url)
    write_shifts(landing / "t2.parquet", [3, 4, 5], ["08:30", "soon", "17:30"])
    (landing / "o2.csv").write_text("id\n2\n")
    return landing, project


@pytest.mark.parametrize("ahead", [False, True], ids=["file", "copied-ahead"])
def test_only_the_row_postgres_refuses_is_quarantined_and_the_other_tables_load(ahead, tmp_path, database_url,
                                                                                monkeypatch, caplog):
    # copied-ahead: both tables are COPY'd during extract (headwater.postgres.copy_ahead); the refused COPY is
    # rolled back (Postgres refuses the row only once the COPY ends) and the load file's copy sets the row aside
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1" if ahead else "1000000")
    landing, project = landing_project(tmp_path, {"events": "e*.parquet", "other": "o*.csv"})
    # 285,000 BC fits an Arrow timestamp but not a Postgres one (4713 BC at the earliest): that row is refused.
    table = pa.table({"id": [1, 2], "at": pa.array([-9_000_000_000_000_000_000, 0], pa.int64()).cast(
        pa.timestamp("us"))})
    pq.write_table(table, landing / "e1.parquet")
    (landing / "o1.csv").write_text("id\n1\n2\n")

    with caplog.at_level(logging.INFO, logger="headwater.postgres"):
        first = load_drops(project, database_url)
    committed = [r.getMessage() for r in caplog.records if "rows copied during extract" in r.getMessage()]
    assert committed == (["raw_drops.other: 2 rows copied during extract, committed by the load job"] if ahead else [])
    [refused] = first.set_aside
    assert (refused.table, refused.rows) == ("events", 1)
    assert refused.reason.startswith("Postgres refused the row for raw_drops.events column at: timestamp out of range")
    loads = {t.table: (t.read, t.loaded, t.quarantined) for t in first.tables}
    assert loads == {"events": (2, 1, 1), "other": (2, 2, 0)}
    assert [row[:2] for row in quarantined(database_url, "events")] == [("e1.parquet:1", "load")]
    assert query(database_url, "select id, at from raw_drops.events") == [(2, query(
        database_url, "select timestamptz '1970-01-01 00:00:00+00'")[0][0])]
    assert query(database_url, "select count(*) from raw_drops.other") == [(2,)]

    (landing / "o2.csv").write_text("id\n3\n")  # the next run is not held back by the refused row
    second = load_drops(project, database_url)
    assert (second.set_aside, {t.table: t.loaded for t in second.tables}) == ([], {"other": 1})
    assert query(database_url, "select count(*) from raw_drops.other") == [(3,)]


@pytest.mark.parametrize("options", [{}, {"primary_key": "id"}], ids=["append", "merge"])
def test_a_file_whose_column_changed_type_sets_aside_only_the_values_that_do_not_fit(tmp_path, database_url,
                                                                                     options):
    landing, project = landing_project(tmp_path, SHIFTS)
    if options:
        config = tmp_path / "headwater.yaml"
        config.write_text(config.read_text() + f"    tables: {json.dumps({'shifts': options, 'other': {}})}\n")
        project = load_project(config, connector_registry())
    write_shifts(landing / "t1.parquet", [1, 2], times("09:00", "10:00"))
    (landing / "o1.csv").write_text("id\n1\n")
    load_drops(project, database_url)

    # Earlier files held times; this one holds text, one value of which is no time at all.
    write_shifts(landing / "t2.parquet", [3, 4, 5], ["08:30", "soon", "17:30"])
    write_shifts(landing / "t3.parquet", [6], times("12:00"))
    (landing / "o2.csv").write_text("id\n2\n")
    second = load_drops(project, database_url)
    loads = {t.table: (t.read, t.loaded, t.quarantined) for t in second.tables}
    assert loads == {"shifts": (4, 3, 1), "other": (1, 1, 0)}
    [(location, rule, reason, record)] = quarantined(database_url)
    assert (location, rule) == ("t2.parquet:2", "load")
    assert reason.startswith("Postgres refused the row for raw_drops")
    assert reason.endswith('invalid input syntax for type time: "soon"')
    assert json.loads(record)["opens"] == "soon"
    assert query(database_url, "select id, opens from raw_drops.shifts order by id") == [
        (1, time(9)), (2, time(10)), (3, time(8, 30)), (5, time(17, 30)), (6, time(12))]

    (landing / "o3.csv").write_text("id\n3\n")  # the next run is clean: nothing pending, nothing set aside again
    third = load_drops(project, database_url)
    assert (third.set_aside, {t.table: t.loaded for t in third.tables if t.read}) == ([], {"other": 1})
    assert nothing_pending(project, database_url)
    assert len(quarantined(database_url)) == 1


def test_a_file_none_of_whose_rows_fit_is_set_aside_by_name_and_says_what_to_do(tmp_path, database_url):
    landing, project = landing_project(tmp_path, SHIFTS)
    write_shifts(landing / "t1.parquet", [1], times("09:00"))
    load_drops(project, database_url)

    write_shifts(landing / "t2.parquet", [2, 3], pa.array([7, 8], pa.int64()))  # numbers where times were
    write_shifts(landing / "t3.parquet", [4], times("11:00"))
    result = load_drops(project, database_url)
    [refused] = result.set_aside
    assert (refused.table, refused.rows, refused.files) == ("shifts", 2, ["t2.parquet"])
    assert refused.reason == ('Postgres refuses every row of t2.parquet for raw_drops.shifts (the first: invalid '
                              f'input syntax for type time: "7"): {FIX}')
    rows = quarantined(database_url)
    assert [row[0] for row in rows] == ["t2.parquet:1", "t2.parquet:2"]
    assert rows[1][2].startswith(
        'Postgres refuses every row of t2.parquet for raw_drops.shifts (this row: invalid input syntax for type '
        'time: "8"), so the file\'s rows are set aside: correct the file')
    assert query(database_url, "select id from raw_drops.shifts order by id") == [(1,), (4,)]
    assert nothing_pending(project, database_url)


def test_a_connection_lost_while_copying_is_tried_again_and_nothing_is_quarantined(tmp_path, database_url,
                                                                                  monkeypatch):
    landing, project = landing_project(tmp_path, SHIFTS)
    write_shifts(landing / "t1.parquet", [1, 2], times("09:00", "10:00"))
    dropped = drop_connections(monkeypatch, database_url, "shifts", times=1)
    result = load_drops(project, database_url)
    assert len(dropped) == 1
    assert (result.set_aside, [(t.table, t.loaded, t.quarantined) for t in result.tables]) == (
        [], [("shifts", 2, 0), ("other", 0, 0)])  # `other` has no file yet
    assert query(database_url, "select count(*) from raw_drops.shifts") == [(2,)]
    assert query(database_url, "select count(*) from information_schema.tables "
                               "where table_name = 'shifts__quarantine'") == [(0,)]


def test_a_pending_load_with_a_refused_row_loads_once_its_file_is_deleted(tmp_path, database_url, monkeypatch):
    landing, project = loaded_then_a_bad_file(tmp_path, database_url)
    dropped = drop_connections(monkeypatch, database_url, "shifts")  # every try of this run loses its connection
    failed = try_load(project, database_url)
    assert not failed.ok and "Postgres failed while copying into raw_drops.shifts" in failed.error
    assert len(dropped) == 5  # dlt tried the job five times, then left the package pending
    assert not nothing_pending(project, database_url)
    assert query(database_url, "select count(*) from information_schema.tables "
                               "where table_name = 'shifts__quarantine'") == [(0,)]

    dropped.append(None)  # the database is reachable again, and the bad file has been deleted meanwhile
    (landing / "t2.parquet").unlink()
    recovered = load_drops(project, database_url)
    [refused] = recovered.set_aside
    assert (refused.table, refused.rows) == ("shifts", 1)
    assert [row[0] for row in quarantined(database_url)] == ["t2.parquet:2"]
    assert query(database_url, "select id from raw_drops.shifts order by id") == [(1,), (2,), (3,), (5,)]
    assert query(database_url, "select id from raw_drops.other order by id") == [(1,), (2,)]

    clean = load_drops(project, database_url)
    assert clean.set_aside == [] and all(t.loaded == 0 for t in clean.tables)
    assert nothing_pending(project, database_url)
    assert query(database_url, "select id from raw_drops.other order by id") == [(1,), (2,)]


def test_full_refresh_of_a_table_whose_pending_load_never_loads_gets_it_out(tmp_path, database_url, monkeypatch):
    landing, project = loaded_then_a_bad_file(tmp_path, database_url)
    drop_connections(monkeypatch, database_url, "shifts", one_load=True)  # this load's shifts job never loads
    for _ in range(2):  # run after run, the same pending load fails
        assert "Postgres failed while copying into raw_drops.shifts" in try_load(project, database_url).error

    refresh = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                          PostgresAddress.from_url(database_url), plan_reload(project, ["drops.shifts"]))
    assert refresh.ok, refresh.error
    assert {t.table: (t.loaded, t.quarantined) for t in refresh.tables} == {"shifts": (4, 1)}
    assert query(database_url, "select id from raw_drops.shifts order by id") == [(1,), (2,), (3,), (5,)]
    assert [row[0] for row in quarantined(database_url)] == ["t2.parquet:2"]
    assert query(database_url, "select id from raw_drops.other order by id") == [(1,), (2,)]
    assert nothing_pending(project, database_url)
    assert load_drops(project, database_url).set_aside == []


def test_a_file_whose_column_no_value_can_fit_is_set_aside_whole(tmp_path, database_url):
    landing, project = landing_project(tmp_path, {"shifts": {"glob": "t*.parquet", "columns": {"crew": "bigint"}}})
    pq.write_table(pa.table({"id": [1], "crew": [4]}), landing / "t1.parquet")
    load_drops(project, database_url)

    # Structs where the table declares a number: no row of the file can load, the missing one neither.
    pq.write_table(pa.table({"id": [2, 3], "crew": pa.array([{"size": 5}, None])}), landing / "t2.parquet")
    pq.write_table(pa.table({"id": [4], "crew": [6]}), landing / "t3.parquet")
    result = load_drops(project, database_url)
    [refused] = result.set_aside
    assert (refused.rows, refused.files) == (2, ["t2.parquet"])
    assert refused.reason == f"Postgres refuses every row of t2.parquet for raw_drops.shifts ({TYPE_MISFIT}): {FIX}"
    [(first, _, reason, _), (second, _, _, _)] = quarantined(database_url)
    assert (first, second) == ("t2.parquet:1", "t2.parquet:2")
    assert ("column 'crew' of raw_drops.shifts is int64 but this load holds struct<size: int64> values that do not "
            "fit it: Unsupported cast from struct<size: int64> to int64") in reason
    assert query(database_url, "select id, crew from raw_drops.shifts order by id") == [(1, 4), (4, 6)]


def test_the_nested_rows_of_a_refused_row_go_with_it(tmp_path, database_url):
    result = load_feed(tmp_path, database_url)
    assert result.ok, result.error
    [refused] = result.set_aside
    assert (refused.table, refused.rows, refused.dropped_tables) == ("feed", 1, ["feed__tags"])
    assert "invalid byte sequence" in refused.reason
    assert query(database_url, "select id, name from raw_api.feed order by id") == [(1, "one"), (3, "three")]
    assert query(database_url, "select t.tag from raw_api.feed__tags t join raw_api.feed f "
                               "on f._dlt_id = t._dlt_parent_id order by t.tag") == [("a",), ("d",)]
    assert query(database_url, "select count(*) from raw_api.feed__tags") == [(2,)]
    assert query(database_url, "select location from raw_api.feed__quarantine") == [("feed",)]


@pytest.mark.parametrize("kill_point", ["set_aside_quarantined", "set_aside_rewritten"])
def test_a_load_killed_while_setting_refused_rows_aside_sets_each_row_aside_once(kill_point, tmp_path, database_url):
    landing, project = loaded_then_a_bad_file(tmp_path, database_url)
    child = subprocess.run(
        [sys.executable, "-m", "tests.load.crash_child", str(tmp_path / "headwater.yaml"), database_url, "drops",
         kill_point], cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert child.returncode == -9, child.stdout[-2000:] + child.stderr[-3000:]

    load_drops(project, database_url)
    assert [row[0] for row in quarantined(database_url)] == ["t2.parquet:2"]
    assert query(database_url, "select count(*) from raw_drops.shifts__quarantine") == [(1,)]
    assert query(database_url, "select id from raw_drops.shifts order by id") == [(1,), (2,), (3,), (5,)]
    assert query(database_url, "select id from raw_drops.other order by id") == [(1,), (2,)]
    assert nothing_pending(project, database_url)

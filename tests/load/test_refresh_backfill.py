"""--full-refresh SOURCE[.TABLE] and the --since/--until backfill window, and their errors."""

from __future__ import annotations

import inspect

import pytest
from rich.console import Console

from headwater.load.reload import ReloadError, not_backfilled, plan_reload
from headwater.ops.summary import RunSummary, print_summary
from tests.conftest import query
from tests.load.helpers import execute, fingerprint, load, read, registry, write_project

TABLES = {"src": """
    items: {primary_key: id, cursor: updated_at, write_disposition: merge}
    logs: {cursor: id, write_disposition: append}
"""}


@pytest.fixture
def project(tmp_path, source_url, database_url):
    """Items updated 2024-01-01 .. 2024-01-10 (one a day) and ten log lines, loaded once."""
    execute(source_url, """
        create table items (id int primary key, name text, updated_at timestamptz);
        insert into items select i, 'v1', timestamptz '2024-01-01T00:00Z' + (i - 1) * interval '1 day'
          from generate_series(1, 10) i;
        create table logs (id int primary key, line text);
        insert into logs select i, 'line ' || i from generate_series(1, 10) i;
    """)
    path = write_project(tmp_path / "project", TABLES)
    load(path, database_url, "src")
    return path


def items(url: str) -> list[tuple]:
    return query(url, "select id, name from raw_src.items order by id")


def test_full_refresh_of_a_table_reloads_only_that_table(project, source_url, database_url):
    # Changes an incremental run cannot see: an edit without a cursor bump, and a row lost downstream.
    execute(source_url, "update items set name = 'silent' where id = 2")
    execute(database_url, "delete from raw_src.items where id = 5")
    logs_before = query(database_url, "select id, _dlt_load_id from raw_src.logs order by id")

    result = load(project, database_url, "src", plan_reload(read(project), ["src.items"]))
    assert {(t.table, t.rows) for t in result.tables} == {("items", 10), ("logs", 0)}
    assert fingerprint(database_url, "raw_src.items", "id, name, updated_at", "id") == fingerprint(
        source_url, "items", "id, name, updated_at", "id")
    assert query(database_url, "select id, _dlt_load_id from raw_src.logs order by id") == logs_before

    # The refreshed cursor is back at the newest row: the next run reads nothing new.
    again = load(project, database_url, "src")
    assert {(t.table, t.rows) for t in again.tables} == {("items", 0), ("logs", 0)}


def test_full_refresh_keeps_views_built_on_the_raw_tables_working(project, source_url, database_url):
    # dbt's staging models are views on raw tables: a refresh must not need to drop them.
    execute(database_url, "create schema staging; create view staging.items as select id, name from raw_src.items")
    execute(source_url, "update items set name = 'v2' where id <= 4")
    for refreshed in (["src.items"], ["src"]):
        result = load(project, database_url, "src", plan_reload(read(project), refreshed))
        assert result.ok, result.error
        assert {(t.table, t.rows) for t in result.tables} >= {("items", 10)}
        assert query(database_url, "select count(*), count(*) filter (where name = 'v2') from staging.items") == [
            (10, 4)]
    assert load(project, database_url, "src").rows == 0  # the cursor was set again by the reload


def test_full_refresh_of_a_source_reloads_every_table_without_duplicates(project, source_url, database_url):
    execute(source_url, "insert into logs values (11, 'line 11')")
    load(project, database_url, "src", plan_reload(read(project), ["src"]))
    assert fingerprint(database_url, "raw_src.logs", "id, line", "id") == fingerprint(source_url, "logs", "id, line",
                                                                                      "id")
    assert query(database_url, "select count(*) from raw_src.items") == [(10,)]
    assert load(project, database_url, "src").rows == 0


def test_backfill_rereads_the_window_and_keeps_the_regular_cursor(project, source_url, database_url):
    execute(source_url, "update items set name = 'fixed'")  # corrected at the source without a cursor bump
    plan = plan_reload(read(project), since="2024-01-03", until="2024-01-06")

    result = load(project, database_url, "src", plan)
    assert {(t.table, t.rows) for t in result.tables} == {("items", 3), ("logs", 0)}
    assert {t.table: t.backfill.backfilled for t in result.tables} == {"items": True, "logs": False}
    assert items(database_url) == [(i, "fixed" if 3 <= i <= 5 else "v1") for i in range(1, 11)]  # [since, until)

    # The regular cursor did not move back: the next run reads only the new row.
    execute(source_url, "insert into items values (11, 'new', '2024-01-11T00:00Z')")
    assert [(t.table, t.rows) for t in load(project, database_url, "src").tables] == [("items", 1), ("logs", 0)]
    assert query(database_url, "select count(*) from raw_src.logs") == [(10,)]


def test_backfill_names_every_table_it_did_not_backfill_and_why(project, source_url, database_url):
    # notes has no cursor; the source `whole` lists no tables, so it reads every table without one.
    execute(source_url, """
        create table notes (id int primary key, body text);
        insert into notes select i, 'note ' || i from generate_series(1, 4) i;
    """)
    path = write_project(project.parent, {"src": TABLES["src"] + "    notes: {primary_key: id}\n", "whole": ""})
    plan = plan_reload(read(path), since="2024-01-03", until="2024-01-06")

    # Before the run, for the tables under `tables:`.
    assert not_backfilled(read(path), plan, registry()) == [
        "src.logs: not backfilled: write_disposition append would load the window's rows a second time; "
        "loaded as usual; reload it with --full-refresh src.logs",
        "src.notes: not backfilled: no cursor (the table has no `cursor:`; --since/--until need one); "
        "loaded as usual",
    ]

    loads = [load(path, database_url, name, plan) for name in ("src", "whole")]
    # "Loaded as usual": logs from its regular cursor (nothing new), notes and the cursor-less source in full.
    assert {(t.table, t.rows) for t in loads[0].tables} == {("items", 3), ("logs", 0), ("notes", 4)}
    assert {(t.table, t.rows) for t in loads[1].tables} == {("items", 10), ("logs", 10), ("notes", 4)}
    assert query(database_url, "select count(*) from raw_src.logs") == [(10,)]  # not appended twice

    console = Console(record=True, width=400)
    print_summary(RunSummary(loads=loads), console)
    lines = [line.strip() for line in console.export_text().splitlines() if "backfilled" in line.lower()]
    assert lines == [  # in the order of the summary's table
        "Backfilled raw_src.items: updated_at from 2024-01-03T00:00:00+00:00 to 2024-01-06T00:00:00+00:00, 3 rows",
        "Not backfilled raw_src.notes: no cursor (the table has no `cursor:`; --since/--until need one); "
        "loaded as usual",
        "Not backfilled raw_src.logs: write_disposition append would load the window's rows a second time; "
        "loaded as usual; reload it with --full-refresh src.logs",
        *(f"Not backfilled raw_whole.{table}: no cursor (the table is not under `tables:` with a `cursor:`; "
          "--since/--until need one); loaded as usual" for table in ("items", "logs", "notes")),
    ]


def test_a_table_being_fully_refreshed_is_not_backfilled(project, source_url, database_url):
    plan = plan_reload(read(project), ["src.items"], since="2024-01-03", until="2024-01-06")
    result = load(project, database_url, "src", plan)
    outcomes = {t.table: (t.rows, t.backfill.detail) for t in result.tables}
    assert outcomes["items"] == (10, "--full-refresh reloads it whole instead")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"full_refresh": ["nope"]}, "no enabled source 'nope'; allowed: src"),
    ({"full_refresh": ["src.itemz"]}, "has no table 'itemz'; did you mean 'items'\\? allowed: src.items, src.logs"),
    ({"since": "yesterday"}, "neither an integer nor an ISO date"),
    ({"since": "2024-02-01", "until": "2024-01-01"}, "must be before"),
    ({"since": "5"}, "needs --until"),
    ({"since": "5", "until": "2024-01-01"}, "both be dates/timestamps or both be numbers"),
])
def test_reload_requests_the_project_cannot_honour_are_refused(tmp_path, kwargs, message, monkeypatch):
    monkeypatch.setenv("HW_TEST_SOURCE_URL", "postgresql://unused")
    with pytest.raises(ReloadError, match=message):
        plan_reload(read(write_project(tmp_path, TABLES)), **kwargs)


def fake_flow(function):
    """Stands in for the daily flow: main() reads its description for --help."""
    function.description = "daily"
    return function


def test_cli_options_reach_the_flow_and_errors_stop_it_before_it_runs(tmp_path, monkeypatch, capsys):
    import flows.daily
    from headwater import cli

    monkeypatch.setenv("HW_TEST_SOURCE_URL", "postgresql://unused")
    # The stand-in flow needs no Prefect server: none is started for the project (and left running).
    monkeypatch.setenv("HEADWATER_PREFECT_SERVER", "temporary")
    path = write_project(tmp_path, TABLES)
    monkeypatch.setattr(flows.daily, "read_project", lambda: read(path))
    real_flow = flows.daily.daily
    monkeypatch.setattr(flows.daily, "daily", fake_flow(lambda **kwargs: pytest.fail(f"the flow ran with {kwargs}")))
    assert flows.daily.main(["--full-refresh", "src.nope"]) == 2
    assert "allowed: src.items, src.logs" in capsys.readouterr().err

    ran = {}

    class Completed:
        def is_completed(self):
            return True

    monkeypatch.setattr(flows.daily, "daily", fake_flow(lambda **kwargs: ran.update(kwargs) or Completed()))
    monkeypatch.setattr("headwater.local.stack.use_local_stack", lambda: None)
    assert cli.main(["run", "--full-refresh", "src.items", "--full-refresh", "src", "--since", "2024-01-01"]) == 0
    assert ran == {"advance_example": 0, "full_refresh": ["src.items", "src"], "since": "2024-01-01",
                   "return_state": True}

    parameters = inspect.signature(real_flow.fn).parameters  # the real flow's typed parameters
    assert {name: (str(p.annotation), p.default) for name, p in parameters.items() if name != "advance_example"} == {
        "full_refresh": ("list[str] | None", None), "since": ("str | None", None), "until": ("str | None", None),
        "full_build": ("bool", False),
    }

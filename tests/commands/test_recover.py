"""`headwater recover SOURCE [--discard-pending]`: what a failed run left pending, loaded or discarded."""

from __future__ import annotations

import io
import re
import textwrap
from datetime import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.cli import main
from headwater.load.pipeline import load_source, open_pipeline
from headwater.ops.audit import read_records
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import fresh_database, query
from tests.load.helpers import SOURCE_URL_VARIABLE, drop_connections, execute, write_project


def run(capsys, *argv: str, answer: str | None = None, monkeypatch=None) -> tuple[int, list[str]]:
    """Exit code and stdout lines, trailing blanks removed (rich pads tables), load ids made stable; a table's
    rows are read with ``table_rows``."""
    if answer is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, [re.sub(r"\d{10}\.\d+", "LOAD_ID", line.rstrip()) for line in out.splitlines()]


def table_rows(lines: list[str]) -> list[list[str]]:
    """The cells of the table printed in ``lines``, a row's wrapped lines joined with spaces."""
    rows: list[list[list[str]]] = []
    body = lines[lines.index(next(line for line in lines if line.startswith("┡"))) + 1:]
    for line in body[:body.index(next(line for line in body if line.startswith("└")))]:
        parts = [part.strip() for part in line.strip("│").split("│")]
        if parts[0]:
            rows.append([[] for _ in parts])
        for cell, part in zip(rows[-1], parts, strict=True):
            if part:
                cell.append(part)
    return [[" ".join(" ".join(cell).split()) for cell in row] for row in rows]


def after_table(lines: list[str]) -> list[str]:
    return lines[lines.index(next(line for line in lines if line.startswith("└"))) + 1:]


@pytest.fixture
def failed(tmp_path, database_url, monkeypatch):
    """A landing-file source whose last run could not load `shifts`: Postgres dropped each copy's connection.

    Its load is pending: `shifts` (three rows, one of them "soon" where times were), and `other`, whose
    one row the load had already written.
    """
    landing = tmp_path / "landing"
    landing.mkdir()
    config = tmp_path / "headwater.yaml"
    config.write_text(textwrap.dedent(f"""\
        sources:
          drops:
            connector: filesystem
            settings: {{bucket_url: "{landing}", files: {{shifts: "t*.parquet", other: "o*.csv"}}}}
        """))
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "100")
    project = load_project(config, connector_registry())

    def load():
        return load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                           PostgresAddress.from_url(database_url))

    times = pa.array([time(9), time(10)], pa.time64("us"))
    pq.write_table(pa.table({"id": [1, 2], "opens": times}), landing / "t1.parquet")
    (landing / "o1.csv").write_text("id\n1\n")
    assert load().ok
    pq.write_table(pa.table({"id": [3, 4, 5], "opens": ["08:30", "soon", "17:30"]}), landing / "t2.parquet")
    (landing / "o2.csv").write_text("id\n2\n")
    dropped = drop_connections(monkeypatch, database_url, "shifts")
    assert not load().ok
    dropped.append(None)  # Postgres is reachable again
    assert query(database_url, "select id from raw_drops.other order by id") == [(1,), (2,)]
    return load


HEADER = "┃ table ┃ load ids ┃ jobs ┃ rows ┃ since (UTC) ┃ last failure ┃"
LOST = ("Postgres failed while copying into raw_drops.shifts, not because of the rows (the load is kept and tried "
        "again): terminating connection due to administrator command")


def assert_pending_shown(lines: list[str]) -> None:
    assert lines[0] == "Pending for drops (raw_drops)"
    assert " ".join(lines[2].split()) == HEADER
    rows = table_rows(lines)
    for row in rows:  # when: the time the load was extracted, a moment ago
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row.pop(4))
    assert rows == [["other", "LOAD_ID", "1 loaded", "0", "-"], ["shifts", "LOAD_ID", "1 to load", "3", LOST]]


def test_recover_shows_what_is_pending_and_loads_it_setting_refused_rows_aside(failed, database_url, capsys):
    code, lines = run(capsys, "recover", "drops")
    assert code == 0
    assert_pending_shown(lines)
    assert after_table(lines) == [
        'drops.shifts: 2 rows loaded, 1 quarantined (Postgres refused them: Postgres refused the row for '
        'raw_drops.shifts: invalid input syntax for type time: "soon").',
        "Nothing is pending for drops now; the next run reads the source from where these loads left it.",
    ]
    assert query(database_url, "select id from raw_drops.shifts order by id") == [(1,), (2,), (3,), (5,)]
    assert query(database_url, "select location from raw_drops.shifts__quarantine") == [("t2.parquet:2",)]
    assert query(database_url, "select id from raw_drops.other order by id") == [(1,), (2,)]
    [recovered] = read_records(PostgresAddress.from_url(database_url), kind="recover")  # in the audit trail
    assert re.fullmatch(r"\d{10}\.\d+", recovered.details.pop("load_ids")[0])
    assert recovered.details == {"source": "drops", "pending_rows": {"other": 0, "shifts": 3}, "outcome": "loaded",
                                 "rows_loaded": {"shifts": 2}, "quarantined": {"shifts": 1}}

    assert run(capsys, "recover", "drops") == (
        0, ["Nothing is pending for drops: its runs loaded everything they read."])
    assert failed().set_aside == []  # and the next run is a normal one
    assert query(database_url, "select count(*) from raw_drops.shifts") == [(4,)]


def test_discard_pending_asks_first_and_the_next_run_reads_the_rows_again(failed, database_url, capsys,
                                                                         monkeypatch):
    code, lines = run(capsys, "recover", "drops", "--discard-pending", answer="n\n", monkeypatch=monkeypatch)
    assert_pending_shown(lines)
    assert (code, after_table(lines)) == (1, ["Discard the pending loads of drops (3 rows not loaded)? [y/N] "
                                                "Nothing was discarded."])
    code, lines = run(capsys, "recover", "drops", "--discard-pending", answer="y\n", monkeypatch=monkeypatch)
    assert code == 0
    since = table_rows(lines)[1][4]
    assert after_table(lines) == [
        "Discard the pending loads of drops (3 rows not loaded)? [y/N] drops.shifts: discarded 3 rows in 1 job of "
        "load LOAD_ID, pending since " + since + " UTC.",
        "drops.other: deleted the 1 row these loads had already written to raw_drops.other, so that reading them "
        "again adds them once.",
        "These rows are read again by the next run: the cursors and the list of files read that the discarded loads "
        "carried were to commit with them, and are discarded too. Rows no longer at the source (a landing file "
        "deleted since, say) are not read again.",
    ]
    assert query(database_url, "select id from raw_drops.shifts order by id") == [(1,), (2,)]
    assert query(database_url, "select id from raw_drops.other order by id") == [(1,)]
    assert run(capsys, "recover", "drops")[1] == ["Nothing is pending for drops: its runs loaded everything they read."]
    # The discard is in the audit trail; the one declined is not: it changed nothing.
    [discarded] = read_records(PostgresAddress.from_url(database_url), kind="recover")
    assert {key: discarded.details[key] for key in ("source", "outcome", "rows_deleted", "cursors_restored")} == {
        "source": "drops", "outcome": "discarded", "rows_deleted": {"other": 1}, "cursors_restored": True}

    again = failed()  # the files of the discarded load are read again: each row once
    assert again.ok and {t.table: (t.loaded, t.quarantined) for t in again.tables} == {
        "shifts": (2, 1), "other": (1, 0)}
    assert query(database_url, "select id from raw_drops.shifts order by id") == [(1,), (2,), (3,), (5,)]
    assert query(database_url, "select id from raw_drops.other order by id") == [(1,), (2,)]


def test_a_discarded_load_of_an_incremental_table_is_read_again_from_its_cursor(tmp_path, database_url, capsys,
                                                                                monkeypatch):
    with fresh_database("hw_src") as source_url:
        monkeypatch.setenv(SOURCE_URL_VARIABLE, source_url)
        monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
        execute(source_url, "create table events (id int primary key, kind text); "
                            "insert into events select i, 'kind-' || i from generate_series(1, 3) i")
        config = write_project(tmp_path / "project", {"src": "events: {cursor: id, write_disposition: append}"})
        monkeypatch.setenv("HEADWATER_CONFIG", str(config))
        project = load_project(config, connector_registry())

        def load():
            return load_source(project, project.source("src"), connector_registry().get("sql_database"),
                               PostgresAddress.from_url(database_url))

        assert load().ok
        execute(source_url, "insert into events select i, 'kind-' || i from generate_series(4, 6) i")
        dropped = drop_connections(monkeypatch, database_url, "events")
        assert not load().ok  # the cursor moved to 6 in the load that never committed
        dropped.append(None)
        code, lines = run(capsys, "recover", "src", "--discard-pending", "--yes")
        assert code == 0 and f"src.events: discarded 3 rows in 1 job of load LOAD_ID, pending since " \
            f"{table_rows(lines)[0][4]} UTC." in lines
        assert query(database_url, "select max(id) from raw_src.events") == [(3,)]

        again = load()
        assert again.ok and [(t.table, t.loaded) for t in again.tables] == [("events", 3)]
        assert query(database_url, "select id from raw_src.events order by id") == [(i,) for i in range(1, 7)]


def test_recover_names_the_sources_when_the_source_is_unknown(failed, capsys):
    assert main(["recover", "nope"]) == 2
    assert capsys.readouterr().err == "error: no source 'nope'; sources: drops\n"


def test_a_discard_interrupted_after_it_began_is_finished_by_the_next_run(failed, database_url, tmp_path):
    project = load_project(tmp_path / "headwater.yaml", connector_registry())
    pipeline = open_pipeline(project, project.source("drops"), PostgresAddress.from_url(database_url))
    [load_id] = pipeline.list_normalized_load_packages()
    # Killed right after flagging the load as discarded: nothing else done yet (raw_drops.other holds its row).
    pipeline._get_load_storage().normalized_packages.set_abort_flag(load_id)

    again = failed()
    assert again.ok and {t.table: (t.loaded, t.quarantined) for t in again.tables} == {
        "shifts": (2, 1), "other": (1, 0)}
    assert query(database_url, "select id from raw_drops.other order by id") == [(1,), (2,)]
    assert query(database_url, "select id from raw_drops.shifts order by id") == [(1,), (2,), (3,), (5,)]


def test_recover_waits_for_a_run_loading_the_source_and_changes_nothing_past_lock_wait(failed, database_url,
                                                                                        capsys, tmp_path):
    from headwater.load.source_lock import source_lock

    config = tmp_path / "headwater.yaml"
    config.write_text(config.read_text() + "run: {lock_wait: 1s}\n")

    with source_lock(PostgresAddress.from_url(database_url), "drops", wait_seconds=0, purpose="load pid 7 on box"):
        code = main(["recover", "drops", "--discard-pending", "--yes"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[-1].startswith("error: drops is busy: source drops is held by headwater load pid 7 on box "
                                           "drops; gave up after waiting")
    assert run(capsys, "recover", "drops")[0] == 0  # the load was still pending, untouched; now it loads
    assert query(database_url, "select id from raw_drops.shifts order by id") == [(1,), (2,), (3,), (5,)]

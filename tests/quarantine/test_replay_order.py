"""A replay never takes a table back in time: a quarantined row whose key a later run loaded in a newer version is
not applied (it is marked `superseded`), while rows whose key was not updated since are applied as before."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from headwater.cli import main
from headwater.load.pipeline import load_source
from headwater.load.replay import replay
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from headwater.quarantine.selection import Selection
from tests.conftest import query
from tests.load.helpers import execute, load, read, write_project


def source_tables(limit: int, cursor: bool = True) -> dict[str, str]:
    rules = f"rules: [{{range: {{qty: {{max: {limit}}}}}}}]"
    incremental = ", cursor: updated_at" if cursor else ""
    return {
        "shop": f"items: {{primary_key: id{incremental}, {rules}}}",
        "history": f"items: {{primary_key: id, cursor: updated_at, write_disposition: scd2, {rules}}}",
    }


def statuses(database_url: str, schema: str) -> list[tuple]:
    return query(database_url, f"select (record::json->>'id')::int, (record::json->>'qty')::int, status, attempts, "
                               f"replayed_at is not null from {schema}.items__quarantine order by 1, 2")


def test_a_replayed_row_loses_to_a_newer_version_by_cursor(tmp_path, source_url, database_url):
    execute(source_url, "create table items (id int primary key, qty int, note text, updated_at timestamptz)")
    execute(source_url, "insert into items select i, case when i <= 6 then 500 else 5 end, 'first', "
                        "'2026-11-01T00:00Z' from generate_series(1, 9) i")
    address = PostgresAddress.from_url(database_url)
    path = write_project(tmp_path, source_tables(100))
    load(path, database_url, "shop")
    load(path, database_url, "history")
    assert query(database_url, "select id from raw_shop.items order by id") == [(7,), (8,), (9,)]

    # A later run loads 1-3 in a newer version, and quarantines a newer version of 9.
    execute(source_url, "update items set qty = 7, note = 'second', updated_at = '2026-11-02T00:00Z' where id <= 3")
    execute(source_url, "update items set qty = 900, note = 'second', updated_at = '2026-11-02T00:00Z' where id = 9")
    load(path, database_url, "shop")
    history = load(path, database_url, "history")
    assert [(t.loaded, t.quarantined) for t in history.tables] == [(3, 1)]
    newer = [(1, 7, "second"), (2, 7, "second"), (3, 7, "second")]
    assert query(database_url, "select id, qty, note from raw_shop.items order by id") == [
        *newer, (7, 5, "first"), (8, 5, "first"), (9, 5, "first")]
    current = "select id, qty, note from raw_history.items where _valid_to is null order by id"
    history_before = query(database_url, current)

    fixed = read(write_project(tmp_path, source_tables(1000)))
    [result] = replay(fixed, fixed.source("shop"), address)
    assert (result.matched, result.replayed, result.superseded, result.still_quarantined) == (7, 4, 3, 0)
    # 1-3 keep the version the later run loaded; 4-6 (not updated since) and 9 (older in the table) are applied.
    assert query(database_url, "select id, qty, note from raw_shop.items order by id") == [
        *newer, (4, 500, "first"), (5, 500, "first"), (6, 500, "first"), (7, 5, "first"), (8, 5, "first"),
        (9, 900, "second")]
    assert statuses(database_url, "raw_shop") == [
        (1, 500, "superseded", 1, True), (2, 500, "superseded", 1, True), (3, 500, "superseded", 1, True),
        (4, 500, "replayed", 1, True), (5, 500, "replayed", 1, True), (6, 500, "replayed", 1, True),
        (9, 900, "replayed", 1, True)]

    # Resolved once: a second replay finds nothing, and the table is unchanged.
    [again] = replay(fixed, fixed.source("shop"), address)
    assert (again.pending, again.replayed, again.superseded) == (0, 0, 0)
    assert query(database_url, "select count(*), sum(qty) from raw_shop.items") == [(9, 3 * 7 + 3 * 500 + 10 + 900)]

    # scd2 is not replayed: no older version can become the current one.
    [skipped] = replay(fixed, fixed.source("history"), address)
    assert skipped.skipped and "scd2" in skipped.skipped
    assert query(database_url, current) == history_before

    # Runs go on from the cursor as before.
    execute(source_url, "update items set qty = 8, updated_at = '2026-11-03T00:00Z' where id = 4")
    later = load(write_project(tmp_path, source_tables(1000)), database_url, "shop")
    assert [(t.read, t.loaded, t.quarantined) for t in later.tables] == [(1, 1, 0)]
    assert query(database_url, "select qty from raw_shop.items where id = 4") == [(8,)]


def test_without_a_cursor_the_load_that_read_each_version_decides(tmp_path, source_url, database_url):
    """A full extract each run: a version read by a later load is newer, also one loaded by an earlier replay."""
    execute(source_url, "create table items (id int primary key, qty int, note text, updated_at timestamptz)")
    execute(source_url, "insert into items select i, 500 + i, 'first', '2026-11-01T00:00Z' "
                        "from generate_series(1, 6) i")
    address = PostgresAddress.from_url(database_url)
    path = write_project(tmp_path, source_tables(100, cursor=False))
    load(path, database_url, "shop")

    # The next run reads 1 and 2 fixed at the source, 3 and 4 unchanged (quarantined again, as the same rows),
    # and 5 and 6 changed but still over the limit: each has two quarantined versions now.
    execute(source_url, "update items set qty = 7, note = 'second' where id <= 2")
    execute(source_url, "update items set qty = 600 + id, note = 'second' where id >= 5")
    load(path, database_url, "shop")
    assert query(database_url, "select id, qty from raw_shop.items order by id") == [(1, 7), (2, 7)]

    fixed = read(write_project(tmp_path, source_tables(1000, cursor=False)))
    # The older version of 6 first, on its own: it loads, since the table has no version of 6 yet.
    [older] = replay(fixed, fixed.source("shop"), address, ["items"], Selection(fields=(("qty", "506"),)))
    assert (older.replayed, older.superseded) == (1, 0)
    assert query(database_url, "select qty from raw_shop.items where id = 6") == [(506,)]

    # The rest: 1 and 2 were read again later, so their quarantined versions are older. Of 5's two versions the
    # later read wins, and 6's later read wins over the version the first replay loaded (read by the first run).
    [rest] = replay(fixed, fixed.source("shop"), address)
    assert (rest.matched, rest.replayed, rest.superseded, rest.still_quarantined) == (7, 4, 3, 0)
    assert query(database_url, "select id, qty, note from raw_shop.items order by id") == [
        (1, 7, "second"), (2, 7, "second"), (3, 503, "first"), (4, 504, "first"), (5, 605, "second"),
        (6, 606, "second")]
    assert statuses(database_url, "raw_shop") == [
        (1, 501, "superseded", 1, True), (2, 502, "superseded", 1, True), (3, 503, "replayed", 1, True),
        (4, 504, "replayed", 1, True), (5, 505, "superseded", 1, True), (5, 605, "replayed", 1, True),
        (6, 506, "replayed", 1, True), (6, 606, "replayed", 1, True)]
    # Every quarantined row knows the load that read it; a replay keeps it.
    assert query(database_url, "select count(*) from raw_shop.items__quarantine where read_load_id is null") == [(0,)]


def landing_project(tmp_path, limit: int):
    """headwater.yaml (as JSON, which YAML reads) of one landing-file table keyed on id, with qty at most `limit`."""
    landing = tmp_path / "landing"
    landing.mkdir(exist_ok=True)
    table = {"primary_key": "id", "rules": [{"range": {"qty": {"max": limit}}}]}
    source = {"connector": "filesystem", "settings": {"bucket_url": str(landing), "files": {"items": "*.csv"}},
              "tables": {"items": table}}
    config = tmp_path / "headwater.yaml"
    config.write_text(json.dumps({"sources": {"drops": source}}))
    return config, landing


def landing_file(landing, name: str, day: int, lines: str) -> None:
    path = landing / name
    path.write_text("id,qty\n" + lines)
    moment = datetime(2026, 11, day, tzinfo=timezone.utc).timestamp()
    os.utime(path, (moment, moment))


def test_rows_from_landing_files_are_ordered_by_file_time_and_line(tmp_path, database_url, monkeypatch, capsys):
    config, landing = landing_project(tmp_path, 10)
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    connector, address = connector_registry().get("filesystem"), PostgresAddress.from_url(database_url)

    def run_load():
        project = load_project(config, connector_registry())
        result = load_source(project, project.source("drops"), connector, address)
        assert result.ok, result.error
        return result

    # One load of two files: the newer file's 7 is quarantined, its 8 loads (and the older file's 8 is quarantined).
    landing_file(landing, "a.csv", 1, "1,50\n2,50\n3,50\n4,5\n7,6\n8,80\n")
    landing_file(landing, "b.csv", 2, "7,70\n8,8\n")
    run_load()
    # A later file updates 1, and has a newer version of 2 over the limit as well.
    landing_file(landing, "c.csv", 3, "1,5\n2,60\n")
    run_load()
    assert query(database_url, "select id, qty, _file_name from raw_drops.items order by id") == [
        (1, 5, "c.csv"), (4, 5, "a.csv"), (7, 6, "a.csv"), (8, 8, "b.csv")]

    landing_project(tmp_path, 100)
    code = main(["quarantine", "replay", "drops.items"])
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [
        "drops.items: 3 loaded, 3 superseded by newer versions (not loaded), 0 still quarantined"]
    assert query(database_url, "select id, qty, _file_name, _line from raw_drops.items order by id") == [
        (1, 5, "c.csv", 2),  # a.csv's 1 is older than c.csv's
        (2, 60, "c.csv", 3),  # of two quarantined versions, the newer file's
        (3, 50, "a.csv", 4),  # not updated since: applied
        (4, 5, "a.csv", 5),
        (7, 70, "b.csv", 2),  # the same load, but a newer file than the a.csv row the table held
        (8, 8, "b.csv", 3),  # the same load, and the table's row is from the newer file
    ]
    assert query(database_url, "select location, status from raw_drops.items__quarantine order by location") == [
        ("a.csv:2", "superseded"), ("a.csv:3", "superseded"), ("a.csv:4", "replayed"), ("a.csv:7", "superseded"),
        ("b.csv:2", "replayed"), ("c.csv:3", "replayed")]

    assert main(["quarantine", "list", "drops"]) == 0
    listing = capsys.readouterr().out
    assert "0 quarantined" in listing and "3 replayed" in listing and "3 superseded" in listing

"""Row rules on a database source: failing rows are quarantined with the key and cursor, replayed after a fix
of the config or, with `--set`, of the rows' values."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from io import StringIO

import pytest
from rich.console import Console

from headwater.load.pipeline import load_source
from headwater.load.replay import ReplayError, prepare_replay, replay
from headwater.ops.summary import RunSummary, print_summary
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from headwater.quarantine.selection import Selection
from tests.conftest import query

ROWS = [
    # id, email, status, quantity, updated_at
    (1, "a@example.com", "placed", 2, "2026-11-01 10:00:00"),
    (2, None, "placed", 1, "2026-11-01 11:00:00"),  # required: email
    (3, "c@example.com", "lost", 1, "2026-11-01 12:00:00"),  # allowed: status
    (4, "d@example.com", "shipped", 5000, "2026-11-01 13:00:00"),  # range: quantity
    (5, "not-an-email", "placed", 3, "2026-11-01 14:00:00"),  # pattern: email
    (6, "f@example.com", "shipped", 4, "2026-11-01 15:00:00"),
]


def make_database(path, rows):
    with sqlite3.connect(path) as connection:
        connection.execute("create table if not exists orders (id integer primary key, email text, status text, "
                           "quantity integer, updated_at timestamp)")
        connection.executemany("insert or replace into orders values (?, ?, ?, ?, ?)", rows)


def project_file(tmp_path, allowed: str):
    (tmp_path / "headwater.yaml").write_text(textwrap.dedent(f"""\
        sources:
          shop:
            connector: sql_database
            settings: {{credentials: "${{SHOP_DB_URL}}", table_names: [orders]}}
            tables:
              orders:
                primary_key: id
                cursor: updated_at
                rules:
                  - required: [email]
                  - allowed: {{status: [{allowed}]}}
                  - range: {{quantity: {{min: 1, max: 1000}}}}
                  - pattern: {{email: "^[^@]+@[^@]+$"}}
        """))
    return load_project(tmp_path / "headwater.yaml", connector_registry())


def test_rules_quarantine_database_rows_and_a_config_fix_replays_them_once(tmp_path, database_url, monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    make_database(tmp_path / "shop.db", ROWS)
    project = project_file(tmp_path, "placed, shipped")
    address = PostgresAddress.from_url(database_url)
    connector = connector_registry().get("sql_database")

    result = load_source(project, project.source("shop"), connector, address)
    assert result.ok, result.error
    assert [(t.table, t.read, t.loaded, t.quarantined) for t in result.tables] == [("orders", 6, 2, 4)]
    assert all(t.read == t.loaded + t.quarantined for t in result.tables)
    assert query(database_url, "select id from raw_shop.orders order by id") == [(1,), (6,)]
    quarantined = query(database_url, "select id, rule, location, status from raw_shop.orders__quarantine order by id")
    assert [(row[0], row[1], row[3]) for row in quarantined] == [
        (2, "required", "quarantined"), (3, "allowed", "quarantined"),
        (4, "range", "quarantined"), (5, "pattern", "quarantined"),
    ]
    # the SQLite timestamp is taken as UTC
    assert quarantined[0][2] == "orders[id=2, updated_at=2026-11-01 11:00:00+00:00]"
    reasons = dict(query(database_url, "select rule, reason from raw_shop.orders__quarantine"))
    assert "lost" in reasons["allowed"] and "5000" in reasons["range"] and "not-an-email" in reasons["pattern"]

    # The summary shows read / loaded / quarantined per table.
    output = StringIO()
    print_summary(RunSummary(loads=[result]), Console(file=output, width=160))
    assert "read / loaded / quarantined" in output.getvalue()
    assert "6 / 2 / 4" in output.getvalue()

    # The incremental cursor moved past the quarantined rows too: a second run reads nothing again.
    again = load_source(project, project.source("shop"), connector, address)
    assert [(t.read, t.loaded, t.quarantined) for t in again.tables] == [(0, 0, 0)]

    # "lost" becomes an allowed status: that row replays, the others stay with their reasons.
    fixed = project_file(tmp_path, "placed, shipped, lost")
    for attempt in range(2):
        [replayed] = replay(fixed, fixed.source("shop"), address)
        assert (replayed.replayed, replayed.still_quarantined) == ((1, 3) if attempt == 0 else (0, 3))
        assert query(database_url, "select id from raw_shop.orders order by id") == [(1,), (3,), (6,)]
    assert query(database_url, "select id, status, rule from raw_shop.orders__quarantine order by id") == [
        (2, "quarantined", "required"), (3, "replayed", "allowed"),
        (4, "quarantined", "range"), (5, "quarantined", "pattern"),
    ]

    # New rows keep flowing after a replay: the cursor state was left alone.
    make_database(tmp_path / "shop.db", [(7, "g@example.com", "placed", 1, "2026-11-02 09:00:00")])
    later = load_source(fixed, fixed.source("shop"), connector, address)
    assert [(t.read, t.loaded, t.quarantined) for t in later.tables] == [(1, 1, 0)]
    assert query(database_url, "select count(*), count(distinct id) from raw_shop.orders") == [(4, 4)]


def test_a_replay_sets_fields_of_picked_rows_and_an_interrupted_one_is_completed_once(tmp_path, database_url,
                                                                                        monkeypatch):
    monkeypatch.setenv("SHOP_DB_URL", f"sqlite:///{tmp_path / 'shop.db'}")
    make_database(tmp_path / "shop.db", ROWS)
    project = project_file(tmp_path, "placed, shipped")
    source = project.source("shop")
    address = PostgresAddress.from_url(database_url)
    assert load_source(project, source, connector_registry().get("sql_database"), address).ok
    location_of_3 = "orders[id=3, updated_at=2026-11-01 12:00:00+00:00]"

    # Extracted and normalized, then interrupted before the load: nothing is visible yet.
    prepared = prepare_replay(project, source, address, ["orders"], Selection(rule="pattern"),
                              {"email": "e@example.com"})
    assert [(r.pending, r.matched, r.replayed) for r in prepared.results] == [(4, 1, 1)]
    prepared.pipeline.extract(prepared.items, schema=prepared.pipeline.default_schema)
    prepared.pipeline.normalize()
    assert query(database_url, "select id from raw_shop.orders order by id") == [(1,), (6,)]

    # The next replay loads the pending package first, so the same fix finds nothing left to do.
    [again] = replay(project, source, address, ["orders"], Selection(rule="pattern"), {"email": "e@example.com"})
    assert (again.pending, again.matched, again.replayed) == (3, 0, 0)
    assert query(database_url, "select id, email from raw_shop.orders order by id") == [
        (1, "a@example.com"), (5, "e@example.com"), (6, "f@example.com")]

    # By the record's value, and by location (the key and cursor, as `show` prints it).
    [by_value] = replay(project, source, address, ["orders"], Selection(fields=(("quantity", "5000"),)),
                        {"quantity": "50"})
    [by_location] = replay(project, source, address, ["orders"], Selection(locations=(location_of_3,)),
                           {"status": "placed"})
    assert [(r.matched, r.replayed, r.still_quarantined) for r in (by_value, by_location)] == [(1, 1, 0), (1, 1, 0)]
    # A fix that breaks another rule keeps the row quarantined, with the edited record and the new reason.
    [still] = replay(project, source, address, ["orders"], Selection(rule="required"), {"email": "nobody"})
    assert (still.matched, still.replayed, still.reasons) == (1, 0, {"pattern": 1})

    assert query(database_url, "select id, email, status, quantity from raw_shop.orders order by id") == [
        (1, "a@example.com", "placed", 2), (3, "c@example.com", "placed", 1), (4, "d@example.com", "shipped", 50),
        (5, "e@example.com", "placed", 3), (6, "f@example.com", "shipped", 4)]
    rows = query(database_url, "select id, status, rule, attempts, record from raw_shop.orders__quarantine order by id")
    assert [row[:4] for row in rows] == [
        (2, "quarantined", "pattern", 1), (3, "replayed", "allowed", 1), (4, "replayed", "range", 1),
        (5, "replayed", "pattern", 1)]
    assert [json.loads(row[4])["email"] for row in rows] == ["nobody", "c@example.com", "d@example.com",
                                                             "e@example.com"]

    # A value that does not fit its column is refused before anything is written.
    with pytest.raises(ReplayError, match=r"--set quantity=many: 'many' is not a valid bigint \(column quantity of "
                                          r"shop.orders\); nothing was replayed"):
        replay(project, source, address, ["orders"], Selection(rule="pattern"), {"quantity": "many"})
    assert query(database_url, "select id, status, rule, attempts, record from raw_shop.orders__quarantine "
                               "order by id") == rows

"""`headwater quarantine list`, `show` and `replay` on a loaded project."""

from __future__ import annotations

import json
import textwrap

import pytest

from headwater.cli import main
from headwater.load.pipeline import load_source
from headwater.ops.audit import read_records
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query


@pytest.fixture
def drops(tmp_path, database_url, monkeypatch):
    """A landing-file source loaded once: two rows over the `range` limit and one line with a field too many."""
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "items.csv").write_text("id,qty,note\n1,5,ok\n2,50,big\n3,7,extra,field\n4,6,ok\n5,60,bigger\n")
    config = tmp_path / "headwater.yaml"
    config.write_text(textwrap.dedent(f"""\
        sources:
          drops:
            connector: filesystem
            settings: {{bucket_url: "{landing}", files: {{items: "*.csv"}}}}
            tables:
              items:
                primary_key: id
                rules: [{{range: {{qty: {{max: 10}}}}}}]
        """))
    monkeypatch.setenv("HEADWATER_CONFIG", str(config))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "80")
    project = load_project(config, connector_registry())
    result = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                         PostgresAddress.from_url(database_url))
    assert [(t.read, t.loaded, t.quarantined) for t in result.tables] == [(5, 2, 3)]
    return config


def run(capsys, *argv: str) -> tuple[int, list[str], str]:
    """Exit code, stdout lines (trailing blanks removed: rich pads titles) and stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, [line.rstrip() for line in captured.out.splitlines()], captured.err


def when(database_url: str, location: str) -> list[str]:
    [(at,)] = query(database_url, "select quarantined_at from raw_drops.items__quarantine where location = %s",
                    location)
    return [at.strftime("%Y-%m-%d"), at.strftime("%H:%M:%S")]


def test_list_fits_80_columns_and_replay_reports_counts(drops, database_url, capsys):
    code, lines, _ = run(capsys, "quarantine", "list")
    assert code == 0
    assert lines == [
        "Quarantined rows",
        "┏━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓",
        "┃ table       ┃ rows          ┃ by rule   ┃ latest reasons (location)          ┃",
        "┡━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩",
        "│ drops.items │ 3 quarantined │ range 2   │ qty: '50' is above the maximum 10  │",
        "│             │ 0 replayed    │ columns 1 │ (items.csv:3)                      │",
        "│             │               │           │ qty: '60' is above the maximum 10  │",
        "│             │               │           │ (items.csv:6)                      │",
        "│             │               │           │ 4 fields, the header has 3         │",
        "│             │               │           │ (items.csv:4)                      │",
        "└─────────────┴───────────────┴───────────┴────────────────────────────────────┘",
        "Rows of a table: headwater quarantine show SOURCE.TABLE",
        "Replay once fixed: headwater quarantine replay SOURCE[.TABLE]",
    ]
    assert max(len(line) for line in lines) <= 80

    # The limit is raised: the two range rows replay, the unreadable line stays.
    drops.write_text(drops.read_text().replace("max: 10", "max: 100"))
    assert run(capsys, "quarantine", "replay", "drops.items")[1] == [
        "drops.items: 2 loaded, 1 still quarantined (columns 1)"]
    assert run(capsys, "quarantine", "replay", "drops")[1] == ["drops.items: 0 loaded, 1 still quarantined (columns 1)"]
    assert query(database_url, "select id, qty from raw_drops.items order by id") == [(1, 5), (2, 50), (4, 6), (5, 60)]

    # A reason longer than 100 characters is cut in the summary (`show` prints it whole).
    code, lines, _ = run(capsys, "quarantine", "list", "drops")
    assert lines[4:9] == [
        "│ drops.items │ 1 quarantined │ columns 1 │ 4 fields, the header has 3 (still  │",
        "│             │ 2 replayed    │           │ unreadable: give its fields with   │",
        "│             │               │           │ `replay --set FIELD=VALUE`, whic…  │",
        "│             │               │           │ (items.csv:4)                      │",
        "└─────────────┴───────────────┴───────────┴────────────────────────────────────┘",
    ]
    assert max(len(line) for line in lines) <= 80

    assert run(capsys, "quarantine", "replay", "nope") == (2, [], "error: no source 'nope'; sources: drops\n")


def test_show_lists_the_rows_of_one_table_newest_first(drops, database_url, capsys):
    code, lines, _ = run(capsys, "quarantine", "show", "drops.items")
    assert code == 0
    day, time = when(database_url, "items.csv:3")
    columns_day, columns_time = when(database_url, "items.csv:4")
    # The rule's rows were quarantined after the reader set the unreadable line aside, in the same load.
    assert lines == [
        "drops.items: 3 rows quarantined, newest first",
        "┏━━━━━━━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┓",
        "┃ location    ┃ rule    ┃ reason             ┃ record             ┃ when (UTC) ┃",
        "┡━━━━━━━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━┩",
        f"│ items.csv:3 │ range   │ qty: '50' is above │ id=2, qty=50,      │ {day} │",
        f"│             │         │ the maximum 10     │ note=big           │ {time}   │",
        f"│ items.csv:6 │ range   │ qty: '60' is above │ id=5, qty=60,      │ {day} │",
        f"│             │         │ the maximum 10     │ note=bigger        │ {time}   │",
        f"│ items.csv:4 │ columns │ 4 fields, the      │ id=3, qty=7,       │ {columns_day} │",
        f"│             │         │ header has 3       │ note=extra,        │ {columns_time}   │",
        "│             │         │                    │ _raw_line=3,7,extr │            │",
        "│             │         │                    │ a,field            │            │",
        "└─────────────┴─────────┴────────────────────┴────────────────────┴────────────┘",
        "Fix a row's values and replay it:",
        "  headwater quarantine replay drops.items --location LOCATION --set FIELD=VALUE",
    ]
    assert max(len(line) for line in lines) <= 80

    assert run(capsys, "quarantine", "show", "drops.items", "--rule", "range", "--limit", "1") == (0, [
        "drops.items: 2 rows quarantined by rule range, newest first",
        "┏━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┓",
        "┃ location    ┃ rule  ┃ reason              ┃ record              ┃ when (UTC) ┃",
        "┡━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━┩",
        f"│ items.csv:3 │ range │ qty: '50' is above  │ id=2, qty=50,       │ {day} │",
        f"│             │       │ the maximum 10      │ note=big            │ {time}   │",
        "└─────────────┴───────┴─────────────────────┴─────────────────────┴────────────┘",
        "1 more not shown: --limit 2 shows them all.",
        "Fix a row's values and replay it:",
        "  headwater quarantine replay drops.items --location LOCATION --set FIELD=VALUE",
    ], "")

    assert run(capsys, "quarantine", "show", "drops.items", "--rule", "required") == (
        0, ["No row of drops.items is quarantined by rule 'required'; by rule: range 2, columns 1"], "")
    assert run(capsys, "quarantine", "show", "drops.nope") == (
        2, [], "error: no table 'nope' in drops; tables: drops.items\n")
    assert run(capsys, "quarantine", "show", "drops") == (
        2, [], "error: expected SOURCE.TABLE, got 'drops'; tables: drops.items\n")
    assert run(capsys, "quarantine", "show", "nope.items") == (2, [], "error: no source 'nope'; sources: drops\n")


def test_replay_sets_fields_of_the_rows_a_filter_picks_and_loads_them_once(drops, database_url, capsys):
    def quarantine() -> list[tuple]:
        return query(database_url, "select location, status, attempts, rule, record from raw_drops.items__quarantine "
                                   "order by location")

    before = quarantine()
    # Refused before anything is written: a value that does not fit the column, a field the table does not have,
    # a field that says where the row came from, a --set without a filter, filters on a whole source.
    refusals = [
        (("drops.items", "--where", "qty=60", "--set", "qty=lots"),
         "error: --set qty=lots: 'lots' is not a valid bigint (column qty of drops.items); nothing was replayed\n"),
        (("drops.items", "--where", "qty=60", "--set", "qyt=6"),
         "error: --set qyt=6: 'qyt' is not a field of drops.items; fields: id, qty, note\n"),
        (("drops.items", "--where", "qty=60", "--set", "_line=9"),
         "error: --set _line=9: '_line' is kept by Headwater and cannot be set; fields: id, qty, note\n"),
        (("drops.items", "--set", "qty=6"),
         "error: --set changes the rows a filter picks: add --rule, --location or --where "
         "(the rows: headwater quarantine show drops.items)\n"),
        (("drops", "--rule", "range"), "error: --rule, --location, --where and --set work on one table: "
         "give SOURCE.TABLE\n"),
    ]
    for arguments, message in refusals:
        assert run(capsys, "quarantine", "replay", *arguments) == (2, [], message)
    assert quarantine() == before

    assert run(capsys, "quarantine", "replay", "drops.items", "--where", "qty=50", "--set", "qty=9") == (0, [
        "drops.items: 1 quarantined row matches qty=50; setting qty=9 and replaying it.",
        "drops.items: 1 loaded, 0 still quarantined",
    ], "")
    # The unreadable line: giving its fields takes it as corrected.
    fix_line = ("quarantine", "replay", "drops.items", "--location", "items.csv:4", "--set", "note=extra")
    assert run(capsys, *fix_line)[1] == [
        "drops.items: 1 quarantined row matches location items.csv:4; setting note=extra and replaying it.",
        "drops.items: 1 loaded, 0 still quarantined",
    ]
    # A fix that still breaks the rule stays quarantined, with the new value and reason.
    assert run(capsys, "quarantine", "replay", "drops.items", "--rule", "range", "--set", "qty=11")[1] == [
        "drops.items: 1 quarantined row matches rule range; setting qty=11 and replaying it.",
        "drops.items: 0 loaded, 1 still quarantined (range 1)",
    ]
    # Done once: the same command finds nothing left to change.
    assert run(capsys, "quarantine", "replay", "drops.items", "--where", "qty=50", "--set", "qty=9") == (1, [], (
        "error: no quarantined row of drops.items matches qty=50; nothing was replayed. "
        "1 row is quarantined: headwater quarantine show drops.items\n"))

    assert query(database_url, "select id, qty, note, _line from raw_drops.items order by id") == [
        (1, 5, "ok", 2), (2, 9, "big", 3), (3, 7, "extra", 4), (4, 6, "ok", 5)]
    rows = quarantine()
    assert [row[:4] for row in rows] == [
        ("items.csv:3", "replayed", 1, "range"),
        ("items.csv:4", "replayed", 1, "columns"),
        ("items.csv:6", "quarantined", 1, "range"),
    ]
    records = [json.loads(row[4]) for row in rows]
    assert [{name: record[name] for name in ("id", "qty", "note")} for record in records] == [
        {"id": 2, "qty": 9, "note": "big"}, {"id": "3", "qty": "7", "note": "extra"},
        {"id": 5, "qty": 11, "note": "bigger"}]
    assert "_raw_line" not in records[1]
    assert query(database_url, "select reason from raw_drops.items__quarantine where location = 'items.csv:6'") == [
        ("qty: '11' is above the maximum 10",)]

    # Each replay that ran is in the audit trail, with the fields it filtered on and set, never their values.
    replays = read_records(PostgresAddress.from_url(database_url), kind="quarantine.replay")
    assert [(r.details["rule"], r.details["locations"], r.details["where_fields"], r.details["set_fields"],
             r.details["tables"]["items"]["replayed"], r.details["tables"]["items"]["still_quarantined"])
            for r in replays] == [(None, [], ["qty"], ["qty"], 1, 0), (None, ["items.csv:4"], [], ["note"], 1, 0),
                                  ("range", [], [], ["qty"], 0, 1)]
    assert all(r.details["source"] == "drops" and r.details["table"] == "items" for r in replays)
    recorded = json.dumps([r.details for r in replays])
    assert [value for value in ("50", "11", "extra") if value in recorded] == []


def test_replay_waits_for_a_run_loading_the_source_and_gives_up_past_lock_wait(drops, database_url, capsys):
    from headwater.load.source_lock import source_lock

    drops.write_text(drops.read_text().replace("max: 10", "max: 100") + "run: {lock_wait: 1s}\n")
    with source_lock(PostgresAddress.from_url(database_url), "drops", wait_seconds=0, purpose="load pid 42 on box"):
        code, lines, err = run(capsys, "quarantine", "replay", "drops.items")
    assert code == 1 and lines == []
    assert "waiting for source drops, held by headwater load pid 42 on box drops" in err
    assert err.splitlines()[-1] == ("error: drops is busy: source drops is held by headwater load pid 42 on box drops; "
                                   "gave up after waiting 1 s; nothing was replayed. Try again when that run ends "
                                   "(or raise run.lock_wait).")
    assert query(database_url, "select id from raw_drops.items order by id") == [(1,), (4,)]  # nothing replayed

    assert run(capsys, "quarantine", "replay", "drops.items")[1] == [  # the run has ended: the replay goes ahead
        "drops.items: 2 loaded, 1 still quarantined (columns 1)"]

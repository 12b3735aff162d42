"""A landing file with malformed lines: good rows load, the rest is quarantined by line, replay loads fixes once."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime, timezone

from headwater.load.pipeline import load_source
from headwater.load.replay import replay
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query

HEADER = "id,item,ordered_at"
GOOD = {i: f"{i},item{i},2026-11-{i:02d}T10:00:00Z" for i in range(1, 11)}
GOOD[2] = "2,crème,2026-11-02T10:00:00Z"  # UTF-8 text: the file is UTF-8, so a byte that is not is an error
LINES = [
    HEADER,
    GOOD[1],
    GOOD[2],
    "3,item3,extra,2026-11-03T10:00:00Z",  # line 4: a field too many
    GOOD[4],
    "5,item5,2026-13-45T10:00:00Z",  # line 6: not a date
    GOOD[6],
    "7,item\xff7,2026-11-07T10:00:00Z",  # line 8: not UTF-8 (written below as the raw byte 0xff)
    GOOD[8],
    GOOD[9],
    GOOD[10],
]


def utc(day: int) -> datetime:
    return datetime(2026, 11, day, 10, tzinfo=timezone.utc)


def project_in(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    content = ("\n".join(LINES) + "\n").encode("utf-8").replace("\xff".encode(), b"\xff")
    (landing / "orders.csv").write_bytes(content)
    # ordered_at is declared a timestamp: a value that is not one is quarantined instead of widening the column.
    (tmp_path / "headwater.yaml").write_text(textwrap.dedent(f"""\
        sources:
          drops:
            connector: filesystem
            settings:
              bucket_url: "{landing}"
              files: {{orders: {{glob: "*.csv", columns: {{ordered_at: timestamp}}}}}}
            tables:
              orders: {{primary_key: id}}
        """))
    return load_project(tmp_path / "headwater.yaml", connector_registry())


def test_malformed_lines_are_quarantined_by_line_and_replayed_exactly_once(tmp_path, database_url):
    project = project_in(tmp_path)
    address = PostgresAddress.from_url(database_url)
    result = load_source(project, project.source("drops"), connector_registry().get("filesystem"), address)
    assert result.ok, result.error
    [orders] = result.tables
    assert (orders.table, orders.read, orders.loaded, orders.quarantined) == ("orders", 10, 7, 3)

    assert query(database_url, "select id, item, ordered_at, _file_name, _line from raw_drops.orders order by id") == [
        (i, "crème" if i == 2 else f"item{i}", utc(i), "orders.csv", i + 1) for i in (1, 2, 4, 6, 8, 9, 10)
    ]
    quarantined = query(
        database_url,
        "select location, rule, reason, record, status, attempts from raw_drops.orders__quarantine order by location",
    )
    assert [row[:3] + row[4:] for row in quarantined] == [
        ("orders.csv:4", "columns", "4 fields, the header has 3", "quarantined", 0),
        ("orders.csv:6", "cast", "ordered_at: '2026-13-45T10:00:00Z' is not a valid timestamp", "quarantined", 0),
        ("orders.csv:8", "encoding", "not valid UTF-8 in item", "quarantined", 0),
    ]
    records = [json.loads(row[3]) for row in quarantined]
    assert records[0] == {
        "id": "3", "item": "item3", "ordered_at": "extra", "_raw_line": "3,item3,extra,2026-11-03T10:00:00Z",
        "_file_name": "orders.csv", "_line": 4,
    }
    assert records[1] == {"id": "5", "item": "item5", "ordered_at": "2026-13-45T10:00:00Z",
                          "_file_name": "orders.csv", "_line": 6}
    assert records[2]["item"] == "item\\xff7"  # the bad byte stays visible

    # Nothing fixed yet: a replay loads nothing and says why.
    [first] = replay(project, project.source("drops"), address)
    assert (first.replayed, first.still_quarantined) == (0, 3)
    assert query(database_url, "select count(*) from raw_drops.orders") == [(7,)]

    # The data is fixed in the quarantine: the corrected rows, without the unreadable line.
    with_fixes = {
        "orders.csv:4": {"id": "3", "item": "item3", "ordered_at": "2026-11-03T10:00:00Z"},
        "orders.csv:6": {"id": "5", "item": "item5", "ordered_at": "2026-11-05T10:00:00Z"},
        "orders.csv:8": {"id": "7", "item": "item7", "ordered_at": "2026-11-07T10:00:00Z"},
    }
    for location, record in with_fixes.items():
        line = int(location.rsplit(":", 1)[1])
        query_fix = {**record, "_file_name": "orders.csv", "_line": line}
        execute(database_url, "update raw_drops.orders__quarantine set record = %s where location = %s",
                json.dumps(query_fix), location)

    for attempt in range(2):  # the second replay finds nothing left to load
        [replayed] = replay(project, project.source("drops"), address)
        assert (replayed.replayed, replayed.still_quarantined) == ((3, 0) if attempt == 0 else (0, 0))
        assert query(database_url, "select count(*), count(distinct id) from raw_drops.orders") == [(10, 10)]
    assert query(database_url, "select id, item, ordered_at, _line from raw_drops.orders where id in (3, 5, 7) "
                               "order by id") == [(3, "item3", utc(3), 4), (5, "item5", utc(5), 6),
                                                  (7, "item7", utc(7), 8)]
    assert query(database_url, "select status, attempts, count(*) from raw_drops.orders__quarantine "
                               "group by 1, 2") == [("replayed", 2, 3)]


def execute(url: str, sql: str, *params) -> None:
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute(sql, params)

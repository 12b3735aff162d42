"""Text with NUL characters (MariaDB and SQLite store them, Postgres cannot): rejected to quarantine, or stripped.

Either way the load succeeds; by default the row is quarantined with a reason naming the column.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pymysql
import pytest
import sqlalchemy as sa

from tests.conftest import query
from tests.connectors.type_matrix import load, write_project

ROWS = [
    (1, "plain", '{"k": "v"}'),
    (2, "nul\x00inside", '{"k": "v"}'),
    (3, "fine", '{"k": "a\\u0000b"}'),  # the JSON escape of NUL: jsonb cannot hold it either
    (4, "also fine", '{"k": "a\\\\u0000b"}'),  # an escaped backslash before "u0000": no NUL at all
]
UPDATED = datetime(2024, 5, 1, 12, 0)


def fill_mariadb(url: str) -> None:
    parsed = sa.make_url(url)
    with pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.username, password=parsed.password or "",
                         database=parsed.database, charset="utf8mb4") as connection, connection.cursor() as cursor:
        cursor.execute("create table types (id int primary key, body text, doc json, updated_at datetime not null)")
        cursor.executemany("insert into types values (%s, %s, %s, %s)", [(*row, UPDATED) for row in ROWS])
        connection.commit()


def fill_sqlite(path) -> str:
    with sqlite3.connect(path) as connection:
        connection.execute("create table types (id integer primary key, body text, doc json, updated_at datetime)")
        connection.executemany("insert into types values (?, ?, ?, ?)",
                               [(*row, UPDATED.isoformat(" ")) for row in ROWS])
    return f"sqlite:///{path}"


@pytest.mark.parametrize("backend", [{}, {"backend": "pyarrow"}], ids=["connectorx", "pyarrow"])
def test_rows_with_nul_characters_are_quarantined_by_default_naming_the_column(
    backend, mariadb_source, database_url, tmp_path, monkeypatch
):
    fill_mariadb(mariadb_source)
    path = write_project(tmp_path, monkeypatch, mariadb_source, {"s": backend},
                         table={"primary_key": "id", "cursor": "updated_at"})

    [table] = load(path, database_url, "s").tables
    assert (table.read, table.loaded, table.quarantined) == (4, 2, 2)
    assert query(database_url, "select id, body, doc::text from raw_s.types order by id") == [
        (1, "plain", '{"k": "v"}'), (4, "also fine", '{"k": "a\\\\u0000b"}'),
    ]
    quarantined = query(database_url, "select location, rule, reason, record, status from raw_s.types__quarantine"
                                      " order by location")
    assert [row[:3] + row[4:] for row in quarantined] == [
        ("types[id=2]", "nul_character", "body: holds a NUL character (\\x00), which PostgreSQL text cannot store",
         "quarantined"),
        ("types[id=3]", "nul_character", "doc: holds a NUL character (\\x00), which PostgreSQL text cannot store",
         "quarantined"),
    ]
    assert json.loads(quarantined[0][3])["body"] == "nul\x00inside"  # the record keeps the value as it was
    # The cursor moved past the quarantined rows: a second run reads only the last row again.
    [again] = load(path, database_url, "s").tables
    assert (again.loaded, again.quarantined) == (0, 0)


def test_a_table_can_strip_nul_characters_instead(database_url, tmp_path, monkeypatch):
    url = fill_sqlite(tmp_path / "source.db")
    path = write_project(tmp_path / "project", monkeypatch, url,
                         {"s": {"nul_characters_by_table": {"types": "strip"}}})

    [table] = load(path, database_url, "s").tables
    assert (table.read, table.loaded, table.quarantined) == (4, 4, 0)
    assert query(database_url, "select id, body, doc::text, updated_at from raw_s.types order by id") == [
        (1, "plain", '{"k": "v"}', UPDATED.replace(tzinfo=timezone.utc)),
        (2, "nulinside", '{"k": "v"}', UPDATED.replace(tzinfo=timezone.utc)),
        (3, "fine", '{"k": "ab"}', UPDATED.replace(tzinfo=timezone.utc)),
        (4, "also fine", '{"k": "a\\\\u0000b"}', UPDATED.replace(tzinfo=timezone.utc)),
    ]

"""The `cast` step on text columns of every connector: database text and varchar columns (PostgreSQL, MariaDB,
SQLite; both backends), landing-file columns and an API's JSON strings land in the cast type, and a value that
does not convert is quarantined with the reason while the rest of the load goes on."""

from __future__ import annotations

import csv
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
import yaml

from headwater.load.pipeline import load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query
from tests.connectors.rest_api_server import ApiServer, Reply
from tests.connectors.type_matrix import TABLE, connect_mariadb, connect_postgres, connect_sqlite, load, write_project

CAST = {"qty": "int", "day": "date", "price": "decimal(12,2)", "at": "timestamp", "flag": "bool"}
OPTIONS = {"primary_key": "id", "steps": [{"cast": CAST}]}
COLUMNS = ("qty", "day", "price", "at", "flag")
# id, then the columns above, all as text
ROWS = [
    (1, "12", "2026-11-01", "1.50", "2026-11-01T10:00:00+02:00", "yes"),
    (2, " 7 ", "2024-02-29", "-3.25", "2026-11-02 08:30:00", "false"),
    (3, "x", "2026-11-03", "2.00", "2026-11-03 00:00:00", "true"),
    (4, "5", "2026-02-30", "2.00", "2026-11-04 00:00:00", "no"),
    (5, "5", "2026-11-05", "abc", "2026-11-05 00:00:00", "yes"),
    (6, None, None, None, None, None),
]
LANDS_AS = {"qty": "bigint", "day": "date", "price": "numeric(12,2)", "at": "timestamp with time zone",
            "flag": "boolean"}
LANDED = [
    (1, 12, date(2026, 11, 1), Decimal("1.50"), datetime(2026, 11, 1, 8, tzinfo=timezone.utc), True),
    (2, 7, date(2024, 2, 29), Decimal("-3.25"), datetime(2026, 11, 2, 8, 30, tzinfo=timezone.utc), False),
    (6, None, None, None, None, None),
]
QUARANTINED = [
    ("3", "cast", "qty: 'x' is not an int"),
    ("4", "cast", "day: '2026-02-30' is not a date"),
    ("5", "cast", "price: 'abc' is not a decimal(12,2)"),
]


def assert_cast_landed(database_url: str, schema: str) -> None:
    types = dict(query(database_url, "select attname, format_type(atttypid, atttypmod) from pg_attribute "
                                     "where attrelid = %s::regclass and attnum > 0", f"{schema}.{TABLE}"))
    assert {name: types[name] for name in COLUMNS} == LANDS_AS, schema
    assert query(database_url, f"select id, {', '.join(COLUMNS)} from {schema}.{TABLE} order by id") == LANDED, schema
    assert query(database_url, f"select record::json->>'id', rule, reason from {schema}.{TABLE}__quarantine "
                               "where status = 'quarantined' order by 1") == QUARANTINED, schema


def fill(url: str, connect, text_types: tuple[str, ...], placeholder: str = "%s") -> None:
    columns = ", ".join(f"{name} {kind}" for name, kind in zip(COLUMNS, text_types, strict=True))
    connection = connect(url)
    try:
        cursor = connection.cursor()
        cursor.execute(f"create table {TABLE} (id integer primary key, {columns})")
        cursor.executemany(f"insert into {TABLE} values ({', '.join([placeholder] * 6)})", ROWS)
        connection.commit()
    finally:
        connection.close()


def assert_database_casts(source_url: str, database_url: str, backends: dict[str, dict], tmp_path, monkeypatch):
    path = write_project(tmp_path, monkeypatch, source_url, backends, OPTIONS)
    for name in backends:
        # Twice: the second run reads the connector's text types again, and must keep the cast types.
        for _ in range(2):
            [table] = load(path, database_url, name).tables
            assert (table.read, table.loaded, table.quarantined) == (6, 3, 3), name
        assert_cast_landed(database_url, f"raw_{name}")


# chunk_size 2: several batches, one of them holding only rows that fail the cast.
BOTH_BACKENDS = {"auto": {"chunk_size": 2}, "arrow": {"backend": "pyarrow", "chunk_size": 2}}


def test_postgres_text_columns(postgres_source, database_url, tmp_path, monkeypatch):
    fill(postgres_source, connect_postgres, ("text", "varchar(10)", "character varying(20)", "text", "char(5)"))
    assert_database_casts(postgres_source, database_url, BOTH_BACKENDS, tmp_path, monkeypatch)


def test_mariadb_text_columns(mariadb_source, database_url, tmp_path, monkeypatch):
    fill(mariadb_source, connect_mariadb, ("text", "varchar(10)", "varchar(20)", "varchar(40)", "char(5)"))
    assert_database_casts(mariadb_source, database_url, BOTH_BACKENDS, tmp_path, monkeypatch)


def test_sqlite_text_columns(database_url, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    fill(url, connect_sqlite, ("text", "text", "varchar(20)", "text", "text"), placeholder="?")
    assert_database_casts(url, database_url, {"lite": {"chunk_size": 2}}, tmp_path / "project", monkeypatch)


def test_a_cast_added_to_a_loaded_text_column_keeps_it_text_until_a_full_refresh(postgres_source, database_url,
                                                                                   tmp_path, monkeypatch):
    """Types only widen: the column stays text, the values load (as text), nothing is refused."""
    fill(postgres_source, connect_postgres, ("text",) * 5)
    load(write_project(tmp_path, monkeypatch, postgres_source, {"db": {}}), database_url, "db")
    [table] = load(write_project(tmp_path, monkeypatch, postgres_source, {"db": {}}, OPTIONS), database_url,
                   "db").tables
    assert (table.read, table.loaded, table.quarantined) == (6, 3, 3)
    assert query(database_url, f"select id, qty from raw_db.{TABLE} order by id") == [
        (1, "12"), (2, "7"), (3, "x"), (4, "5"), (5, "5"), (6, None)]  # 3-5 as the first load left them


def run(path, database_url: str, source: str):
    project = load_project(path, connector_registry())
    config = project.source(source)
    result = load_source(project, config, connector_registry().get(config.connector),
                         PostgresAddress.from_url(database_url))
    assert result.ok, result.error
    return result


def test_landing_file_text_columns(database_url, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    with open(landing / f"{TABLE}.csv", "w", newline="") as file:
        csv.writer(file).writerows([("id", *COLUMNS), *ROWS])
    source = {"connector": "filesystem", "settings": {"bucket_url": str(landing), "files": {TABLE: "*.csv"}},
              "tables": {TABLE: OPTIONS}}
    path = tmp_path / "headwater.yaml"
    path.write_text(yaml.safe_dump({"sources": {"files": source}}))
    [table] = run(path, database_url, "files").tables
    assert (table.read, table.loaded, table.quarantined) == (6, 3, 3)
    assert_cast_landed(database_url, "raw_files")


@pytest.fixture
def api():
    with ApiServer() as server:
        yield server


def test_api_json_strings(api, database_url, tmp_path):
    records = [dict(zip(("id", *COLUMNS), row, strict=True)) for row in ROWS]
    api.get(f"/{TABLE}")(lambda request: Reply(200, {"data": records}))
    endpoint = {"path": TABLE, "data_selector": "data", "paginator": "single_page"}
    settings = {"client": {"base_url": api.url}, "resources": [{"name": TABLE, "endpoint": endpoint}]}
    path = tmp_path / "headwater.yaml"
    path.write_text(yaml.safe_dump({"sources": {"api": {"connector": "rest_api", "settings": settings,
                                                        "tables": {TABLE: OPTIONS}}}}))
    for _ in range(2):
        [table] = run(path, database_url, "api").tables
        assert (table.read, table.loaded, table.quarantined) == (6, 3, 3)
    assert_cast_landed(database_url, "raw_api")

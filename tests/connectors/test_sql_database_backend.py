"""How the sql_database connector reads a database: connectorx for PostgreSQL and MariaDB, pyarrow otherwise.

The loads run against the machine's PostgreSQL and MariaDB (fresh databases, dropped afterwards) and land
in a fresh Postgres destination through Headwater's own loading path. A table loaded by connectorx must
land exactly as the pyarrow backend lands it: same column types, same values.
"""

from __future__ import annotations

import logging
import sys
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from connectors.sql_database.backends import choose_backend, connectorx_url
from headwater.load.pipeline import SourceLoad, load_source
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query
from tests.connectors.conftest import PASSWORD
from tests.load.helpers import registry

LOADER_LOGGER = "connectors.sql_database"
CONNECTORX_READ = "read with connectorx"


# -- the choice ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "requested", "chosen"), [
    ("postgresql://loader:pw@db.example.com/shop", None, "connectorx"),
    ("postgresql+psycopg://loader:pw@db.example.com/shop", None, "connectorx"),
    ("postgresql+psycopg2://loader:pw@db.example.com:5433/shop", None, "connectorx"),
    ("mysql+pymysql://root:@127.0.0.1:3306/shop", None, "connectorx"),
    ("mariadb+mariadbconnector://root:pw@127.0.0.1/shop", None, "connectorx"),
    ("sqlite:///shop.db", None, "pyarrow"),
    ("mssql+pyodbc://loader:pw@db.example.com/shop", None, "pyarrow"),
    ("postgresql+psycopg://loader:pw@db.example.com/shop", "pyarrow", "pyarrow"),
    ("mysql+pymysql://root:@127.0.0.1/shop", "sqlalchemy", "sqlalchemy"),
    ("sqlite:///shop.db", "connectorx", "connectorx"),
])
def test_backend_is_chosen_by_database_unless_set(url, requested, chosen):
    assert choose_backend(url, requested) == chosen


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql+psycopg://loader:p%40ss@db:5433/shop?sslmode=require&client_encoding=utf8",
     "postgresql://loader:p%40ss@db:5433/shop?sslmode=require"),
    ("postgresql://loader@db/shop", "postgresql://loader@db/shop"),
    ("mysql+pymysql://root:pw@127.0.0.1:3306/shop?charset=utf8mb4", "mysql://root:pw@127.0.0.1:3306/shop"),
    ("mariadb+mariadbconnector://root:pw@127.0.0.1/shop", "mysql://root:pw@127.0.0.1/shop"),
])
def test_connectorx_gets_the_url_without_driver_and_driver_only_parameters(url, expected):
    assert connectorx_url(sa.make_url(url)) == expected


def test_without_connectorx_postgres_is_read_with_pyarrow_and_the_log_says_why(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "connectorx", None)  # what an import of a missing package raises
    caplog.set_level(logging.INFO, logger=LOADER_LOGGER)

    assert choose_backend(f"postgresql+psycopg://loader:{PASSWORD}@127.0.0.1/shop", None) == "pyarrow"
    assert "connectorx cannot be imported" in caplog.text
    assert PASSWORD not in caplog.text


# -- real sources --------------------------------------------------------------------------------------------


def run_sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))
    engine.dispose()


def write_project(folder: Path, monkeypatch, url: str, sources: dict[str, dict]) -> Path:
    """headwater.yaml with sql_database sources on ``url`` (a secret, as ${SOURCE_DB_URL}): name -> settings/tables."""
    monkeypatch.setenv("SOURCE_DB_URL", url)
    document = {"sources": {
        name: {
            "connector": "sql_database",
            "settings": {"credentials": "${SOURCE_DB_URL}", **spec.get("settings", {})},
            "tables": spec["tables"],
        }
        for name, spec in sources.items()
    }}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "headwater.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def load(path: Path, destination_url: str, source: str) -> SourceLoad:
    project = load_project(path, registry())
    config = project.source(source)
    result = load_source(project, config, registry().get(config.connector), PostgresAddress.from_url(destination_url))
    assert result.ok, result.error
    return result


def column_types(url: str, schema: str, table: str) -> list[tuple]:
    return query(url, """
        select column_name, data_type, numeric_precision, numeric_scale from information_schema.columns
        where table_schema = %s and table_name = %s and column_name not like '\\_dlt%%' order by ordinal_position
    """, schema, table)


def rows(url: str, relation: str, columns: str) -> list[tuple]:
    return query(url, f"select {columns} from {relation} order by id")


def load_with_both_backends(tmp_path, monkeypatch, caplog, source_url: str, destination_url: str, tables: dict):
    """Load ``tables`` as source ``arrow`` (backend: pyarrow) and as source ``auto`` (backend unset).

    Returns the connector's log of each load.
    """
    path = write_project(tmp_path, monkeypatch, source_url, {
        "arrow": {"settings": {"backend": "pyarrow"}, "tables": tables},
        "auto": {"tables": tables},
    })
    caplog.set_level(logging.DEBUG, logger=LOADER_LOGGER)
    logs = {}
    for source in ("arrow", "auto"):
        caplog.clear()
        load(path, destination_url, source)
        logs[source] = caplog.text
    return logs


def load_items_both_ways(tmp_path, monkeypatch, caplog, source_url, database_url, columns: str):
    """Load table items with the automatic backend (connectorx) and with pyarrow; both must land the same.

    Returns the column types and rows of the automatic load.
    """
    logs = load_with_both_backends(tmp_path, monkeypatch, caplog, source_url, database_url,
                                   {"items": {"primary_key": "id"}})
    assert CONNECTORX_READ not in logs["arrow"]  # an explicit backend is honoured
    assert "items: 3 rows read with connectorx" in logs["auto"]
    assert PASSWORD not in logs["arrow"] + logs["auto"]
    types = column_types(database_url, "raw_auto", "items")
    assert types == column_types(database_url, "raw_arrow", "items")
    loaded = rows(database_url, "raw_auto.items", columns)
    assert loaded == rows(database_url, "raw_arrow.items", columns)
    return types, loaded


POSTGRES_ITEMS = """
    create table items (
        id int primary key, happened_at timestamptz, local_at timestamp, active bool, price numeric(10, 2),
        ratio numeric, score double precision, label text, code varchar(8), day date, payload jsonb,
        wide numeric(40, 2)
    )"""
POSTGRES_ROWS = """
    insert into items values
        (1, '2024-03-01T10:00:00+02:00', '2024-03-01 10:00:00', true, 12.34, 0.123456789, 1.5, 'héllo', 'A1',
         '2024-03-01', '{"k": [1, 2], "b": null}', 123456789012345678901234567890123456.78),
        (2, '2024-03-02T23:59:59.123456Z', '2024-03-02 23:59:59.5', false, -0.01, 42, -2.25, '', 'B2',
         '2024-03-02', '[]', -1.05),
        (3, null, null, null, null, null, null, null, null, null, null, null)"""
ITEM_COLUMNS = "id, happened_at, local_at, active, price, ratio, score, label, code, day, payload, wide"


def test_a_postgres_table_lands_the_same_through_connectorx_as_through_pyarrow(
    tmp_path, monkeypatch, caplog, postgres_source, database_url
):
    run_sql(postgres_source, POSTGRES_ITEMS, POSTGRES_ROWS)

    types, loaded = load_items_both_ways(tmp_path, monkeypatch, caplog, postgres_source, database_url, ITEM_COLUMNS)
    assert types == [
        ("id", "bigint", 64, 0), ("happened_at", "timestamp with time zone", None, None),
        ("local_at", "timestamp with time zone", None, None), ("active", "boolean", None, None),
        ("price", "numeric", 10, 2), ("ratio", "numeric", None, None), ("score", "double precision", 53, None),
        ("label", "character varying", None, None), ("code", "character varying", None, None),
        ("day", "date", None, None), ("payload", "jsonb", None, None), ("wide", "numeric", 40, 2),
    ]
    assert loaded == [
        (1, datetime(2024, 3, 1, 8, 0, tzinfo=timezone.utc), datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc), True,
         Decimal("12.34"),
         Decimal("0.123456789"), 1.5, "héllo", "A1", date(2024, 3, 1), {"k": [1, 2], "b": None},
         Decimal("123456789012345678901234567890123456.78")),
        (2, datetime(2024, 3, 2, 23, 59, 59, 123456, tzinfo=timezone.utc),
         datetime(2024, 3, 2, 23, 59, 59, 500000, tzinfo=timezone.utc), False, Decimal("-0.01"), Decimal("42"), -2.25,
         "", "B2", date(2024, 3, 2), [], Decimal("-1.05")),
        (3, None, None, None, None, None, None, None, None, None, None, None),
    ]


MARIADB_ITEMS = """
    create table items (
        id int primary key, happened_at datetime(6), active boolean, price decimal(10, 2), wide decimal(40, 20),
        score double, label varchar(50), notes text, day date, flags binary(2)
    )"""
MARIADB_ROWS = """
    insert into items values
        (1, '2024-03-01 10:00:00.250000', true, 12.34, 0.00000000000000000001, 1.5, 'héllo', 'long text', '2024-03-01',
         x'0102'),
        (2, '2024-03-02 23:59:59', false, -0.01, 12345678901234567890.5, -2.25, '', '', '2024-03-02', x'ff00'),
        (3, null, null, null, null, null, null, null, null, null)"""
MARIADB_COLUMNS = "id, happened_at, active, price, wide, score, label, notes, day, flags"


def test_a_mariadb_table_lands_the_same_through_connectorx_as_through_pyarrow(
    tmp_path, monkeypatch, caplog, mariadb_source, database_url
):
    run_sql(mariadb_source, MARIADB_ITEMS, MARIADB_ROWS)

    types, loaded = load_items_both_ways(tmp_path, monkeypatch, caplog, mariadb_source, database_url,
                                         MARIADB_COLUMNS)
    # BOOLEAN is TINYINT(1) and lands as the integer; DATETIME is taken as UTC; DOUBLE lands bit-exact.
    assert types == [
        ("id", "bigint", 64, 0), ("happened_at", "timestamp with time zone", None, None),
        ("active", "bigint", 64, 0), ("price", "numeric", 10, 2), ("wide", "numeric", 40, 20),
        ("score", "double precision", 53, None), ("label", "character varying", None, None),
        ("notes", "character varying", None, None), ("day", "date", None, None), ("flags", "bytea", None, None),
    ]
    assert loaded == [
        (1, datetime(2024, 3, 1, 10, 0, 0, 250000, tzinfo=timezone.utc), 1, Decimal("12.34"),
         Decimal("0.00000000000000000001"), 1.5, "héllo", "long text", date(2024, 3, 1), b"\x01\x02"),
        (2, datetime(2024, 3, 2, 23, 59, 59, tzinfo=timezone.utc), 0, Decimal("-0.01"),
         Decimal("12345678901234567890.50000000000000000000"), -2.25, "", "", date(2024, 3, 2), b"\xff\x00"),
        (3, None, None, None, None, None, None, None, None, None),
    ]


def test_tables_connectorx_fails_on_are_read_with_pyarrow(tmp_path, monkeypatch, caplog, postgres_source, database_url):
    run_sql(
        postgres_source,
        # Both backends read a real widened to double (0.1 is 0.10000000149011612), so connectorx reads it ...
        "create table readings (id int primary key, value real)",
        "insert into readings values (1, 0.1), (2, 3.3333333), (3, null)",
        # ... but fails on the one-byte "char" once it meets a value.
        'create table grades (id int primary key, grade "char")',
        "insert into grades values (1, 'a'), (2, null)",
    )

    logs = load_with_both_backends(tmp_path, monkeypatch, caplog, postgres_source, database_url,
                                   {"readings": {"primary_key": "id"}, "grades": {"primary_key": "id"}})

    assert "readings: 3 rows read with connectorx" in logs["auto"]
    assert "table grades is read with pyarrow: connectorx failed" in logs["auto"]
    assert "grades: 2 rows read with connectorx" not in logs["auto"]
    assert PASSWORD not in logs["auto"]
    for table, columns in (("readings", "id, value"), ("grades", "id, grade")):
        assert column_types(database_url, "raw_auto", table) == column_types(database_url, "raw_arrow", table)
        assert rows(database_url, f"raw_auto.{table}", columns) == rows(database_url, f"raw_arrow.{table}", columns)
    assert rows(database_url, "raw_auto.readings", "id, value") == [
        (1, 0.10000000149011612), (2, 3.3333332538604736), (3, None)
    ]
    assert rows(database_url, "raw_auto.grades", "id, grade") == [(1, "a"), (2, None)]


def test_sqlite_is_read_with_pyarrow(tmp_path, monkeypatch, caplog, database_url):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    run_sql(url, "create table items (id integer primary key, label text, price numeric(10, 2))",
            "insert into items values (1, 'a', 1.25), (2, null, null)")
    path = write_project(tmp_path / "project", monkeypatch, url, {"s": {"tables": {"items": {"primary_key": "id"}}}})
    caplog.set_level(logging.DEBUG, logger=LOADER_LOGGER)

    assert load(path, database_url, "s").rows == 2
    assert CONNECTORX_READ not in caplog.text
    assert rows(database_url, "raw_s.items", "id, label, price") == [(1, "a", Decimal("1.25")), (2, None, None)]


# -- incremental ---------------------------------------------------------------------------------------------

EVENTS = {
    "postgres": "create table events (id int primary key, name text, updated_at timestamptz not null)",
    "mariadb": "create table events (id int primary key, name varchar(20), updated_at datetime(6) not null)",
}


def event_rows(ids: range) -> str:
    values = ", ".join(f"({i}, 'event {i}', '2024-01-01 {i:02d}:00:00')" for i in ids)
    return f"insert into events values {values}"


@pytest.mark.parametrize("database", ["postgres", "mariadb"])
def test_incremental_runs_read_only_rows_at_or_after_the_cursor(
    database, request, tmp_path, monkeypatch, caplog, database_url
):
    source_url = request.getfixturevalue(f"{database}_source")
    run_sql(source_url, EVENTS[database], event_rows(range(1, 6)))
    path = write_project(tmp_path, monkeypatch, source_url,
                         {"s": {"tables": {"events": {"primary_key": "id", "cursor": "updated_at"}}}})
    caplog.set_level(logging.DEBUG, logger=LOADER_LOGGER)

    assert load(path, database_url, "s").rows == 5
    assert "events: 5 rows read with connectorx" in caplog.text

    run_sql(source_url, event_rows(range(6, 8)))
    caplog.clear()
    assert load(path, database_url, "s").rows == 2
    # The cursor condition runs in the database: it returns the last loaded row again (>=) and the new ones.
    assert "WHERE events.updated_at >=" in caplog.text
    assert "events: 3 rows read with connectorx" in caplog.text

    caplog.clear()
    assert load(path, database_url, "s").rows == 0
    assert "events: 1 rows read with connectorx" in caplog.text
    assert rows(database_url, "raw_s.events", "id, name") == [(i, f"event {i}") for i in range(1, 8)]

"""The type matrix: one source table with a column per type, loaded by Headwater and compared cell by cell.

A ``Case`` is one source column: its type, the values of its rows (SQL literals of the source's dialect),
the Postgres type it must land as, and how the test reads it on each side. The source table has one
row per value (a column with fewer values is NULL in the remaining rows) and a last row of NULLs.
The source is read with its own driver (psycopg, pymysql, sqlite3), the destination with psycopg, and
every cell must be equal after the normalisations of the documented policies, and nothing else:

- a timestamp without zone is taken as UTC;
- floats compare by their bits (NaN equals NaN; -0.0 does not equal 0.0);
- JSON compares as parsed values, with decimals kept exact and a JSON null distinct from SQL NULL.
"""

from __future__ import annotations

import json
import math
import sqlite3
import struct
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import psycopg
import pymysql
import sqlalchemy as sa
import yaml

from headwater.load.pipeline import SourceLoad, load_source
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.load.helpers import registry

TABLE = "types"
URL_VARIABLE = "TYPE_MATRIX_SOURCE_URL"


@dataclass(frozen=True)
class Case:
    source_type: str
    values: tuple[str, ...]
    lands_as: str  # as Postgres' format_type() names the destination column's type
    read: str = "{}"  # the source value as the test reads it: "{}" is the column
    read_landed: str = "{}"  # the landed value as the test reads it
    compare: str = "value"  # value | json | boolean_from_int | sqlite_text_date | sqlite_decimal

    def column(self, index: int) -> str:
        return f"c{index:02d}"


@dataclass(frozen=True)
class Database:
    """How the test creates, fills and reads one kind of source database."""

    setup: tuple[str, ...]  # statements before the table (CREATE TYPE, session settings)
    connect: Callable[[str], Any]  # a DB-API connection from the SQLAlchemy URL
    quote: str = '"'


def create_table(url: str, cases: list[Case], database: Database) -> None:
    q = database.quote
    columns = ", ".join(f"{q}{case.column(i)}{q} {case.source_type}" for i, case in enumerate(cases))
    rows = max(len(case.values) for case in cases)
    statements = [*database.setup, f"create table {TABLE} (id integer primary key, {columns})"]
    for row in range(rows + 1):  # the last row is all NULLs
        values = ", ".join(case.values[row] if row < len(case.values) else "NULL" for case in cases)
        statements.append(f"insert into {TABLE} values ({row + 1}, {values})")
    connection = database.connect(url)
    try:
        cursor = connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        connection.commit()
    finally:
        connection.close()


def write_project(folder: Path, monkeypatch, url: str, sources: dict[str, dict], table: dict | None = None) -> Path:
    """headwater.yaml with sql_database sources on ``url`` (a secret): name -> settings, each taking TABLE.

    ``table``: the table's options; by default merged on id.
    """
    monkeypatch.setenv(URL_VARIABLE, url)
    document = {"sources": {
        name: {"connector": "sql_database", "settings": {"credentials": f"${{{URL_VARIABLE}}}", **settings},
               "tables": {TABLE: table or {"primary_key": "id"}}}
        for name, settings in sources.items()
    }}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "headwater.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder / "headwater.yaml"


def load(path: Path, destination_url: str, source: str) -> SourceLoad:
    project = load_project(path, registry())
    config = project.source(source)
    result = load_source(project, config, registry().get(config.connector), PostgresAddress.from_url(destination_url))
    assert result.ok, result.error
    return result


def landed_types(destination_url: str, schema: str, cases: list[Case]) -> dict[str, str]:
    with psycopg.connect(destination_url) as connection:
        rows = connection.execute(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute"
            " where attrelid = %s::regclass and attnum > 0 and not attisdropped",
            (f"{schema}.{TABLE}",),
        ).fetchall()
    return dict(rows)


def read_source(url: str, cases: list[Case], database: Database) -> list[tuple]:
    columns = ", ".join(case.read.format(f"{database.quote}{case.column(i)}{database.quote}")
                        for i, case in enumerate(cases))
    connection = database.connect(url)
    try:
        cursor = connection.cursor()
        cursor.execute(f"select {columns} from {TABLE} order by id")
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        connection.close()


def read_landed(destination_url: str, schema: str, cases: list[Case]) -> list[tuple]:
    columns = ", ".join(case.read_landed.format(f'"{case.column(i)}"') for i, case in enumerate(cases))
    with psycopg.connect(destination_url) as connection:
        return connection.execute(f"select {columns} from {schema}.{TABLE} order by id").fetchall()


def mismatches(cases: list[Case], source: list[tuple], landed: list[tuple]) -> list[str]:
    """Every cell that differs, as 'row id, source type: source value != landed value'."""
    problems = []
    if len(source) != len(landed):
        return [f"{len(source)} source rows, {len(landed)} landed"]
    for row_id, (source_row, landed_row) in enumerate(zip(source, landed, strict=True), start=1):
        for case, expected, actual in zip(cases, source_row, landed_row, strict=True):
            if not same(case.compare, expected, actual):
                problems.append(f"row {row_id}, {case.source_type}: {expected!r} != {actual!r}")
    return problems


def same(compare: str, source: Any, landed: Any) -> bool:
    if source is None or landed is None:
        return source is None and landed is None
    if compare == "json":
        return _json(source) == _json(landed)
    if compare == "sqlite_decimal":  # SQLite keeps decimals as 8-byte floats: the number written is their repr
        return Decimal(repr(source) if isinstance(source, float) else str(source)) == landed
    if compare == "boolean_from_int":  # SQLite booleans, MariaDB's `bit = 1`: the integers 0 and 1
        source = {0: False, 1: True}.get(source, source)
    if compare == "sqlite_text_date":
        source = (datetime if isinstance(landed, datetime) else date).fromisoformat(source)
    if isinstance(source, Decimal) and isinstance(landed, Decimal) and source.is_nan():
        return landed.is_nan()
    if isinstance(source, float) and isinstance(landed, float):
        return (math.isnan(source) and math.isnan(landed)) or struct.pack(">d", source) == struct.pack(">d", landed)
    if isinstance(source, datetime) and source.tzinfo is None and isinstance(landed, datetime):
        source = source.replace(tzinfo=timezone.utc)  # the timestamp policy: a zone-less value is UTC
    if isinstance(source, bool) or isinstance(landed, bool):  # True == 1 in Python, not here
        return type(source) is type(landed) and source == landed
    return source == landed


def _json(text: Any) -> Any:
    # Tagged, so that the JSON value null stays distinct from SQL NULL; decimals parsed exactly.
    return ("json", json.loads(text, parse_float=Decimal))


def connect_postgres(url: str):
    return psycopg.connect(sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))


def connect_mariadb(url: str):
    parsed = sa.make_url(url)
    connection = pymysql.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                                 password=parsed.password or "", database=parsed.database, charset="utf8mb4")
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")  # TIMESTAMP values as MariaDB stores them: in UTC
    return connection


def connect_sqlite(url: str):
    return sqlite3.connect(sa.make_url(url).database)

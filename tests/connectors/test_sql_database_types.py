"""Every column type of PostgreSQL, MariaDB and SQLite lands value-exact through sql_database, with both backends.

Each table below is the spec of one database: source type, the values of its rows, the Postgres type it
lands as, and (where the policy says how) the form the test reads on each side. The policies themselves
are in docs/connectors.md; type_matrix.py says how cells are compared.
"""

from __future__ import annotations

import dataclasses
import logging

from connectors.sql_database.pass_through import SWITCH_VARIABLE as PASS_THROUGH_VARIABLE
from headwater.postgres.copy_ahead import MIN_ROWS_VARIABLE
from tests.connectors.type_matrix import (
    TABLE,
    Case,
    Database,
    connect_mariadb,
    connect_postgres,
    connect_sqlite,
    create_table,
    landed_types,
    load,
    mismatches,
    read_landed,
    read_source,
    write_project,
)

TEXT = "character varying"
TIMESTAMPTZ = "timestamp with time zone"

POSTGRES = [
    Case("smallint", ("-32768", "32767", "0"), "bigint"),
    Case("integer", ("-2147483648", "2147483647"), "bigint"),
    Case("bigint", ("-9223372036854775808", "9223372036854775807"), "bigint"),
    # 4-byte floats land as double precision holding the same value, widened: 0.1::real is 0.10000000149011612.
    Case("real", ("0.1", "3.4028235e38", "1.4e-45", "'NaN'", "'Infinity'", "'-Infinity'", "'-0'"),
         "double precision", read="{}::double precision"),
    Case("double precision", ("54.0133333333", "0.1", "1.7976931348623157e308", "5e-324", "'NaN'", "'Infinity'",
                              "'-Infinity'", "'-0'"), "double precision"),
    Case("numeric(10, 2)", ("12.34", "-99999999.99", "0.00"), "numeric(10,2)"),
    Case("numeric(38, 0)", ("99999999999999999999999999999999999999", "-99999999999999999999999999999999999999"),
         "numeric(38,0)"),
    Case("numeric(20, 15)", ("12345.123456789012345", "-0.000000000000001"), "numeric(20,15)"),
    Case("numeric(40, 20)", ("12345678901234567890.12345678901234567890", "-0.00000000000000000001"),
         "numeric(40,20)"),
    Case("numeric(100, 50)", ("1" * 50 + "." + "1" * 50, "-0." + "0" * 49 + "1"), "numeric(100,50)"),
    Case("numeric", ("1.5", "0.10", "-7", "1e-40", "1e300", "123456789012345678901234567890.123456789012345678901",
                     "'NaN'", "'Infinity'", "'-Infinity'"), "numeric"),
    Case("boolean", ("true", "false"), "boolean"),
    Case("bit(1)", ("B'1'", "B'0'"), "boolean", read="{} = B'1'"),
    # Bit strings of other lengths land as their digits, which cast back to the same bit string.
    Case("bit(5)", ("B'00101'", "B'11111'"), TEXT, read_landed="{}::bit(5)"),
    Case("bit varying", ("B'0101'", "B''", "B'1'"), TEXT, read_landed="{}::varbit"),
    Case("date", ("'0001-01-01'", "'9999-12-31'", "'2024-02-29'"), "date"),
    Case("time", ("'00:00:00'", "'23:59:59.999999'", "'12:30:00.5'"), "time without time zone"),
    # time with time zone keeps its offset as text, which casts back to the same value.
    Case("time with time zone", ("'10:00:00+02'", "'23:59:59.999999-11:30'", "'00:00:00+00'"), TEXT,
         read="{}::text", read_landed="{}::timetz::text"),
    Case("timestamp", ("'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2024-03-01 10:00:00.123456'"),
         TIMESTAMPTZ),
    Case("timestamp with time zone", ("'2024-03-01T10:00:00+02:00'", "'0001-01-01 00:00:00+00'",
                                      "'9999-12-31 23:59:59.999999+00'"), TIMESTAMPTZ),
    # intervals land as ISO 8601 text, which casts back to the same interval (months, days and time apart).
    Case("interval", ("'1 year 2 mons -3 days 04:05:06.789'", "'-1 days'", "'0'", "'-178000000 years'",
                      "'1 mon -30 days'"), TEXT, read="{}::text", read_landed="{}::interval::text"),
    Case("json", ("'{\"b\": 1, \"a\": [1, 2.50], \"b\": 2}'", "'null'", "'\"s\"'", "'[]'",
                  "'1.000000000000000000001'"), "jsonb", read="{}::text", read_landed="{}::text", compare="json"),
    Case("jsonb", ("'{\"x\": null, \"y\": {\"z\": [true, false]}}'", "'null'", "'0.1'"), "jsonb",
         read="{}::text", read_landed="{}::text", compare="json"),
    Case("mood", ("'happy'", "'sad'"), TEXT, read="{}::text"),
    Case("uuid", ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "'00000000-0000-0000-0000-000000000000'"), TEXT,
         read="{}::text"),
    Case("bytea", ("'\\x00ff'", "''", "'\\xdeadbeef'"), "bytea"),
    Case("text", ("'héllo 🎉'", "''", "'ünïcödé ✓ 中文'"), TEXT),
    Case("varchar(8)", ("'A1'", "''"), TEXT),
    Case("char(5)", ("'ab'", "'abcde'"), TEXT),
    # arrays land as JSON arrays (nested ones nested)
    Case("integer[]", ("'{1,NULL,3}'", "'{}'"), "jsonb"),
    Case("text[]", ("'{\"a\",\"b c\",NULL}'",), "jsonb"),
    Case("integer[][]", ("'{{1,2},{3,4}}'",), "jsonb"),
    # types dlt has no data type for land as PostgreSQL's text of the value
    Case("inet", ("'192.168.0.1/24'", "'::1'"), TEXT, read="{}::text"),
]
POSTGRES_DATABASE = Database(setup=("create type mood as enum ('happy', 'sad')",), connect=connect_postgres)

MARIADB = [
    Case("tinyint", ("-128", "127"), "bigint"),
    Case("tinyint unsigned", ("0", "255"), "bigint"),
    Case("smallint", ("-32768", "32767"), "bigint"),
    Case("smallint unsigned", ("0", "65535"), "bigint"),
    Case("mediumint", ("-8388608", "8388607"), "bigint"),
    Case("mediumint unsigned", ("0", "16777215"), "bigint"),
    Case("int", ("-2147483648", "2147483647"), "bigint"),
    Case("int unsigned", ("0", "4294967295"), "bigint"),
    Case("bigint", ("-9223372036854775808", "9223372036854775807"), "bigint"),
    Case("bigint unsigned", ("0", "18446744073709551615", "9223372036854775808"), "numeric(20,0)"),
    # BOOLEAN is TINYINT(1), which also holds 2 and -1: it lands as the integer it holds.
    Case("boolean", ("1", "0", "2", "-1"), "bigint"),
    Case("float", ("0.1", "-3.3333333", "3.4028234e38", "1.1754944e-38"), "double precision",
         read="cast({} as double)"),
    Case("double", ("54.0133333333", "0.1", "1.7976931348623157e308", "5e-324", "2.2250738585072014e-308"),
         "double precision"),
    Case("decimal(10, 2)", ("12.34", "-99999999.99", "0"), "numeric(10,2)"),
    Case("decimal(20, 0) unsigned", ("99999999999999999999",), "numeric(20,0)"),
    Case("decimal(38, 10)", ("1234567890123456789012345678.0123456789",), "numeric(38,10)"),
    Case("decimal(65, 30)", ("12345678901234567890123456789012345.123456789012345678901234567890",
                             "-0.000000000000000000000000000001"), "numeric(65,30)"),
    Case("bit(1)", ("b'1'", "b'0'"), "boolean", read="{} = 1", compare="boolean_from_int"),
    Case("bit(12)", ("b'000000000101'", "b'111111111111'"), TEXT, read="{} + 0",
         read_landed="{}::varbit::bit(12)::bigint"),
    Case("date", ("'0001-01-01'", "'9999-12-31'", "'2024-02-29'"), "date"),
    # TIME spans -838:59:59..838:59:59: it lands as its text, which casts to the same interval.
    Case("time(6)", ("'-838:59:59'", "'838:59:59.999999'", "'12:30:00.5'", "'00:00:00'"), TEXT,
         read_landed="{}::interval"),
    Case("datetime(6)", ("'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2024-03-01 10:00:00.123456'"),
         TIMESTAMPTZ),
    Case("timestamp(6) null", ("'2024-03-01 10:00:00.5'", "'1970-01-01 05:00:01'", "'2038-01-19 08:14:07.999999'"),
         TIMESTAMPTZ),
    Case("year", ("2024", "1901", "2155"), "bigint"),
    Case("json", ("'{\"a\": [1, 2.50], \"n\": null}'", "'null'", "'\"s\"'", "'[]'", "'1.000000000000000000001'"),
         "jsonb", read_landed="{}::text", compare="json"),
    Case("enum('a', 'b')", ("'b'", "'a'"), TEXT),
    Case("set('x', 'y')", ("'x,y'", "''", "'y'"), TEXT),
    Case("varbinary(10)", ("x'00ff'", "''"), "bytea"),
    Case("binary(3)", ("x'01'", "x'000000'"), "bytea"),
    Case("blob", ("x'deadbeef'",), "bytea"),
    Case("varchar(20)", ("'héllo 🎉'", "''"), TEXT),
    Case("char(5)", ("'ab'", "''"), TEXT),
    Case("text", ("'ünïcödé ✓ 中文'", "''"), TEXT),
    Case("longtext", ("'long'",), TEXT),
    Case("uuid", ("'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",), TEXT),
]
# The rows are written in another zone: TIMESTAMP values must still land as the instants MariaDB stores.
MARIADB_DATABASE = Database(setup=("SET time_zone = '+05:00'",), connect=connect_mariadb, quote="`")

SQLITE = [
    Case("integer", ("-9223372036854775808", "9223372036854775807", "0"), "bigint"),
    Case("real", ("0.1", "1.7976931348623157e308", "-0.0", "9e999", "-9e999", "5e-324"), "double precision"),
    Case("numeric(10, 2)", ("12.34", "-99999999.99", "0"), "numeric(10,2)", compare="sqlite_decimal"),
    Case("numeric", ("1.5", "123456789012345678", "-0.001"), "numeric", compare="sqlite_decimal"),
    Case("boolean", ("1", "0"), "boolean", compare="boolean_from_int"),
    Case("text", ("'héllo 🎉'", "''"), TEXT),
    Case("varchar(10)", ("'A1'",), TEXT),
    Case("blob", ("x'00ff'", "x''"), "bytea"),
    Case("date", ("'2024-02-29'", "'0001-01-01'", "'9999-12-31'"), "date", compare="sqlite_text_date"),
    Case("datetime", ("'2024-03-01 10:00:00.123456'", "'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'"),
         TIMESTAMPTZ, compare="sqlite_text_date"),
    Case("json", ("'{\"a\": 1}'", "'null'", "'[1, 2.50]'"), "jsonb", read_landed="{}::text", compare="json"),
]
SQLITE_DATABASE = Database(setup=(), connect=connect_sqlite)


def assert_lands_exactly(destination_url, source_url, cases, database, backends: dict[str, dict], tmp_path,
                         monkeypatch, caplog):
    create_table(source_url, cases, database)
    path = write_project(tmp_path, monkeypatch, source_url, backends)
    source = read_source(source_url, cases, database)
    caplog.set_level(logging.INFO, logger="connectors.sql_database")
    for name, settings in backends.items():
        caplog.clear()
        assert load(path, destination_url, name).rows == len(source)
        # The default backend reads PostgreSQL and MariaDB with connectorx, never falling back to pyarrow.
        connectorx = "backend" not in settings and not source_url.startswith("sqlite")
        assert ("rows read with connectorx" in caplog.text) == connectorx, name
        types = landed_types(destination_url, f"raw_{name}", cases)
        assert {case.source_type: types[case.column(i)] for i, case in enumerate(cases)} == {
            case.source_type: case.lands_as for case in cases
        }, name
        assert mismatches(cases, source, read_landed(destination_url, f"raw_{name}", cases)) == [], name


# chunk_size 3: several batches, one of them (the NULL row) with no value in any column.
BOTH_BACKENDS = {"auto": {"chunk_size": 3}, "arrow": {"backend": "pyarrow", "chunk_size": 3}}


def test_postgres_types_land_exactly(postgres_source, database_url, tmp_path, monkeypatch, caplog):
    assert_lands_exactly(database_url, postgres_source, POSTGRES, POSTGRES_DATABASE, BOTH_BACKENDS, tmp_path,
                         monkeypatch, caplog)


def test_mariadb_types_land_exactly(mariadb_source, database_url, tmp_path, monkeypatch, caplog):
    assert_lands_exactly(database_url, mariadb_source, MARIADB, MARIADB_DATABASE, BOTH_BACKENDS, tmp_path,
                         monkeypatch, caplog)


def test_sqlite_types_land_exactly(database_url, tmp_path, monkeypatch, caplog):
    url = f"sqlite:///{tmp_path / 'source.db'}"
    assert_lands_exactly(database_url, url, SQLITE, SQLITE_DATABASE, {"arrow": {"chunk_size": 3}},
                         tmp_path / "project", monkeypatch, caplog)


# The PostgreSQL columns whose types are passed through (any other makes a table read as Arrow).
PASSABLE = ("smallint", "integer", "bigint", "real", "double precision", "numeric(10, 2)", "numeric(38, 0)",
            "numeric(20, 15)", "numeric(40, 20)", "numeric(100, 50)", "numeric", "boolean", "date", "timestamp",
            "timestamp with time zone", "text", "varchar(8)", "json", "jsonb")
PASSED = "rows passed through from the source, committed by the load job"


def test_postgres_types_passed_through_land_exactly(postgres_source, database_url, tmp_path, monkeypatch, caplog):
    """PostgreSQL into Postgres with the rows inside the cursor's window passed through (pass_through.py)."""
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1")
    monkeypatch.setenv(PASS_THROUGH_VARIABLE, "on")
    # A decimal NaN makes its window read as Arrow: it comes in the second load.
    cases = [dataclasses.replace(case, values=tuple(value for value in case.values if value != "'NaN'"))
             if case.source_type == "numeric" else case for case in POSTGRES if case.source_type in PASSABLE]
    assert len(cases) == len(PASSABLE)
    create_table(postgres_source, cases, POSTGRES_DATABASE)
    table = {"cursor": "id", "write_disposition": "append"}
    path = write_project(tmp_path, monkeypatch, postgres_source, {"passed": {"chunk_size": 3}}, table)
    numeric = next(index for index, case in enumerate(cases) if case.source_type == "numeric")
    for load_number in (1, 2):
        if load_number == 2:
            connection = POSTGRES_DATABASE.connect(postgres_source)
            connection.execute(f"insert into {TABLE} (id, {cases[numeric].column(numeric)}) values (100, 'NaN'), "
                               f"(101, 2.5)")
            connection.commit()
            connection.close()
        source = read_source(postgres_source, cases, POSTGRES_DATABASE)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            result = load(path, database_url, "passed")
        passed = [line for line in caplog.messages if PASSED in line]
        if load_number == 1:  # every row but the edge, the last one (all NULLs), is passed
            assert {load.table: load.rows for load in result.tables}.get(TABLE) == len(source)
            assert passed == [f"raw_passed.{TABLE}: {len(source) - 1} {PASSED}"], caplog.text[-2000:]
        else:
            assert {load.table: load.rows for load in result.tables}.get(TABLE) == 2
            assert passed == []
        types = landed_types(database_url, "raw_passed", cases)
        assert {case.source_type: types[case.column(i)] for i, case in enumerate(cases)} == {
            case.source_type: case.lands_as for case in cases}
        landed = read_landed(database_url, "raw_passed", cases)
        assert mismatches(cases, source, landed) == []

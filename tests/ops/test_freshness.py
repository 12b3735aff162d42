"""Freshness SLAs: config syntax and errors, measurement against a fixed clock, and error_after failing a run."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from headwater.ops.freshness import effective_sla, evaluate_freshness
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ConfigError, ProjectConfig, SourceConfig, TableConfig, load_project
from headwater.project.freshness import FreshnessSLA, parse_duration
from tests.conftest import query
from tests.ops.test_history import PRODUCTS, add_freshness

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)


def test_durations():
    assert parse_duration("26h") == timedelta(hours=26)
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("2d") == timedelta(days=2)
    assert parse_duration(90) == timedelta(seconds=90)
    for bad in ("26", "soon", "-1h", "0h", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_config_inherits_overrides_and_switches_off(shop_project):
    config = shop_project / "headwater.yaml"
    source_sla = "    freshness: {warn_after: 26h, error_after: 48h}\n"
    text = config.read_text().replace("    connector: sql_database\n", "    connector: sql_database\n" + source_sla)
    text = text.replace(PRODUCTS, PRODUCTS.rstrip("}") + ", freshness: null}")
    config.write_text(text.replace("      payments:\n", "      payments:\n        freshness: 2h\n"))
    project = load_project(config, connector_registry())
    shop_db, shop_api = project.source("shop_db"), project.source("shop_api")
    customers = next(t for t in shop_db.tables if t.name == "customers")
    products = next(t for t in shop_db.tables if t.name == "products")
    assert effective_sla(shop_db, customers) == FreshnessSLA(timedelta(hours=26), timedelta(hours=48))
    assert effective_sla(shop_db, products) is None  # null switches the source's SLA off
    assert effective_sla(shop_api, shop_api.tables[0]) == FreshnessSLA(warn_after=timedelta(hours=2))


def test_config_errors_name_the_key(shop_project):
    add_freshness(shop_project, PRODUCTS, "{warn_after: 48h, error_after: 1x, alert_after: 1h}")
    with pytest.raises(ConfigError) as caught:
        load_project(shop_project / "headwater.yaml", connector_registry())
    message = str(caught.value)
    assert "sources.shop_db.tables.products.freshness.error_after: expected a duration such as 30m" in message
    assert "sources.shop_db.tables.products.freshness.alert_after: unknown key" in message


def test_age_from_cursor_else_from_last_load(database_url):
    with PostgresAddress.from_url(database_url).connect() as connection:
        connection.execute("""
            create schema raw_demo;
            create table raw_demo._dlt_loads (load_id text, schema_name text, status int, inserted_at timestamptz);
            insert into raw_demo._dlt_loads values ('1', 'demo', 0, '2026-11-10 09:00+00'),
                                                   ('2', 'demo', 1, '2026-11-10 11:00+00');
            create table raw_demo.events (id int, updated_at timestamp, _dlt_load_id text);
            insert into raw_demo.events values (1, '2026-11-08 12:00', '1'), (2, '2026-11-09 12:00', '1');
            create table raw_demo.plain (id int, _dlt_load_id text);
            insert into raw_demo.plain values (1, '1'), (2, '2');
        """)
    sla = FreshnessSLA(warn_after=timedelta(hours=2), error_after=timedelta(hours=30))
    tables = (TableConfig("events", cursor="updated_at"), TableConfig("plain"), TableConfig("missing"))
    project = ProjectConfig(path=Path("headwater.yaml"), name="demo",
                            sources=(SourceConfig("demo", "filesystem", {}, tables, freshness=sla),))
    results = {r.table: r for r in evaluate_freshness(project, PostgresAddress.from_url(database_url), now=NOW)}
    events, plain, missing = results["events"], results["plain"], results["missing"]
    assert (events.basis, events.age_seconds, events.status) == ("cursor:updated_at", 24 * 3600, "warn")
    # Only completed loads count (status 0): load 2 has not finished.
    assert (plain.basis, plain.age_seconds, plain.status) == ("load", 3 * 3600, "warn")
    assert plain.last_value == datetime(2026, 11, 10, 9, 0, tzinfo=timezone.utc)
    assert (missing.age_seconds, missing.status) == (None, "error")
    assert "raw_demo.events: newest data is 24.0h old (by cursor:updated_at), warn_after 2.0h" == events.message()


@pytest.mark.slow
def test_error_after_fails_the_run(shop_project, database_url, prefect_api, monkeypatch, capsys):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    # The shop's rows are stamped with its own clock, days behind today: one hour is long breached.
    add_freshness(shop_project, PRODUCTS, "{warn_after: 30m, error_after: 1h}")
    from flows.daily import RunFailed, daily

    with pytest.raises(RunFailed, match="freshness raw_shop_db.products"):
        daily()
    assert "freshness raw_shop_db.products: newest data is" in capsys.readouterr().out
    assert query(database_url, "select status from headwater_ops.runs") == [("failed",)]
    assert query(database_url, "select table_name, status, breached from headwater_ops.freshness") == [
        ("products", "error", True)
    ]


def test_cursor_age_comes_from_dlts_committed_state_not_from_reading_the_table(tmp_path, database_url, monkeypatch):
    from tests.conftest import fresh_database
    from tests.load.helpers import SOURCE_URL_VARIABLE, execute, load, write_project

    with fresh_database("hw_src") as source_url:
        monkeypatch.setenv(SOURCE_URL_VARIABLE, source_url)
        execute(source_url, "create table items (id int primary key, updated_at timestamptz)")
        execute(source_url, "insert into items values (1, '2026-11-08 12:00+00'), (2, '2026-11-09 12:00+00')")
        path = write_project(tmp_path, {"s": "items: {primary_key: id, cursor: updated_at, write_disposition: merge}"})
        load(path, database_url, "s")
    # A value only the table holds: reading max(updated_at) would find it, the committed cursor does not.
    execute(database_url, "update raw_s.items set updated_at = '2026-11-10 11:59+00' where id = 1")
    sla = FreshnessSLA(warn_after=timedelta(hours=2), error_after=None)
    project = ProjectConfig(path=Path("headwater.yaml"), name="demo", sources=(
        SourceConfig("s", "sql_database", {}, (TableConfig("items", cursor="updated_at"),), freshness=sla),))
    [items] = evaluate_freshness(project, PostgresAddress.from_url(database_url), now=NOW)
    assert (items.basis, items.last_value, items.status) == (
        "cursor:updated_at", datetime(2026, 11, 9, 12, 0, tzinfo=timezone.utc), "warn")

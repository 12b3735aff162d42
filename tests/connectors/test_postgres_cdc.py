"""postgres_cdc: a snapshot, then the stream of inserts, updates, deletes and truncates, exact in raw."""

from __future__ import annotations

import random
import textwrap

import psycopg

from headwater.load.pipeline import load_source
from headwater.load.reload import Reload
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import CDC_SOURCE_VARIABLE as SOURCE_VARIABLE
from tests.connectors.kill_loop import kill_repeatedly


def registry() -> ConnectorRegistry:
    from connectors.postgres_cdc import postgres_cdc
    from connectors.postgres_cdc.reader import acknowledge

    connectors = ConnectorRegistry()
    connectors.registrar(Plugin("builtin", "headwater", "test"))("postgres_cdc", postgres_cdc, acknowledge=acknowledge,
                                                                 change_feed=True)
    return connectors


def write_project(root, settings: str = "", tables: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "headwater.yaml").write_text(textwrap.dedent(f"""\
        sources:
          shop:
            connector: postgres_cdc
            settings:
              credentials: ${{{SOURCE_VARIABLE}}}
        """) + textwrap.indent(textwrap.dedent(settings), "      ") + (
        "    tables:\n" + textwrap.indent(textwrap.dedent(tables), "      ") if tables else ""))


def run(root, database_url: str):
    project = load_project(root / "headwater.yaml", registry())
    source = project.source("shop")
    result = load_source(project, source, registry().get(source.connector), PostgresAddress.from_url(database_url))
    assert result.ok, result.error
    return result


def execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


def source_and_raw(source: str, database_url: str, table: str, columns: str) -> tuple[list, list]:
    return (rows(source, f"select {columns} from public.{table} order by 1"),
            rows(database_url, f"select {columns} from raw_shop.{table} order by 1"))


def test_snapshot_then_changes_land_exactly(tmp_path, cdc_source, database_url):
    execute(cdc_source,
            "create table orders (id bigint primary key, customer text, amount numeric(12, 2), ratio float8,"
            " placed timestamptz, day date, tags jsonb, note text, price numeric)",
            "insert into orders select g, 'c' || g, g * 1.25, g / 3.0, '2024-01-01'::timestamptz + g * interval '1h',"
            " '2024-01-01'::date + g, jsonb_build_object('n', g), case when g % 3 = 0 then '' end,"
            " 12345678901234567890.123456789 + g from generate_series(1, 500) g")
    write_project(tmp_path, "tables: [orders]\n")
    first = run(tmp_path, database_url)
    assert {t.table: t.rows for t in first.tables}["orders"] == 500
    columns = "id, customer, amount, ratio, placed, day, tags, note, price"
    source, raw = source_and_raw(cdc_source, database_url, "orders", columns)
    assert raw == source

    execute(cdc_source,
            "insert into orders (id, customer, amount) values (1001, 'new', 9.99)",
            "update orders set amount = amount + 1, note = 'changed' where id <= 10",
            "delete from orders where id between 11 and 20",
            "update orders set id = 5000 where id = 30",  # the key itself changes
            "begin; update orders set customer = 'x' where id = 40; update orders set customer = 'y' where id = 40;"
            " commit")
    second = run(tmp_path, database_url)
    source, raw = source_and_raw(cdc_source, database_url, "orders", columns)
    assert raw == source
    assert {t.table: t.rows for t in second.tables}["orders"] > 0
    third = run(tmp_path, database_url)  # nothing new: nothing loaded, raw unchanged
    assert {t.table: t.rows for t in third.tables}.get("orders", 0) == 0
    assert source_and_raw(cdc_source, database_url, "orders", columns)[1] == source

    execute(cdc_source, "truncate orders", "insert into orders (id, customer) values (7, 'after the truncate')")
    run(tmp_path, database_url)
    source, raw = source_and_raw(cdc_source, database_url, "orders", columns)
    assert raw == source == [(7, "after the truncate", None, None, None, None, None, None, None)]


def test_unchanged_toasted_values_and_flagged_deletes_keep_what_raw_holds(tmp_path, cdc_source, database_url):
    # md5 text does not compress: 40,000 characters are stored out of line, and an update that does not touch
    # them sends them as "unchanged".
    big = "(select string_agg(md5(g::text || i::text), '') from generate_series(1, 1250) i)"
    execute(cdc_source,
            "create table docs (id int primary key, title text, body text)",
            f"insert into docs select g, 't' || g, {big} from generate_series(1, 20) g")
    write_project(tmp_path, "tables: [docs]\ndeletes_by_table: {docs: flag}\n")
    run(tmp_path, database_url)
    execute(cdc_source,
            "update docs set title = 'renamed' where id <= 5",
            "delete from docs where id in (6, 7)",
            "insert into docs values (21, 'new', 'short'), (22, 'gone soon', 'x')",
            "delete from docs where id = 22")
    run(tmp_path, database_url)
    raw = rows(database_url, "select id, title, md5(body), _deleted_at is not null, _cdc_unchanged"
                            " from raw_shop.docs order by id")
    source = {row[0]: row for row in rows(cdc_source, "select id, title, md5(body) from docs")}
    assert len(raw) == 22
    for id_, title, body, deleted, unchanged in raw:
        assert unchanged is None
        if id_ in (6, 7):  # flagged, with the values the row had
            assert deleted and title == f"t{id_}" and body is not None
        elif id_ == 22:
            assert deleted and title == "gone soon"
        else:
            assert not deleted and (id_, title, body) == source[id_]


def test_a_new_source_column_reaches_raw(tmp_path, cdc_source, database_url, caplog):
    execute(cdc_source, "create table items (id int primary key, name text)",
            "insert into items values (1, 'a')")
    write_project(tmp_path, "tables: [items]\n")
    run(tmp_path, database_url)
    execute(cdc_source, "alter table items add column price numeric(10, 2)",
            "insert into items values (2, 'b', 3.50)", "update items set price = 1.25 where id = 1")
    run(tmp_path, database_url)
    assert rows(database_url, "select id, name, price from raw_shop.items order by id") == [
        (1, "a", __import__("decimal").Decimal("1.25")), (2, "b", __import__("decimal").Decimal("3.50"))]
    assert rows(database_url, "select data_type from information_schema.columns where table_schema = 'raw_shop'"
                             " and table_name = 'items' and column_name = 'price'") == [("numeric",)]
    assert "column items.price is new in the source" in caplog.text


KILLS = 20


def fingerprint(url: str, table: str) -> tuple:
    """Rows, distinct keys and a checksum of every value, in key order."""
    return tuple(rows(url, f"select count(*), count(distinct id), md5(coalesce(string_agg("
                           f"id || ':' || v || ':' || coalesce(payload, '~'), ',' order by id), ''))"
                           f" from {table}")[0])


def test_sigkill_at_random_points_of_snapshots_and_streams_loses_and_duplicates_nothing(
        tmp_path, cdc_source, database_url):
    rng = random.Random(18)
    execute(cdc_source, "create table events (id bigint primary key, v int not null, payload text)",
            "insert into events select g, 0, md5(g::text) from generate_series(1, 60000) g")
    write_project(tmp_path, "tables: [events]\n")
    next_id = [60_001]

    def load(refresh: bool) -> None:
        project = load_project(tmp_path / "headwater.yaml", registry())
        source = project.source("shop")
        result = load_source(project, source, registry().get(source.connector),
                             PostgresAddress.from_url(database_url),
                             Reload(full_refresh={"shop": frozenset()}) if refresh else None)
        assert result.ok, result.error

    def change(number: int) -> None:  # changes of every kind, in several transactions
        count = rng.randint(2_000, 20_000)
        execute(cdc_source,
                f"insert into events select g, 1, md5(random()::text) from generate_series({next_id[0]},"
                f" {next_id[0] + count - 1}) g",
                f"update events set v = v + 1, payload = payload || 'u' where id % {rng.randint(7, 50)} = 0",
                f"delete from events where id % {rng.randint(60, 200)} = {rng.randint(0, 59)}",
                f"update events set id = id + 10000000 where id = {rng.randint(1, 60000)}")
        next_id[0] += count

    def check(number: int) -> None:
        assert fingerprint(database_url, "raw_shop.events") == fingerprint(cdc_source, "events"), f"round {number}"

    # The first round's kill falls on the first snapshot; rounds 6 and 13 start with a new snapshot of the source.
    killed = kill_repeatedly(load, change, check, KILLS, seed=18, workdir=tmp_path, refresh_rounds=(6, 13))
    assert killed == KILLS


def slots_of(url: str) -> list[str]:
    return [name for (name,) in rows(url, "select slot_name from pg_replication_slots"
                                          " where database = current_database() order by 1")]


def test_a_dropped_slot_is_said_and_a_full_refresh_streams_again_from_a_new_snapshot(
        tmp_path, cdc_source, database_url, monkeypatch, capsys):
    from headwater.cli import main as headwater

    execute(cdc_source, "create table items (id int primary key, name text)",
            "insert into items select g, 'n' || g from generate_series(1, 100) g")
    write_project(tmp_path, "tables: [items]\n")
    run(tmp_path, database_url)
    assert slots_of(cdc_source) == ["headwater_shop"]
    monkeypatch.setenv("HEADWATER_CONFIG", str(tmp_path / "headwater.yaml"))
    assert headwater(["cdc", "drop-slot", "shop", "--yes"]) == 0
    said = " ".join(capsys.readouterr().out.split())
    assert "Dropped replication slot headwater_shop of shop" in said
    assert "`headwater run --full-refresh shop`" in said
    assert slots_of(cdc_source) == []

    execute(cdc_source, "delete from items where id <= 10", "insert into items values (500, 'new')")
    project = load_project(tmp_path / "headwater.yaml", registry())
    source = project.source("shop")
    failed = load_source(project, source, registry().get("postgres_cdc"), PostgresAddress.from_url(database_url))
    assert failed.error == ("SlotError: replication slot 'headwater_shop' is gone from the source database; changes "
                            "after the last load may be lost: take a new snapshot with `headwater run "
                            "--full-refresh shop`, which creates the slot again")
    refreshed = load_source(project, source, registry().get("postgres_cdc"), PostgresAddress.from_url(database_url),
                            Reload(full_refresh={"shop": frozenset()}))
    assert refreshed.ok, refreshed.error
    assert slots_of(cdc_source) == ["headwater_shop_1"]  # a new generation of the slot
    execute(cdc_source, "update items set name = 'after' where id = 500")
    run(tmp_path, database_url)
    source_rows, raw = source_and_raw(cdc_source, database_url, "items", "id, name")
    assert raw == source_rows and len(raw) == 91


def test_the_slot_moves_to_what_raw_committed_once_the_load_is_recorded(tmp_path, cdc_source, database_url):
    from headwater.load.pipeline import open_pipeline

    execute(cdc_source, "create table items (id int primary key, name text)", "insert into items values (1, 'a')")
    write_project(tmp_path, "tables: [items]\n")
    run(tmp_path, database_url)
    execute(cdc_source, "insert into items values (2, 'b')")
    result = run(tmp_path, database_url)
    assert result.lag is not None and result.lag["behind_seconds"] == 0.0 and result.lag["changes"] == 1
    project = load_project(tmp_path / "headwater.yaml", registry())
    pipeline = open_pipeline(project, project.source("shop"), PostgresAddress.from_url(database_url))
    committed = pipeline.state["sources"]["postgres_cdc"]["resources"]["items"]["cdc_position"]
    confirmed = rows(cdc_source, "select confirmed_flush_lsn::text from pg_replication_slots"
                                 " where slot_name = 'headwater_shop'")[0][0]
    assert confirmed == committed


def test_check_creates_nothing_and_says_what_a_server_without_logical_decoding_needs(
        tmp_path, cdc_source, monkeypatch):
    from headwater.load.checks import check_source
    from tests.conftest import fresh_database

    execute(cdc_source, "create table items (id int primary key)")
    write_project(tmp_path, "tables: [items]\n")
    project = load_project(tmp_path / "headwater.yaml", registry())
    ready = check_source(project, project.source("shop"), registry().get("postgres_cdc"))
    assert (ready.ok, ready.detail) == (True, "no rows yet in items")
    assert slots_of(cdc_source) == [] and rows(cdc_source, "select count(*) from pg_publication") == [(0,)]

    with fresh_database("hw_cdc_replica") as replica:  # the shared test server runs wal_level=replica
        execute(replica, "create table items (id int primary key)")
        monkeypatch.setenv(SOURCE_VARIABLE, replica)
        project = load_project(tmp_path / "headwater.yaml", registry())
        refused = check_source(project, project.source("shop"), registry().get("postgres_cdc"))
    assert not refused.ok
    assert refused.detail == ("failed while reading 'items': SlotError: the source database runs wal_level = replica: "
                              "set wal_level = logical in postgresql.conf and restart it (docs/streaming.md)")


def test_a_dropped_source_column_keeps_its_last_values_in_raw_and_is_said(tmp_path, cdc_source, database_url, caplog):
    execute(cdc_source, "create table items (id int primary key, name text, legacy text)",
            "insert into items values (1, 'a', 'old-1'), (2, 'b', 'old-2')")
    write_project(tmp_path, "tables: [items]\n")
    run(tmp_path, database_url)
    execute(cdc_source, "alter table items drop column legacy", "update items set name = 'renamed' where id = 1",
            "insert into items values (3, 'c')")
    run(tmp_path, database_url)
    assert rows(database_url, "select id, name, legacy from raw_shop.items order by id") == [
        (1, "renamed", "old-1"), (2, "b", "old-2"), (3, "c", None)]
    assert "column items.legacy was dropped in the source; raw keeps the column and each row's last value" in (
        caplog.text)


def test_a_source_column_that_changes_type_is_said_and_what_raw_cannot_hold_is_quarantined(
        tmp_path, cdc_source, database_url, caplog):
    execute(cdc_source, "create table items (id int primary key, qty int)", "insert into items values (1, 5)")
    write_project(tmp_path, "tables: [items]\n")
    run(tmp_path, database_url)
    execute(cdc_source, "alter table items alter column qty type text",
            "insert into items values (2, '7'), (3, 'many')")
    result = run(tmp_path, database_url)
    assert [(table.table, table.rows, table.quarantined) for table in result.tables] == [("items", 1, 1)]
    assert rows(database_url, "select id, qty from raw_shop.items order by id") == [(1, 5), (2, 7)]
    assert rows(database_url, "select reason from raw_shop.items__quarantine") == [
        ('Postgres refused the row for raw_shop_staging.items: invalid input syntax for type integer: "many"',)]
    assert ("column items.qty changed type in the source (bigint, now text); raw keeps bigint, and a value that "
            "does not fit it goes to the table's quarantine") in caplog.text


def test_scd2_keeps_each_batch_version_and_retires_deleted_keys(tmp_path, cdc_source, database_url):
    execute(cdc_source, "create table items (id int primary key, name text)",
            "insert into items values (1, 'a'), (2, 'b'), (3, 'c')")
    write_project(tmp_path, "tables: [items]\n", "items: {primary_key: id, write_disposition: scd2, "
                                                 "deleted_flag: _cdc_deleted}\n")
    run(tmp_path, database_url)
    execute(cdc_source, "update items set name = 'a2' where id = 1", "delete from items where id = 2")
    run(tmp_path, database_url)
    execute(cdc_source, "insert into items values (4, 'd')")
    run(tmp_path, database_url)
    history = rows(database_url, "select id, name, _valid_to is null from raw_shop.items order by id, _valid_from")
    assert history == [(1, "a", False), (1, "a2", True), (2, "b", False), (3, "c", True), (4, "d", True)]


def test_a_table_added_later_gets_its_own_snapshot_while_the_others_stream_on(tmp_path, cdc_source, database_url):
    execute(cdc_source, "create table a (id int primary key, v text)", "create table b (id int primary key, v text)",
            "insert into a values (1, 'a1')", "insert into b values (1, 'b1')")
    write_project(tmp_path, "tables: [a]\n")
    run(tmp_path, database_url)
    execute(cdc_source, "insert into a values (2, 'a2')", "insert into b values (2, 'b2')",
            "update b set v = 'b1!' where id = 1")
    write_project(tmp_path, "tables: [a, b]\n")
    run(tmp_path, database_url)  # a: its change; b: a snapshot from a temporary slot
    assert slots_of(cdc_source) == ["headwater_shop"]  # the temporary slot went with its session
    execute(cdc_source, "insert into b values (3, 'b3')", "delete from a where id = 1",
            "update b set v = 'b2!' where id = 2")
    run(tmp_path, database_url)
    for table in ("a", "b"):
        source_rows, raw = source_and_raw(cdc_source, database_url, table, "id, v")
        assert raw == source_rows, table
    assert rows(database_url, "select id, _cdc_op from raw_shop.b order by id") == [
        (1, "snapshot"), (2, "update"), (3, "insert")]

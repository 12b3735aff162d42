"""The dbt project and the Soda contracts against a scratch database with known raw rows.

One database is created per module with the raw tables dlt would load, the dbt
project is built into it once, and the tests check the marts' exact values, the
per-node results and the contract outcomes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from headwater.common.runtime import quiet_telemetry
from headwater.marts.quality import discover_contracts, verify_contracts
from headwater.marts.transform import run_dbt
from headwater.postgres.address import PostgresAddress
from tests.servers import postgres_server_url

quiet_telemetry()

REPO = Path(__file__).resolve().parents[2]
TRANSFORM_DIR = REPO / "transform"
QUALITY_DIR = REPO / "quality"

RAW_TABLES = """
create schema raw_shop_files;
create schema raw_shop_db;
create schema raw_shop_api;

create table raw_shop_files.orders (
    order_id bigint, customer_id bigint, product_id bigint, quantity bigint,
    unit_price double precision, status text, ordered_at timestamptz, updated_at timestamptz,
    _file_name text, _dlt_load_id text not null, _dlt_id text not null
);
create table raw_shop_db.customers (
    customer_id bigint, name text, email text, country text,
    created_at timestamptz, updated_at timestamptz,
    _dlt_load_id text not null, _dlt_id text not null
);
create table raw_shop_db.products (
    product_id bigint, name text, category text, price double precision, updated_at timestamptz,
    _dlt_load_id text not null, _dlt_id text not null
);
create table raw_shop_api.payments (
    payment_id bigint, order_id bigint, amount double precision, method text, status text,
    updated_at timestamptz, _dlt_load_id text not null, _dlt_id text not null
);
"""

# Customer 1: two kept orders and a cancelled one whose payment was refunded.
# Customer 2: an order paid only in part, and an order whose only payment was refunded.
# Customer 3: no orders at all.
RAW_ROWS = """
insert into raw_shop_db.customers values
    (1, 'Ada Lovelace', 'Ada@Example.COM', 'GB', '2024-01-01 08:00+00', '2024-01-01 08:00+00', '1', 'c1'),
    (2, 'Bo Berg', 'bo@example.com', 'SE', '2024-01-02 08:00+00', '2024-01-02 08:00+00', '1', 'c2'),
    (3, 'Cy Chen', 'cy@example.com', 'NL', '2024-01-03 08:00+00', '2024-01-03 08:00+00', '1', 'c3');

insert into raw_shop_db.products values
    (10, 'Widget', 'gadgets', 2.5, '2024-01-01 08:00+00', '1', 'p1'),
    (11, 'Gizmo', 'tools', 10, '2024-01-01 08:00+00', '1', 'p2');

insert into raw_shop_files.orders values
    (100, 1, 10, 2, 2.5, 'placed', '2024-02-01 10:00+00', '2024-02-01 10:00+00', 'orders_1.csv', '1', 'o1'),
    (101, 1, 11, 1, 10, 'shipped', '2024-02-03 10:00+00', '2024-02-04 10:00+00', 'orders_1.csv', '1', 'o2'),
    (102, 1, 10, 4, 2.5, 'cancelled', '2024-02-05 10:00+00', '2024-02-06 10:00+00', 'orders_2.csv', '1', 'o3'),
    (103, 2, 11, 3, 10, 'shipped', '2024-02-07 10:00+00', '2024-02-07 10:00+00', 'orders_2.csv', '1', 'o4'),
    (104, 2, 10, 1, 2.5, 'placed', '2024-02-08 10:00+00', '2024-02-08 10:00+00', 'orders_2.csv', '1', 'o5');

insert into raw_shop_api.payments values
    (1000, 100, 5, 'card', 'paid', '2024-02-01 10:05+00', '1', 'y1'),
    (1001, 101, 10, 'card', 'paid', '2024-02-03 10:05+00', '1', 'y2'),
    (1002, 102, 10, 'card', 'refunded', '2024-02-06 10:05+00', '1', 'y3'),
    (1003, 103, 20, 'bank_transfer', 'paid', '2024-02-07 10:05+00', '1', 'y4'),
    (1004, 104, 2.5, 'card', 'refunded', '2024-02-08 10:05+00', '1', 'y5');
"""

MODELS = {
    "stg_shop_files__orders",
    "stg_shop_db__customers",
    "stg_shop_db__products",
    "stg_shop_api__payments",
    "customers",
    "orders",
}
EXPECTED_CONTRACTS = [
    ("marts", "customers"),
    ("marts", "orders"),
    ("raw_shop_api", "payments"),
    ("raw_shop_db", "customers"),
    ("raw_shop_db", "products"),
    ("raw_shop_files", "orders"),
]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def address():
    """A fresh database holding the raw tables and rows above; dropped afterwards."""
    name = f"hw_test_tq_{uuid.uuid4().hex[:10]}"
    admin_url = f"{postgres_server_url()}/postgres"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    base = PostgresAddress.from_url(admin_url)
    scratch = PostgresAddress(base.host, base.port, base.user, base.password, name)
    try:
        with connect(scratch) as connection:
            connection.execute(RAW_TABLES)
            connection.execute(RAW_ROWS)
        yield scratch
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def build(address, tmp_path_factory):
    """`dbt build` of the project into the scratch database, run once for the module."""
    return run_dbt(
        ["build"],
        project_dir=TRANSFORM_DIR,
        state_dir=tmp_path_factory.mktemp("state"),
        address=address,
    )


def connect(address: PostgresAddress) -> psycopg.Connection:
    return address.connect(autocommit=True)


def fetch(address: PostgresAddress, query: str) -> list[dict]:
    with connect(address) as connection:
        cursor = connection.cursor(row_factory=psycopg.rows.dict_row)
        return cursor.execute(query).fetchall()


def test_dbt_build_succeeds_and_reports_every_node(build):
    assert build.success, build.error
    assert build.error is None
    assert build.failed_nodes == []
    assert build.warned_nodes == []

    models = {node.name: node for node in build.nodes if node.resource_type == "model"}
    assert set(models) == MODELS
    assert all(node.status == "success" for node in models.values())
    assert models["customers"].rows_affected == 3
    assert models["orders"].rows_affected == 5
    assert models["stg_shop_api__payments"].rows_affected is None  # a view has no row count

    tests = {node.name: node for node in build.nodes if node.resource_type == "test"}
    assert tests["unique_stg_shop_api__payments_payment_id"].status == "pass"
    assert tests["accepted_values_stg_shop_api__payments_status__paid__refunded"].status == "pass"
    assert tests["unique_customers_customer_id"].status == "pass"
    assert all(node.status == "pass" for node in tests.values())

    unit_tests = {node.name: node.status for node in build.nodes if node.resource_type == "unit_test"}
    assert unit_tests == {
        "customers_count_kept_orders_and_paid_revenue_only": "pass",
        "orders_are_paid_only_when_kept_payments_cover_the_total": "pass",
    }


def test_staging_and_mart_schemas_are_used_as_named(build, address):
    assert build.success, build.error
    relations = fetch(
        address,
        "select table_schema, table_name, table_type from information_schema.tables "
        "where table_schema in ('staging', 'marts', 'analytics') order by 1, 2",
    )
    assert [(r["table_schema"], r["table_name"], r["table_type"]) for r in relations] == [
        ("marts", "customers", "BASE TABLE"),
        ("marts", "orders", "BASE TABLE"),
        ("staging", "stg_shop_api__payments", "VIEW"),
        ("staging", "stg_shop_db__customers", "VIEW"),
        ("staging", "stg_shop_db__products", "VIEW"),
        ("staging", "stg_shop_files__orders", "VIEW"),
    ]


def test_customers_mart_values(build, address):
    assert build.success, build.error
    rows = fetch(address, "select * from marts.customers order by customer_id")
    assert rows == [
        {
            "customer_id": 1,
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "country": "GB",
            "orders_count": 2,  # the cancelled order 102 is not counted
            "lifetime_revenue": Decimal("15.00"),  # 5 + 10 paid; the 10 refunded is excluded
            "first_order_at": utc(2024, 2, 1, 10),
            "last_order_at": utc(2024, 2, 3, 10),
        },
        {
            "customer_id": 2,
            "name": "Bo Berg",
            "email": "bo@example.com",
            "country": "SE",
            "orders_count": 2,
            "lifetime_revenue": Decimal("20.00"),  # order 104's only payment was refunded
            "first_order_at": utc(2024, 2, 7, 10),
            "last_order_at": utc(2024, 2, 8, 10),
        },
        {
            "customer_id": 3,
            "name": "Cy Chen",
            "email": "cy@example.com",
            "country": "NL",
            "orders_count": 0,
            "lifetime_revenue": Decimal("0.00"),
            "first_order_at": None,
            "last_order_at": None,
        },
    ]


def test_orders_mart_values(build, address):
    assert build.success, build.error
    rows = fetch(
        address,
        "select order_id, customer_id, product_name, category, quantity, unit_price, "
        "order_total, status, ordered_at, paid_amount, is_paid from marts.orders order by order_id",
    )
    summary = [
        (r["order_id"], r["product_name"], r["order_total"], r["status"], r["paid_amount"], r["is_paid"])
        for r in rows
    ]
    assert summary == [
        (100, "Widget", Decimal("5.00"), "placed", Decimal("5.00"), True),
        (101, "Gizmo", Decimal("10.00"), "shipped", Decimal("10.00"), True),
        (102, "Widget", Decimal("10.00"), "cancelled", Decimal("0.00"), False),  # refunded
        (103, "Gizmo", Decimal("30.00"), "shipped", Decimal("20.00"), False),  # paid in part
        (104, "Widget", Decimal("2.50"), "placed", Decimal("0.00"), False),  # refunded
    ]
    first = rows[0]
    assert (first["customer_id"], first["category"], first["quantity"], first["unit_price"]) == (
        1,
        "gadgets",
        2,
        Decimal("2.50"),
    )
    assert first["ordered_at"] == utc(2024, 2, 1, 10)


def test_discover_contracts_finds_raw_tables_and_marts():
    contracts = discover_contracts(QUALITY_DIR)
    assert [(c.schema, c.table) for c in contracts] == EXPECTED_CONTRACTS
    assert all(c.path == QUALITY_DIR / "contracts" / c.schema / f"{c.table}.yml" for c in contracts)


def test_all_contracts_pass_on_good_data(build, address):
    assert build.success, build.error
    results = verify_contracts(QUALITY_DIR, address)
    assert [(r.schema, r.table) for r in results] == EXPECTED_CONTRACTS
    for result in results:
        assert result.passed, (result.dataset, result.error, result.failed_checks)
        assert result.error is None
        assert result.checks and all(check.outcome == "passed" for check in result.checks)

    payments = results[2]
    assert payments.check("row_count").measured == 5
    assert payments.check("row_count").threshold == "> 0"
    assert payments.check("duplicate", "payment_id").measured == 0
    assert payments.contract_path == QUALITY_DIR / "contracts" / "raw_shop_api" / "payments.yml"


def test_duplicate_payment_fails_the_payments_contract(build, address):
    assert build.success, build.error
    with connect(address) as connection:
        connection.execute(
            "insert into raw_shop_api.payments values "
            "(1003, 103, 20, 'bank_transfer', 'paid', '2024-02-07 10:05+00', '2', 'dup')"
        )
    try:
        results = verify_contracts(QUALITY_DIR, address, schemas={"raw_shop_api"})
    finally:
        with connect(address) as connection:
            connection.execute("delete from raw_shop_api.payments where _dlt_id = 'dup'")

    assert [(r.schema, r.table) for r in results] == [("raw_shop_api", "payments")]
    payments = results[0]
    assert payments.passed is False
    assert payments.error is None  # a failed check is not an execution error
    [failed] = payments.failed_checks
    assert (failed.name, failed.column, failed.outcome) == ("duplicate", "payment_id", "failed")
    assert failed.measured == 1
    assert failed.threshold == "= 0"
    assert payments.check("row_count").measured == 6


def test_contract_for_a_missing_table_fails_with_a_clear_error(address, tmp_path):
    quality_dir = tmp_path / "quality"
    (quality_dir / "contracts" / "raw_shop_api").mkdir(parents=True)
    shutil.copy(QUALITY_DIR / "datasource.yml", quality_dir / "datasource.yml")
    (quality_dir / "contracts" / "raw_shop_api" / "refunds.yml").write_text(
        "dataset: headwater/${env.HEADWATER_PG_DATABASE}/raw_shop_api/refunds\n"
        "columns:\n"
        "  - name: refund_id\n"
        "    checks:\n"
        "      - missing:\n"
    )
    [result] = verify_contracts(quality_dir, address)
    assert (result.schema, result.table, result.passed, result.checks) == ("raw_shop_api", "refunds", False, [])
    assert "raw_shop_api.refunds does not exist" in result.error


def test_run_dbt_reports_an_unreachable_database_as_a_failed_result(address, tmp_path):
    missing = PostgresAddress(address.host, address.port, address.user, address.password, address.database + "_x")
    environment_before = {name: os.environ.get(name) for name in missing.tool_env()}

    result = run_dbt(["build"], project_dir=TRANSFORM_DIR, state_dir=tmp_path, address=missing)

    assert result.success is False
    assert result.nodes == []
    assert f'database "{missing.database}" does not exist' in result.error
    # The connection variables are only set for the duration of the call.
    assert {name: os.environ.get(name) for name in missing.tool_env()} == environment_before

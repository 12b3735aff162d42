"""The daily flow end to end on the bundled shop: real dlt loads, dbt build, Soda contracts, Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal

import pytest

from headwater.example.session import project_shop
from headwater.plugins.manager import connector_registry
from headwater.project.config import load_project
from tests.conftest import copy_shop_project, query

pytestmark = pytest.mark.slow

RAW_TABLES = {
    ("shop_files", "orders"): ("raw_shop_files.orders", "order_id"),
    ("shop_db", "customers"): ("raw_shop_db.customers", "customer_id"),
    ("shop_db", "products"): ("raw_shop_db.products", "product_id"),
    ("shop_api", "payments"): ("raw_shop_api.payments", "payment_id"),
}


def expected_customer_marts(truth: dict) -> dict[int, tuple]:
    """customers mart computed independently from the simulator's ground truth."""
    order_customer = {order["order_id"]: order["customer_id"] for order in truth["orders"]}
    kept_orders = defaultdict(int)
    for order in truth["orders"]:
        if order["status"] != "cancelled":
            kept_orders[order["customer_id"]] += 1
    revenue = defaultdict(Decimal)
    for payment in truth["payments"]:
        if payment["status"] == "paid":
            revenue[order_customer[payment["order_id"]]] += Decimal(str(payment["amount"])).quantize(Decimal("0.01"))
    return {
        customer["customer_id"]: (customer["email"].lower(), customer["country"], kept_orders[customer["customer_id"]],
                                  revenue[customer["customer_id"]])
        for customer in truth["customers"]
    }


def assert_raw_equals_truth(database_url: str, truth: dict) -> None:
    for (_, table), (relation, key) in RAW_TABLES.items():
        rows = query(database_url, f"select count(*), count(distinct {key}) from {relation}")
        assert rows == [(len(truth[table]), len(truth[table]))], relation


def assert_marts_equal_truth(database_url: str, truth: dict) -> None:
    marts = {
        row[0]: (row[1], row[2], row[3], row[4])
        for row in query(
            database_url, "select customer_id, email, country, orders_count, lifetime_revenue from marts.customers"
        )
    }
    assert marts == expected_customer_marts(truth)


def test_daily_loads_everything_then_only_what_changed(shop_project, database_url, prefect_api, monkeypatch):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    from flows.daily import daily

    project = load_project(shop_project / "headwater.yaml", connector_registry())
    shop = project_shop(project)

    first = daily()
    truth = shop.truth()
    assert first.ok, first.failures
    assert first.rows_loaded("shop_files", "orders") == len(truth["orders"]) == 200
    assert first.rows_loaded("shop_db", "customers") == len(truth["customers"]) == 60
    assert first.rows_loaded("shop_db", "products") == len(truth["products"]) == 20
    assert first.rows_loaded("shop_api", "payments") == len(truth["payments"])
    assert_raw_equals_truth(database_url, truth)
    assert_marts_equal_truth(database_url, truth)
    assert {(c.schema, c.table) for c in first.contracts if c.passed} == {
        ("raw_shop_files", "orders"), ("raw_shop_db", "customers"), ("raw_shop_db", "products"),
        ("raw_shop_api", "payments"), ("marts", "customers"), ("marts", "orders"),
    }
    assert {node.name for node in first.dbt.nodes if node.resource_type == "model"} >= {"customers", "orders"}

    # A day passes in the shop: new rows and updated rows in every source.
    changes = shop.advance()
    updated_customer = min(changes.tables["customers"].updated)
    second = daily()
    truth = shop.truth()
    assert second.ok, second.failures
    for source, table in RAW_TABLES:
        expected = changes[table]["new"] + changes[table]["updated"]
        assert expected > 0 or table == "products"
        assert second.rows_loaded(source, table) == expected, (source, table, changes.counts())
    assert_raw_equals_truth(database_url, truth)
    assert_marts_equal_truth(database_url, truth)
    current = next(c for c in truth["customers"] if c["customer_id"] == updated_customer)
    mart_row = query(database_url, "select email, country from marts.customers where customer_id = %s",
                     updated_customer)
    assert mart_row == [(current["email"].lower(), current["country"])]

    # Nothing changed: nothing is loaded, and nothing is lost.
    third = daily()
    assert third.ok, third.failures
    assert [(load.source, table.table, table.rows) for load in third.loads for table in load.tables] == [
        ("shop_files", "orders", 0), ("shop_db", "customers", 0), ("shop_db", "products", 0),
        ("shop_api", "payments", 0),
    ]
    assert_raw_equals_truth(database_url, truth)


def test_flow_runs_are_recorded_on_the_prefect_server(shop_project, database_url, prefect_api, monkeypatch):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    run = subprocess.run(
        [sys.executable, "-m", "flows.daily", "--advance-example", "2"],
        cwd=shop_project, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Run succeeded" in run.stdout
    assert "raw_shop_files.orders" in run.stdout and "marts.customers" in run.stdout
    assert "Starting temporary server" not in run.stdout + run.stderr  # it used the running server

    truth = project_shop(load_project(shop_project / "headwater.yaml", connector_registry())).truth()
    assert_raw_equals_truth(database_url, truth)

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    completed = [r for r in runs if r.state and r.state.is_completed() and r.parameters.get("advance_example") == 2]
    assert completed, [(r.name, r.state_name, r.parameters) for r in runs]


def test_failed_contract_makes_the_run_exit_non_zero(shop_project, database_url, prefect_api, monkeypatch):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    # Tighten a raw contract so today's data breaks it: the run must report it and fail.
    contract = shop_project / "quality" / "contracts" / "raw_shop_db" / "products.yml"
    original = contract.read_text()
    contract.write_text(original.replace("must_be_greater_than: 0", "must_be_greater_than: 1000", 1))
    assert contract.read_text() != original
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    run = subprocess.run([sys.executable, "-m", "flows.daily"], cwd=shop_project, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "Run failed" in run.stdout
    assert "contract raw_shop_db.products: row_count" in run.stdout
    assert "failed 5/6: row_count" in run.stdout  # the other checks still ran and passed


def completed_daily_runs(api_url: str) -> int:
    import prefect.settings
    from prefect.client.orchestration import get_client

    with prefect.settings.temporary_settings({prefect.settings.PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            return sum(1 for run in client.read_flow_runs() if run.state_name == "Completed")


def test_daily_finds_the_server_of_headwater_up_by_itself(local_stack, database_url):
    root, status = local_stack
    copy_shop_project(root)
    before = completed_daily_runs(status.prefect_api_url)
    env = {name: value for name, value in os.environ.items() if name not in ("PREFECT_API_URL", "HEADWATER_CONFIG")}
    env["HEADWATER_DATABASE_URL"] = database_url
    run = subprocess.run([sys.executable, "-m", "flows.daily"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Starting temporary server" not in run.stdout + run.stderr
    assert completed_daily_runs(status.prefect_api_url) == before + 1

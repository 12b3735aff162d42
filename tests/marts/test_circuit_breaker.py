"""A source failing its raw contract feeds no model this run; the other sources' marts still publish."""

from __future__ import annotations

import pytest

from headwater.example.session import project_shop
from headwater.plugins.manager import connector_registry
from headwater.project.config import load_project
from tests.conftest import query
from tests.marts import add_products_mart, change_product, model_names, rows, run_daily

pytestmark = pytest.mark.slow


def test_a_failing_source_is_held_back_and_the_others_publish(shop_project, database_url, prefect_api, monkeypatch):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    add_products_mart(shop_project)  # fed by shop_db only; orders and customers marts read all three sources

    first, completed = run_daily(monkeypatch)
    assert completed, first.failures
    assert first.publish.published == ["marts.customers", "marts.orders", "marts.products"]
    published_orders = rows(database_url, "marts.orders")
    published_customers = rows(database_url, "marts.customers")

    # A day passes (new rows in every source) and one product is renamed; the payments contract now fails.
    project_shop(load_project(shop_project / "headwater.yaml", connector_registry())).advance()
    change_product(shop_project, 1, name="Renamed widget")
    contract = shop_project / "quality" / "contracts" / "raw_shop_api" / "payments.yml"
    contract.write_text(contract.read_text().replace("must_be_greater_than: 0", "must_be_greater_than: 100000", 1))

    second, completed = run_daily(monkeypatch)
    assert not completed  # partial success still ends the run non-zero, with the reason
    assert second.rebuild.held_back_sources == ["shop_api"]
    assert second.rebuild.exclude == ["source:shop_api.payments+"]
    assert "contract raw_shop_api.payments failed: row_count=" in second.rebuild.held_back[0].reason
    assert any(line.startswith("held back shop_api: contract raw_shop_api.payments") for line in second.failures)

    built = model_names(second)
    assert {"stg_shop_db__products", "stg_shop_db__customers", "stg_shop_files__orders", "products"} <= built
    assert not built & {"stg_shop_api__payments", "orders", "customers"}  # both read payments
    assert second.publish.published == ["marts.products"]
    assert query(database_url, "select product_name from marts.products where product_id = 1") == [
        ("Renamed widget",)
    ]
    assert rows(database_url, "marts.orders") == published_orders
    assert rows(database_url, "marts.customers") == published_customers

    # The contract is fixed; no source has new rows, yet what was held back is rebuilt and published now.
    contract.write_text(contract.read_text().replace("must_be_greater_than: 100000", "must_be_greater_than: 0", 1))
    third, completed = run_daily(monkeypatch)
    assert completed, third.failures
    assert sum(table.loaded for load in third.loads for table in load.tables) == 0
    assert ("raw_shop_api", "payments") in third.rebuild.changed
    assert {"stg_shop_api__payments", "orders", "customers"} <= model_names(third)
    assert third.publish.published == ["marts.customers", "marts.orders"]
    assert rows(database_url, "marts.orders") != published_orders
    assert query(database_url, "select count(*) from headwater_ops.pending_rebuilds") == [(0,)]

    # Nothing pending and nothing new: dbt does not run at all.
    fourth, completed = run_daily(monkeypatch)
    assert completed, fourth.failures
    assert fourth.dbt is None

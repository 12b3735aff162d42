"""Only models downstream of tables that received rows are rebuilt; no new rows, no dbt at all."""

from __future__ import annotations

import pytest

from tests.marts import change_product, model_names, rows, run_daily

pytestmark = pytest.mark.slow


def test_only_what_changed_is_rebuilt(shop_project, database_url, prefect_api, monkeypatch):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)

    first, completed = run_daily(monkeypatch)
    assert completed, first.failures
    assert {"customers", "orders", "stg_shop_db__products"} <= model_names(first)
    assert first.publish.published == ["marts.customers", "marts.orders"]
    customers, orders = rows(database_url, "marts.customers"), rows(database_url, "marts.orders")

    # Nothing new in any source: no model runs, the published marts stay as they are.
    quiet, completed = run_daily(monkeypatch)
    assert completed, quiet.failures
    assert quiet.dbt is None and not quiet.rebuild.run
    assert quiet.publish.published == []
    assert rows(database_url, "marts.customers") == customers
    assert rows(database_url, "marts.orders") == orders

    # One product changes in the shop database: only what that table feeds is rebuilt.
    product_id = orders[0][2]
    change_product(shop_project, product_id, name="Renamed widget")
    one, completed = run_daily(monkeypatch)
    assert completed, one.failures
    assert one.rebuild.changed == [("raw_shop_db", "products")]
    assert one.rebuild.select == ["source:shop_db.products+"]
    assert model_names(one) == {"stg_shop_db__products", "orders"}
    assert one.publish.published == ["marts.orders"]
    assert rows(database_url, "marts.customers") == customers
    assert query_names(database_url, product_id) == ["Renamed widget"]

    # --full-build rebuilds every model even without new rows.
    full, completed = run_daily(monkeypatch, full_build=True)
    assert completed, full.failures
    assert {"customers", "orders", "stg_shop_api__payments", "stg_shop_files__orders"} <= model_names(full)
    assert full.publish.published == ["marts.customers", "marts.orders"]


def query_names(database_url: str, product_id: int) -> list[str]:
    from tests.conftest import query

    return [row[0] for row in query(
        database_url, "select distinct product_name from marts.orders where product_id = %s", product_id
    )]

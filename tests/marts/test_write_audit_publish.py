"""Marts are built in marts__audit, verified there, and published only when every blocking check passes."""

from __future__ import annotations

import pytest

from tests.conftest import query
from tests.marts import change_product, rows, run_daily

pytestmark = pytest.mark.slow

# The orders mart also promises a category on every order (the raw products contract does not check it),
# and the customers mart carries a warn-severity check that today's data misses.
CATEGORY_CHECK = """
  - name: category
    checks:
      - missing:
          missing_values: [""]
"""
WARN_CHECK = """
  - row_count:
      qualifier: aspiration  # a second row_count check needs its own identity
      name: at least a hundred thousand customers
      threshold:
        must_be_greater_than: 100000
        level: warn
"""
# A dbt test on the orders mart, for the gate on failed dbt nodes.
FORBIDDEN_NAME_TEST = "select * from {{ ref('orders') }} where product_name = 'Forbidden'\n"


def test_a_failing_mart_contract_leaves_the_published_marts_untouched(
    shop_project, database_url, prefect_api, monkeypatch
):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    contracts = shop_project / "quality" / "contracts" / "marts"
    (contracts / "orders.yml").write_text((contracts / "orders.yml").read_text() + CATEGORY_CHECK)
    customers_contract = contracts / "customers.yml"
    customers_contract.write_text(customers_contract.read_text().replace("\ncolumns:", WARN_CHECK + "\ncolumns:", 1))
    (shop_project / "transform" / "tests").mkdir()
    (shop_project / "transform" / "tests" / "no_forbidden_products.sql").write_text(FORBIDDEN_NAME_TEST)

    first, completed = run_daily(monkeypatch)
    assert completed, first.failures
    assert first.publish.published == ["marts.customers", "marts.orders"]
    # The warn-severity miss is reported and blocks nothing.
    warned = first.contract_for("marts", "customers").check("row_count:aspiration")
    assert (warned.severity, warned.outcome, warned.measured) == ("warn", "warned", 60)
    assert first.contract_for("marts", "customers").passed
    published_orders = rows(database_url, "marts.orders")
    published_customers = rows(database_url, "marts.customers")

    # Upstream, a product's category is blanked: raw contracts pass, the orders mart's contract does not.
    product_id = published_orders[0][2]
    expected_missing = sum(1 for row in published_orders if row[2] == product_id)
    change_product(shop_project, product_id, category="")
    broken, completed = run_daily(monkeypatch)
    assert not completed
    assert broken.contract_for("raw_shop_db", "products").passed
    audit = broken.contract_for("marts", "orders")
    assert not audit.passed
    assert [(c.name, c.column, c.outcome, c.measured) for c in audit.failed_checks] == [
        ("missing", "category", "failed", expected_missing)
    ]
    assert broken.publish.published == [] and broken.publish.withheld == ["marts.orders"]
    assert f"missing(category)={expected_missing}" in broken.publish.reason
    assert any(line.startswith("not published marts.orders") for line in broken.failures)
    assert rows(database_url, "marts.orders") == published_orders  # the published mart is untouched
    assert rows(database_url, "marts.customers") == published_customers
    # The rejected build stays in the audit schema for inspection.
    assert query(database_url, "select count(*) from marts__audit.orders where category = ''") == [
        (expected_missing,)
    ]

    # The category is back but a dbt test on the mart fails: a failed dbt node also blocks publishing.
    change_product(shop_project, product_id, category="gadgets", name="Forbidden")
    failed_test, completed = run_daily(monkeypatch)
    assert not completed
    assert [node.name for node in failed_test.dbt.failed_nodes] == ["no_forbidden_products"]
    assert failed_test.contract_for("marts", "orders").passed
    assert failed_test.publish.published == []
    assert "dbt build failed: no_forbidden_products" in failed_test.publish.reason
    assert rows(database_url, "marts.orders") == published_orders

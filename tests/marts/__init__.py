"""Selective rebuild, write-audit-publish and the circuit breaker, on copies of the shop project."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from headwater.example.session import project_shop
from headwater.plugins.manager import connector_registry
from headwater.project.config import load_project
from tests.conftest import query

# A mart fed by the shop database alone: it keeps being published when another source is held back.
PRODUCTS_MART_SQL = """\
select product_id, product_name, category, price
from {{ ref('stg_shop_db__products') }}
"""

PRODUCTS_MART_CONTRACT = """\
dataset: headwater/${env.HEADWATER_PG_DATABASE}/marts/products

checks:
  - row_count:
      threshold:
        must_be_greater_than: 0

columns:
  - name: product_id
    checks:
      - missing:
      - duplicate:
"""


def add_products_mart(project: Path) -> None:
    """Give the copied project a products mart (and its contract) that depends on shop_db only."""
    (project / "transform" / "models" / "marts" / "products.sql").write_text(PRODUCTS_MART_SQL)
    (project / "quality" / "contracts" / "marts" / "products.yml").write_text(PRODUCTS_MART_CONTRACT)


def shop_db(project: Path) -> Path:
    return project_shop(load_project(project / "headwater.yaml", connector_registry())).shop_db


def change_product(project: Path, product_id: int, **values) -> None:
    """Change one product in the shop's SQLite database, moving its cursor so the next load takes it."""
    assignments = ", ".join(f"{name} = ?" for name in values)
    with sqlite3.connect(shop_db(project)) as connection:
        connection.execute(
            f"update products set {assignments}, "
            "updated_at = (select datetime(max(updated_at), '+1 second') from products) where product_id = ?",
            (*values.values(), product_id),
        )


def rows(database_url: str, relation: str) -> list[tuple]:
    """Every row of a relation, in a stable order."""
    return query(database_url, f"select * from {relation} order by 1")


def model_names(summary) -> set[str]:
    """The dbt models this run built (empty when dbt did not run)."""
    if summary.dbt is None:
        return set()
    return {node.name for node in summary.dbt.nodes if node.resource_type == "model"}


def run_daily(monkeypatch, **parameters):
    """Run the daily flow in-process; return its summary (also when the run failed) and whether it completed."""
    import flows.daily
    from headwater.ops.summary import print_summary

    seen = []

    def keep_and_print(summary, console=None):
        seen.append(summary)
        print_summary(summary, console)

    # A failed run raises inside the flow; the summary it printed is the record the test reads.
    monkeypatch.setattr(flows.daily, "print_summary", keep_and_print)
    state = flows.daily.daily(**parameters, return_state=True)
    assert seen, state
    return seen[-1], state.is_completed()

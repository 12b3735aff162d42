"""`dbt docs generate` runs for the lineage only when what it reads changed: dbt files or table columns."""

from __future__ import annotations

import json

import psycopg
import pytest

from headwater.lineage.build import build_lineage
from headwater.lineage.dbt_artifacts import INPUTS_FILE
from headwater.marts.transform import docs_target_dir

pytestmark = pytest.mark.slow


def generated_at(project) -> int:
    return (docs_target_dir(project.state_dir) / "manifest.json").stat().st_mtime_ns


def test_docs_are_generated_again_only_when_dbt_files_or_columns_change(loaded_shop):
    project, address = loaded_shop.project, loaded_shop.address
    first = build_lineage(project, address)
    stamp = generated_at(project)
    assert (docs_target_dir(project.state_dir) / INPUTS_FILE).is_file()

    again = build_lineage(project, address)
    assert generated_at(project) == stamp  # nothing changed: dbt was not run
    assert sorted(again.tables) == sorted(first.tables)

    # A new model is a changed dbt file.
    model = project.transform_dir / "models" / "staging" / "stg_product_names.sql"
    model.write_text("select product_id, product_name from {{ ref('stg_shop_db__products') }}\n")
    with_model = build_lineage(project, address)
    assert generated_at(project) > stamp
    assert "staging.stg_product_names" in with_model.tables
    stamp = generated_at(project)

    # A column added to a raw table is a change of what dbt's catalog reads.
    with psycopg.connect(loaded_shop.database_url, autocommit=True) as connection:
        connection.execute("alter table raw_shop_db.products add column shelf text")
    build_lineage(project, address)
    assert generated_at(project) > stamp
    catalog = json.loads((docs_target_dir(project.state_dir) / "catalog.json").read_text())
    products = next(node for node in catalog["sources"].values() if node["metadata"]["name"] == "products"
                    and node["metadata"]["schema"] == "raw_shop_db")
    assert "shelf" in products["columns"]

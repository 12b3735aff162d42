"""The per-source and build flows run in this process: a source that is not configured, or a full refresh of
another source, is refused before anything is written; a load leaves its tables pending and builds no marts; a
build with nothing pending builds nothing and says so."""

from __future__ import annotations

import uuid

import pytest

from flows.build import NOTHING_PENDING, build_flow
from flows.run_record import UnknownSource
from flows.source import load_source_flow
from headwater.example.session import project_shop
from headwater.load.reload import ReloadError
from headwater.plugins.manager import connector_registry
from headwater.project.config import load_project
from tests.conftest import query

OPS_SCHEMA = "select count(*) from information_schema.schemata where schema_name = 'headwater_ops'"


def test_an_unknown_source_is_refused_naming_the_configured_ones_before_anything_is_written(
    shop_project, database_url, prefect_api, monkeypatch
):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    with pytest.raises(UnknownSource) as refused:
        load_source_flow(source="shop_crm")
    assert str(refused.value) == (f"source `shop_crm` is not configured in {shop_project / 'headwater.yaml'}; its "
                                  "sources are shop_files, shop_db, shop_api.")
    assert query(database_url, OPS_SCHEMA) == [(0,)]
    assert not (shop_project / ".headwater" / "example").exists()  # not even the example shop was started


def test_a_full_refresh_of_another_source_is_refused_before_anything_is_written(
    shop_project, database_url, prefect_api, monkeypatch
):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    with pytest.raises(ReloadError) as refused:
        load_source_flow(source="shop_db", full_refresh=["shop_files.orders"])
    assert str(refused.value) == ("full_refresh shop_files.orders: this run loads shop_db only; give shop_db or "
                                  "shop_db.TABLE")
    assert query(database_url, OPS_SCHEMA) == [(0,)]


def test_a_build_with_nothing_pending_runs_no_dbt_and_says_so(shop_project, database_url, prefect_api, monkeypatch,
                                                                capsys):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    summary = build_flow()
    assert summary.ok, summary.failures
    assert (summary.marts_left, summary.rebuild, summary.dbt) == (NOTHING_PENDING, None, None)
    assert NOTHING_PENDING in " ".join(capsys.readouterr().out.split())
    assert query(database_url, "select flow_name, status, started_by like 'manual:%' from headwater_ops.runs") == [
        ("build", "succeeded", True)]
    assert query(database_url, "select count(*) from information_schema.schemata where schema_name = 'marts'") == [
        (0,)]


def test_a_source_run_outside_a_deployment_loads_and_leaves_its_tables_pending_for_the_build(
    shop_project, database_url, prefect_api, monkeypatch, capsys
):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    config = shop_project / "headwater.yaml"
    # A limit of its own that does not exist on the server: the load does not wait for it.
    config.write_text(config.read_text() + f"deploy: {{destination_limit: missing-{uuid.uuid4().hex[:8]}}}\n")

    summary = load_source_flow(source="shop_db")

    truth = project_shop(load_project(config, connector_registry())).truth()
    rows = len(truth["customers"]) + len(truth["products"])
    assert summary.ok, summary.failures
    assert [load.source for load in summary.loads] == ["shop_db"]
    assert summary.marts_left == (f"Loaded {rows} rows; marts build on the `build` deployment, which now has "
                                  "raw_shop_db.customers, raw_shop_db.products pending.")
    assert summary.marts_left in " ".join(capsys.readouterr().out.split())
    assert query(database_url, "select count(*) from raw_shop_db.customers") == [(len(truth["customers"]),)]
    assert query(database_url, "select schema_name, table_name, since_run from headwater_ops.pending_rebuilds "
                               "order by 2") == [("raw_shop_db", "customers", summary.run_id),
                                                 ("raw_shop_db", "products", summary.run_id)]
    assert query(database_url, "select flow_name, status, rows_loaded from headwater_ops.runs") == [
        ("load-source", "succeeded", rows)]
    assert query(database_url, "select count(*) from information_schema.schemata where schema_name = 'marts'") == [
        (0,)]

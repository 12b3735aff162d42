"""Prefect artifacts of a daily run, read back from the session's Prefect server."""

from __future__ import annotations

import json
from uuid import UUID

import pytest

from flows.artifacts import artifact_key
from tests.conftest import query
from tests.ops.test_history import PRODUCTS, add_freshness


def test_keys_are_lowercase_with_dashes():
    assert artifact_key("Shop_Data EU", "loads") == "shop-data-eu-loads"


def read_artifacts(run_id: str) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
        )
    return {artifact.key: artifact for artifact in artifacts if artifact.key}  # keyless: Prefect's own


@pytest.mark.slow
def test_run_publishes_loads_table_and_quality_report(shop_project, database_url, prefect_api, monkeypatch):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    contract = shop_project / "quality" / "contracts" / "raw_shop_db" / "products.yml"
    contract.write_text(contract.read_text().replace("must_be_greater_than: 0", "must_be_greater_than: 1000", 1))
    add_freshness(shop_project, PRODUCTS, "{warn_after: 1h}")
    from flows.daily import RunFailed, daily

    with pytest.raises(RunFailed):
        daily()
    ((run_id,),) = query(database_url, "select run_id from headwater_ops.runs")
    artifacts = read_artifacts(run_id)
    assert {"shop-loads", "shop-quality"} <= set(artifacts)

    loads = artifacts["shop-loads"]
    assert loads.type == "table"
    rows = json.loads(loads.data) if isinstance(loads.data, str) else loads.data
    recorded = query(database_url, "select source, table_name, rows_read, rows_loaded, rows_quarantined "
                                   "from headwater_ops.table_loads where run_id = %s", run_id)
    assert {(r["source"], r["table"], r["read"], r["loaded"], r["quarantined"]) for r in rows} == set(recorded)
    assert all(r["duration_s"] >= 0 for r in rows)

    report = artifacts["shop-quality"]
    assert report.type == "markdown"
    assert "| raw_shop_db.products | failed |" in report.data
    assert "| raw_shop_db.products | row_count |  | failed | 20 | > 1000 |" in report.data
    assert "| raw_shop_db.products |" in report.data.split("## Freshness")[1]
    assert "| cursor:updated_at | warn_after 1.0h | warn |" in report.data

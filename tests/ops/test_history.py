"""Run history in headwater_ops after a real daily run, and the schema's own migrations."""

from __future__ import annotations

import pytest

from headwater.ops.history import MIGRATIONS, RunInfo, ensure_schema, start_run
from headwater.postgres.address import PostgresAddress
from tests.conftest import query


def add_freshness(project_root, table_line: str, sla: str) -> None:
    """Give one table of the copied shop config a freshness SLA (table_line: its flow-style line)."""
    config = project_root / "headwater.yaml"
    text = config.read_text()
    assert text.count(table_line) == 1, table_line
    config.write_text(text.replace(table_line, table_line.rstrip("}") + f", freshness: {sla}}}"))


PRODUCTS = "products: {primary_key: product_id, cursor: updated_at}"


def test_schema_is_created_once_and_a_started_run_is_visible(database_url):
    address = PostgresAddress.from_url(database_url)
    for _ in range(2):  # idempotent: the second call applies nothing
        with address.connect() as connection:
            assert ensure_schema(connection) == len(MIGRATIONS)
    versions = query(database_url, "select version from headwater_ops.schema_version order by version")
    assert versions == [(version,) for version in range(1, len(MIGRATIONS) + 1)]  # each step applied once
    run = RunInfo.current("daily")
    start_run(address, run)
    start_run(address, run)  # a retry of the same flow run keeps one row
    rows = query(database_url, "select run_id, status, ended_at, started_by from headwater_ops.runs")
    assert [(r[0], r[1], r[2]) for r in rows] == [(run.run_id, "running", None)]
    assert rows[0][3].startswith("manual:")


@pytest.mark.slow
def test_daily_run_is_recorded(shop_project, database_url, prefect_api, monkeypatch):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    add_freshness(shop_project, PRODUCTS, "{warn_after: 1h}")
    from flows.daily import daily

    summary = daily(advance_example=1)
    assert summary.ok, summary.failures
    assert summary.run_id

    runs = query(database_url, "select run_id, flow_name, status, ended_at is not null, rows_loaded, parameters, "
                               "headwater_version from headwater_ops.runs")
    assert len(runs) == 1
    run_id, flow_name, status, ended, rows_loaded, parameters, version = runs[0]
    assert (run_id, flow_name, status, ended) == (summary.run_id, "daily", "succeeded", True)
    assert parameters["advance_example"] == 1 and version
    assert rows_loaded == sum(t.rows for load in summary.loads for t in load.tables)

    loads = query(database_url, "select source, table_name, rows_read, rows_loaded, rows_quarantined, "
                                "cardinality(load_ids) from headwater_ops.table_loads where run_id = %s", run_id)
    expected = {
        (load.source, t.table): (t.read, t.loaded, t.quarantined) for load in summary.loads for t in load.tables
    }
    assert {(s, t): (r, loaded, q) for s, t, r, loaded, q, _ in loads} == expected
    assert all(ids >= 1 for *_, ids in loads)
    assert expected[("shop_db", "customers")][1] > 0

    checks = query(database_url, "select contract, check_name, outcome from headwater_ops.check_results "
                                 "where run_id = %s", run_id)
    assert len(checks) == sum(len(c.checks) for c in summary.contracts) > 0
    assert ("raw_shop_db.products", "row_count", "passed") in checks

    nodes = query(database_url, "select unique_id, resource_type, status from headwater_ops.dbt_nodes "
                                "where run_id = %s", run_id)
    assert len(nodes) == len(summary.dbt.nodes) > 0
    assert any(resource_type == "model" for _, resource_type, _ in nodes)

    freshness = query(database_url, "select source, table_name, basis, status, breached, age_seconds "
                                    "from headwater_ops.freshness where run_id = %s", run_id)
    assert [row[:5] for row in freshness] == [("shop_db", "products", "cursor:updated_at", "warn", True)]
    assert freshness[0][5] > 3600


def test_a_table_marked_again_while_a_build_runs_stays_pending_for_the_next_build(database_url):
    """A per-source load commits rows and marks its table while the build deployment is building from the marks it
    read: the build forgets only those, so the new rows are built next time instead of being forgotten."""
    from headwater.marts.rebuild import RebuildPlan
    from headwater.ops.pending import pending_marks, pending_relations, remember_pending, settle
    from headwater.ops.summary import RunSummary

    address = PostgresAddress.from_url(database_url)
    remember_pending(address, [("raw_api", "payments"), ("raw_db", "customers")], "load-1")
    read = pending_marks(address)  # the build starts from these
    remember_pending(address, [("raw_api", "payments")], "load-2")  # a load committed during the build
    built = RunSummary(rebuild=RebuildPlan(changed=sorted(read)))
    settle(address, sorted(read), built, "build-1", read)

    assert pending_relations(address) == [("raw_api", "payments")]
    assert query(database_url, "select since_run from headwater_ops.pending_rebuilds") == [("load-1",)]
    settle(address, [("raw_api", "payments")], built, "build-2", pending_marks(address))
    assert pending_relations(address) == []

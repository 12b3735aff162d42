"""PII exposure in daily runs: found from the lineage, printed, recorded, warned about or failing the run.

The end-to-end test runs the daily flow three times on one copy of the bundled shop (whose mart
publishes customers' name and email as they are), then fixes the mart and the config.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import types

import pytest
from rich.console import Console

from headwater.lineage.model import ColumnRef
from headwater.lineage.pii import PiiExposure
from headwater.ops.summary import RunSummary, print_site, print_summary
from tests.conftest import query
from tests.ops.test_alerts import add_alerts, webhook  # noqa: F401 (webhook is a fixture)

RAW_OR_RESOURCE = {"email": ("raw_shop_db.customers.email", "source:shop_db.customers.email"),
                   "name": ("raw_shop_db.customers.name", "source:shop_db.customers.name")}


def exposure(column: str, source: str) -> PiiExposure:
    path = [ColumnRef.parse(source), ColumnRef.parse(column)]
    return PiiExposure(path[1], [path[0]], path, fix="hash it in the model (md5(email)), or drop it from marts.x")


def printed(summary: RunSummary) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    print_summary(summary, console)
    print_site(summary, console)  # the flow prints it last, once the site is written
    return console.export_text()


def test_warn_reports_exposures_and_keeps_the_run_green():
    summary = RunSummary(pii=[exposure("marts.x.email", "raw_s.t.email")])
    assert summary.ok
    text = printed(summary)
    assert "PII reaching published marts" in text
    assert re.search(r"marts\.x\.email\s+│\s+raw_s\.t\.email\s+│\s+hash it in the model", text)
    assert "Warning 1 published column(s) carry unmasked PII (catalog.pii_exposure: warn" in text
    assert "Run succeeded" in text


def test_fail_makes_each_exposure_a_failure_and_an_unbuilt_lineage_too():
    summary = RunSummary(pii=[exposure("marts.x.email", "raw_s.t.email")], pii_action="fail")
    assert summary.failures == ["PII exposed: marts.x.email (from raw_s.t.email)"]
    assert "  - PII exposed: marts.x.email (from raw_s.t.email)" in printed(summary)

    warned = RunSummary(lineage_error="RuntimeError: dbt [docs generate] failed")
    assert warned.ok
    assert "Warning lineage could not be built: RuntimeError: dbt [docs generate] failed" in printed(warned)
    failing = RunSummary(lineage_error="RuntimeError: boom", pii_action="fail")
    assert failing.failures == ["lineage could not be built: RuntimeError: boom (PII exposure not checked)"]


def test_site_link_is_the_last_line(tmp_path):
    index = tmp_path / "site" / "index.html"
    text = printed(RunSummary(site=index)).rstrip().splitlines()
    assert text[-1] == f"Catalog site: {index.resolve().as_uri()}"
    assert "catalog site could not be written: OSError: full" in printed(RunSummary(site_error="OSError: full"))


def test_a_lineage_that_cannot_be_built_is_reported_not_raised(prefect_api, monkeypatch, tmp_path):
    """The real Prefect task fails (Prefect shows it); the flow reports it and still completes."""
    from prefect import flow

    from flows.daily import check_pii
    from headwater.project.config import CatalogConfig, ProjectConfig

    def build_lineage(project, address, *, refresh=True, progress=None):
        raise RuntimeError("manifest.json not found")

    monkeypatch.setitem(sys.modules, "headwater.lineage.build", types.SimpleNamespace(build_lineage=build_lineage))
    project = ProjectConfig(path=tmp_path / "headwater.yaml", name="t", sources=(),
                            catalog=CatalogConfig(pii_exposure="warn"))
    summary = RunSummary()

    @flow(name="pii-probe")
    def probe():
        return check_pii(project, None, summary, logging.getLogger("test"))

    state = probe(return_state=True)
    assert state.is_completed() and state.result() is None
    assert summary.lineage_error == "RuntimeError: manifest.json not found"
    assert summary.ok and summary.pii == []


def set_catalog(project_root, block: str) -> None:
    """Append `catalog:` to the copied config, or replace the one appended before."""
    config = project_root / "headwater.yaml"
    text = re.sub(r"\ncatalog: .*\n", "\n", config.read_text())
    config.write_text(text + f"\ncatalog: {block}\n")


def exposure_lines(output: str) -> dict[str, str]:
    """Rows of the printed 'PII reaching published marts' table: mart column -> the rest of its first line."""
    table = output.split("PII reaching published marts", 1)[1]
    rows = {}
    for line in table.splitlines():
        match = re.match(r"│\s*(marts\.\S+)\s*│(.*)", line)
        if match:
            rows[match.group(1)] = match.group(2)
    return rows


@pytest.mark.slow
def test_daily_runs_find_record_and_act_on_pii_exposure(
    shop_project, database_url, prefect_api, monkeypatch, capsys, webhook  # noqa: F811
):
    from flows.daily import RunFailed, daily

    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    url, received = webhook
    monkeypatch.setenv("ALERT_WEBHOOK_URL", url)
    add_alerts(shop_project, 'webhook: {url: "${ALERT_WEBHOOK_URL}"}')

    # 1. warn (the default) with the catalog site: the example's mart exposes name and email; the run passes.
    set_catalog(shop_project, "{site_after_run: true}")
    first = daily()
    output = capsys.readouterr().out
    assert first.ok, first.failures
    assert {str(e.column) for e in first.pii} == {"marts.customers.email", "marts.customers.name"}
    rows = exposure_lines(output)
    for column in ("email", "name"):
        assert any(source in rows[f"marts.customers.{column}"] for source in RAW_OR_RESOURCE[column]), output
        assert "hash it in the model" in rows[f"marts.customers.{column}"]
    assert "published column(s) carry unmasked PII (catalog.pii_exposure: warn" in output
    assert received == []  # a warning is not an alert
    recorded = query(database_url, "select mart_column, sources, path, action from headwater_ops.pii_exposures "
                                   "where run_id = %s order by mart_column", first.run_id)
    assert [(column, action) for column, _, _, action in recorded] == [
        ("marts.customers.email", "warn"), ("marts.customers.name", "warn")]
    for column, sources, path, _ in recorded:
        assert sources and sources[0] in RAW_OR_RESOURCE[column.rsplit(".", 1)[1]]
        assert path[0] == sources[0] and path[-1] == column
    # The catalog site was written after the run was recorded, and its link ends the output.
    assert first.site is not None and first.site.exists(), first.site_error
    assert output.rstrip().splitlines()[-1] == f"Catalog site: {first.site.resolve().as_uri()}"

    # 2. fail: nothing new to load, the published marts still expose PII, so the run fails and alerts.
    set_catalog(shop_project, "{pii_exposure: fail}")
    with pytest.raises(RunFailed) as failed:
        daily()
    output = capsys.readouterr().out
    assert "PII exposed: marts.customers.email (from " in str(failed.value)
    assert "Run failed" in output and "  - PII exposed: marts.customers.name (from " in output
    ((run_id, status, failures),) = query(
        database_url, "select run_id, status, failures from headwater_ops.runs where run_id <> %s", first.run_id)
    assert status == "failed" and any(f.startswith("PII exposed: marts.customers.email") for f in failures)
    assert query(database_url, "select count(*), min(action) from headwater_ops.pii_exposures where run_id = %s",
                 run_id) == [(2, "fail")]
    (event,) = received
    assert event["kind"] == "run_failed" and "PII exposed: marts.customers." in event["message"]

    # 3. Hash email in the mart, mask name at load with a pii step: nothing exposed, the failing run passes.
    # (The step masks rows loaded from now on; reloading the table would mask the old rows too.)
    mart = shop_project / "transform" / "models" / "marts" / "customers.sql"
    sql = mart.read_text()
    assert sql.count("customers.email,") == 1
    mart.write_text(sql.replace("customers.email,", "md5(customers.email) as email,"))
    config = shop_project / "headwater.yaml"
    text = config.read_text()
    assert text.count("- normalise: {email: lower, country: upper}\n") == 1
    config.write_text(text.replace("- normalise: {email: lower, country: upper}\n",
                                   "- normalise: {email: lower, country: upper}\n          - pii: {name: mask}\n"))
    third = daily(full_build=True)
    output = capsys.readouterr().out
    assert third.ok, third.failures
    assert third.pii == [] and "PII reaching published marts" not in output
    emails = query(database_url, "select email from marts.customers")
    assert emails and all(re.fullmatch(r"[0-9a-f]{32}", email) for (email,) in emails)
    assert query(database_url, "select count(*) from headwater_ops.pii_exposures where run_id = %s",
                 third.run_id) == [(0,)]
    assert len(received) == 1  # no new alert

    # Every run left its OpenLineage event; the last one shows email hashed on its way into the mart.
    from headwater.lineage.openlineage import _run_uuid

    events = [json.loads(line) for line in (shop_project / ".headwater" / "openlineage" / "events.jsonl")
              .read_text().splitlines()]
    assert [event["run"]["runId"] for event in events] == [
        _run_uuid(first.run_id), _run_uuid(run_id), _run_uuid(third.run_id)]
    customers = next(output for output in events[-1]["outputs"] if output["name"].endswith(".marts.customers"))
    inputs = customers["facets"]["columnLineage"]["fields"]["email"]["inputFields"]
    direct = [(field["name"].rsplit(".", 2)[-2:], field["field"], transformation["masking"])
              for field in inputs for transformation in field["transformations"] if transformation["type"] == "DIRECT"]
    assert direct == [(["staging", "stg_shop_db__customers"], "email", True)]

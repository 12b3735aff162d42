"""`headwater deploy --run` against the server PREFECT_API_URL names: pool created, deployment registered, one
run Completed; and options that do not fit prefect.yaml stopped before any server is involved."""

from __future__ import annotations

import re
import uuid

import pytest

from headwater.cli import main
from tests.conftest import query

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.mark.slow
def test_deploy_run_registers_and_runs_once_on_the_prefect_api_url_server(
    shop_project, database_url, prefect_api, monkeypatch, capsys
):
    from prefect.client.orchestration import get_client

    # Names of their own: the session's server is shared with other tests.
    suffix = uuid.uuid4().hex[:8]
    pool, name = f"headwater-{suffix}", f"daily-{suffix}"
    prefect_file = shop_project / "prefect.yaml"
    text = prefect_file.read_text()
    renamed = text.replace("      name: headwater\n", f"      name: {pool}\n").replace("  - name: daily\n",
                                                                                   f"  - name: {name}\n")
    assert renamed.count(suffix) == 2
    prefect_file.write_text(renamed)
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")

    assert main(["deploy", "--run"]) == 0
    out = capsys.readouterr().out

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(f"daily/{name}")
        work_pool = client.read_work_pool(pool)
        run_id = re.search(rf"^Flow run\s+\S+ \(({UUID})\)\s*$", out, re.M).group(1)
        flow_run = client.read_flow_run(run_id)
    assert f"Prefect server: {prefect_api} (PREFECT_API_URL)" in out
    assert f"Work pool {pool} (process): created; workers online: 0" in out
    assert re.search(rf"daily/{name}\s+{deployment.id}\s+{pool}\s+0 6 \* \* \* \(UTC\)", out), out
    assert f"of daily/{name} started, in work queue manual-runs of pool {pool}." in out
    assert re.search(r"State\s+Completed", out), out
    assert work_pool.type == "process"
    assert (flow_run.deployment_id, flow_run.work_queue_name, flow_run.state_name) == (
        deployment.id, "manual-runs", "Completed")
    assert query(database_url, "select started_by, status from headwater_ops.runs") == [
        (f"deployment:{name}", "succeeded")]


def test_run_of_an_unknown_deployment_names_the_ones_prefect_yaml_has(shop_project, monkeypatch, capsys):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # never reached: the option is checked first
    assert main(["deploy", "--run", "hourly"]) == 1
    assert capsys.readouterr().err.replace("\n", " ") == (
        "error: --run hourly: prefect.yaml has no deployment of that name; it has daily. ")


def test_a_deployment_without_a_work_pool_is_reported_with_its_line(shop_project, capsys):
    prefect_file = shop_project / "prefect.yaml"
    prefect_file.write_text(prefect_file.read_text().replace("    work_pool: *local_process\n", ""))
    line = next(number for number, text in enumerate(prefect_file.read_text().splitlines(), 1)
                if text.startswith("  - name: daily"))
    assert main(["deploy"]) == 1
    assert capsys.readouterr().err.replace("\n", " ").strip() == (
        f"error: {prefect_file}:{line}: deployments[0].work_pool.name: missing; give the work pool its runs "
        "wait in, e.g. `work_pool: {name: headwater}`.")


def test_per_source_deployments_replace_prefect_yaml_s_for_run_and_worker(shop_project, monkeypatch, capsys):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # never reached: the options are checked first
    assert main(["deploy", "--per-source", "--run", "daily"]) == 1
    assert capsys.readouterr().err.replace("\n", " ") == (
        "error: --run daily: .headwater/prefect-per-source.yaml has no deployment of that name; it has "
        "load-shop_files, load-shop_db, load-shop_api, build. ")

    config = shop_project / "headwater.yaml"
    config.write_text(config.read_text() + "deploy: {per_source: true, pools: {shop_db: databases}}\n")
    assert main(["deploy", "--worker"]) == 1
    assert capsys.readouterr().err.replace("\n", " ") == (
        "error: --worker: .headwater/prefect-per-source.yaml uses the work pools headwater, databases; a worker "
        "serves one. Start one per pool with `prefect worker start --pool NAME`. ")

"""prefect.yaml: `prefect deploy --all` registers the daily deployment and a process worker runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import query

pytestmark = pytest.mark.slow

PREFECT = [sys.executable, "-m", "prefect"]


def prefect(args: list[str], cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([*PREFECT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_deploy_registers_daily_and_a_worker_runs_it(shop_project, database_url, prefect_api):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "HEADWATER_DATABASE_URL": database_url}
    env.pop("HEADWATER_CONFIG", None)  # the worker finds headwater.yaml in the deployment's folder
    prefect(["work-pool", "create", "headwater", "--type", "process", "--overwrite"], shop_project, env)
    prefect(["--no-prompt", "deploy", "--all"], shop_project, env)

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("daily/daily")
        assert deployment.work_pool_name == "headwater"
        assert deployment.entrypoint == "flows/daily.py:daily"
        assert [schedule.schedule.cron for schedule in deployment.schedules] == ["0 6 * * *"]
        assert deployment.parameters == {"advance_example": 0}

    started = prefect(["deployment", "run", "daily/daily", "--param", "advance_example=1"], shop_project, env)
    assert "Created flow run" in started.stdout
    prefect(["worker", "start", "--pool", "headwater", "--run-once"], shop_project, env, timeout=600)

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    ours = [run for run in runs if run.deployment_id == deployment.id]
    # The schedule has queued the coming mornings; the run asked for by hand has finished.
    assert {run.state_name for run in ours if run.parameters == {"advance_example": 0}} == {"Scheduled"}
    assert [run.state_name for run in ours if run.parameters == {"advance_example": 1}] == ["Completed"]
    # Day 0 and day 1 of the shop landed through the deployed flow.
    assert query(database_url, "select count(distinct _file_name) from raw_shop_files.orders") == [(2,)]

"""The README's Deploying section, pasted into a shell of a fresh copy of the project: `headwater up`,
`headwater deploy`, `headwater deploy --run`, Prefect's CLI queueing a run, and `headwater deploy --worker`
running it, all against the local server that `headwater up` started there."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO, query

pytestmark = pytest.mark.slow

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
RUN_WAIT_SECONDS = 600  # a deadline for a run that never ends, not a measure of speed


def deploying_blocks() -> list[str]:
    """The ```bash blocks of the README's Deploying section, as written."""
    section = (REPO / "README.md").read_text().split("\n## Deploying\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)


def shell(block: str, cwd: Path, env: dict, timeout: int = 900) -> str:
    result = subprocess.run(["bash", "-e", "-c", block], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert result.returncode == 0, f"{block}\nexit {result.returncode}:\n{output}"
    return result.stdout


def test_the_readme_deploying_commands_work_in_a_fresh_project(shop_project, database_url):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from headwater.local import stack

    deploy_block, worker_block, prefect_cli_block = deploying_blocks()
    (shop_project / ".venv").symlink_to(Path(sys.prefix))  # what `make install` leaves in a clone
    env = {**os.environ, "HEADWATER_DATABASE_URL": database_url, "COLUMNS": "200"}
    env.pop("HEADWATER_CONFIG", None)  # the commands find ./headwater.yaml, as in a clone
    env.pop("PREFECT_API_URL", None)  # the server is the one `headwater up` starts
    worker = None
    try:
        out = shell(deploy_block, shop_project, env)
        api_url = stack.running_api_url(shop_project / ".headwater")
        assert api_url, "`headwater up` left no running server in .headwater/stack.json"
        assert f"Prefect server: {api_url} (headwater up)" in out, out
        assert "Work pool headwater (process): created; workers online: 0" in out
        assert "Work pool headwater (process): exists" in out  # the second `headwater deploy`
        assert "Run it once:  headwater deploy --run" in out
        assert f"or:  PREFECT_API_URL={api_url} prefect deployment run 'daily/daily'" in out
        assert re.search(r"State\s+Completed", out), out

        with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("daily/daily")
        row = rf"daily/daily\s+({UUID})\s+headwater\s+0 6 \* \* \* \(UTC\)"
        assert re.findall(row, out) == [str(deployment.id)] * 2  # both `headwater deploy` runs
        assert deployment.work_pool_name == "headwater"
        assert deployment.entrypoint == "flows/daily.py:daily"
        assert [schedule.schedule.cron for schedule in deployment.schedules] == ["0 6 * * *"]
        assert deployment.parameters == {"advance_example": 0}

        queued = shell(prefect_cli_block, shop_project, env)
        assert "daily/daily" in queued  # `prefect deployment ls`
        queued_id = re.search(rf"UUID: ({UUID})", queued).group(1)

        worker = subprocess.Popen(["bash", "-c", worker_block], cwd=shop_project, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            deadline = time.monotonic() + RUN_WAIT_SECONDS
            while not (run := client.read_flow_run(queued_id)).state.is_final() and time.monotonic() < deadline:
                time.sleep(2)
            runs = [run for run in client.read_flow_runs() if run.deployment_id == deployment.id]
        assert run.state_name == "Completed"
        # bash runs a one-command script in its own process: the pid is `headwater deploy --worker`'s.
        assert psutil.Process(worker.pid).cmdline()[-2:] == ["deploy", "--worker"]
        prefect_workers = psutil.Process(worker.pid).children()
        worker.send_signal(signal.SIGTERM)
        worker_out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0, worker_out
        assert "Worker stopped (exit code 0)." in worker_out
        assert not [process for process in prefect_workers if process.is_running()]
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        stack.down(shop_project / ".headwater")

    # One run from `headwater deploy --run` (its own queue), one queued by Prefect's CLI; the schedule's wait.
    finished = sorted((run.work_queue_name, run.state_name) for run in runs if run.state.is_final())
    assert finished == [("default", "Completed"), ("manual-runs", "Completed")]
    assert {run.state_name for run in runs if not run.state.is_final()} == {"Scheduled"}
    assert query(database_url, "select started_by, status from headwater_ops.runs") == [
        ("deployment:daily", "succeeded"), ("deployment:daily", "succeeded")]
    assert query(database_url, "select count(distinct _file_name) from raw_shop_files.orders") == [(1,)]

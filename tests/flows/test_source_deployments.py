"""Per-source deployments on a real Prefect server: `headwater deploy` with `deploy.per_source` registers
load-<source> for each source and build, on two work pools, with the destination's global concurrency limit;
two process workers, one per pool, run the loads, then the build publishes the marts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from headwater.cli import main
from headwater.deployments.runs import RUN_QUEUE
from headwater.example.session import project_shop
from headwater.plugins.manager import connector_registry
from headwater.project.config import load_project
from tests.conftest import query
from tests.flows.test_daily import assert_marts_equal_truth, assert_raw_equals_truth

pytestmark = pytest.mark.slow

RUN_WAIT_SECONDS = 300  # a deadline for a run that never ends, not a measure of speed
SOURCES = ("shop_files", "shop_db", "shop_api")


def start_worker(root: Path, pool: str, log: Path) -> subprocess.Popen:
    """A process worker of `pool` that asks for runs every second (Prefect's default is every 10 s).

    It takes runs from RUN_QUEUE only: scheduled runs that fall due meanwhile wait in the default queue.
    """
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process",
             "--work-queue", RUN_QUEUE, "--name", f"worker-{pool}"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )


def start_run(client, deployment):
    return client.create_flow_run_from_deployment(deployment.id, work_queue_name=RUN_QUEUE).id


def acquisitions(client, limit_id, expected: int) -> list[str]:
    """The flow runs that took a slot of the limit, from the server's events (recorded a moment after)."""
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    wanted = EventFilter(event=EventNameFilter(name=["prefect.concurrency-limit.acquired"]),
                         resource=EventResourceFilter(id=[f"prefect.concurrency-limit.{limit_id}"]))
    deadline = time.monotonic() + 30
    while True:
        events = client.read_events(filter=wanted, limit=50).events  # the server allows 50 a page
        if len(events) >= expected or time.monotonic() > deadline:
            return sorted(related.id.removeprefix("prefect.flow-run.") for event in events
                          for related in event.related if related.id.startswith("prefect.flow-run."))
        time.sleep(0.5)


def wait_for(client, run_ids: list, workers: list[subprocess.Popen]) -> list:
    deadline = time.monotonic() + RUN_WAIT_SECONDS
    while True:
        runs = [client.read_flow_run(run_id) for run_id in run_ids]
        if all(run.state.is_final() for run in runs) or time.monotonic() > deadline:
            return runs
        assert all(worker.poll() is None for worker in workers), "a worker exited"
        time.sleep(0.5)


def test_each_source_loads_on_its_pool_then_the_build_deployment_publishes_the_marts(
    shop_project, database_url, prefect_api, monkeypatch, capsys, tmp_path
):
    from prefect.client.orchestration import get_client

    # Names of their own: the session's server is shared with other tests.
    suffix = uuid.uuid4().hex[:8]
    files_pool, db_pool, limit = f"files-{suffix}", f"databases-{suffix}", f"destination-{suffix}"
    prefect_file = shop_project / "prefect.yaml"  # daily's pool is the default of every per-source deployment
    prefect_file.write_text(prefect_file.read_text().replace("      name: headwater\n", f"      name: {files_pool}\n"))
    config = shop_project / "headwater.yaml"
    config.write_text(config.read_text() + (
        "\ndeploy:\n"
        "  per_source: true\n"
        "  destination_slots: 2\n"
        f"  destination_limit: {limit}\n"
        f"  pools: {{shop_db: {db_pool}}}\n"
        "  schedules: {shop_api: '15 * * * *'}\n"
    ))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    project = load_project(config, connector_registry())
    # The loads start together and the first creates the shop; the others wait for it (its example lock).
    shop = project_shop(project)

    logs = {pool: tmp_path / f"worker-{pool}.log" for pool in (files_pool, db_pool)}
    workers = {pool: start_worker(shop_project, pool, log) for pool, log in logs.items()}  # they start meanwhile
    try:
        assert main(["deploy"]) == 0
        out = capsys.readouterr().out
        with get_client(sync_client=True) as client:
            deployments = {name: client.read_deployment_by_name(f"load-source/load-{name}") for name in SOURCES}
            deployments["build"] = client.read_deployment_by_name("build/build")
            loads = [start_run(client, deployments[name]) for name in SOURCES]
            loaded = dict(zip(SOURCES, wait_for(client, loads, list(workers.values())), strict=True))
            build = wait_for(client, [start_run(client, deployments["build"])], list(workers.values()))[0]
            destination = client.read_global_concurrency_limit_by_name(limit)
            slots_taken = acquisitions(client, destination.id, expected=len(SOURCES))
            daily_deployments = [d for d in client.read_deployments() if d.entrypoint == "flows/daily.py:daily"
                                 and d.work_pool_name == files_pool]
    finally:
        for worker in workers.values():
            worker.terminate()
        for worker in workers.values():
            worker.wait(timeout=60)
    worker_output = {pool: log.read_text() for pool, log in logs.items()}

    assert f"Global concurrency limit {limit}: 2 slots (created)" in out
    assert f"Work pool {db_pool} (process): created" in out
    assert "Run it once:  headwater deploy --run load-shop_files\n" in out
    expected_pools = {"shop_files": files_pool, "shop_db": db_pool, "shop_api": files_pool, "build": files_pool}
    for name, deployment in deployments.items():
        assert re.search(rf"\S+/{'build' if name == 'build' else f'load-{name}'}\s+{deployment.id}\s+"
                         rf"{expected_pools[name]}\s", out), out
        assert deployment.work_pool_name == expected_pools[name]
    assert [s.schedule.cron for s in deployments["shop_db"].schedules] == ["0 6 * * *"]  # daily's schedule
    assert [s.schedule.cron for s in deployments["shop_api"].schedules] == ["15 * * * *"]
    assert [s.schedule.cron for s in deployments["build"].schedules] == ["0 * * * *"]
    assert deployments["shop_db"].parameters == {"source": "shop_db"}
    assert not daily_deployments  # per-source deployments replace daily; prefect.yaml's are not registered

    for name, run in [*loaded.items(), ("build", build)]:
        assert run.state_name == "Completed", (name, run.state.message, worker_output)
        assert run.work_pool_name == expected_pools[name]
        # The worker of the run's pool started it; the other worker never saw it.
        other = db_pool if expected_pools[name] == files_pool else files_pool
        assert str(run.id) in worker_output[expected_pools[name]], name
        assert str(run.id) not in worker_output[other], name
    assert (destination.limit, destination.active) == (2, True)
    assert destination.active_slots == 0  # each load gave its slot back
    assert slots_taken == sorted(str(run.id) for run in loaded.values())  # every load took one, the build none

    truth = shop.truth()
    assert_raw_equals_truth(database_url, truth)
    assert_marts_equal_truth(database_url, truth)
    assert query(database_url, "select count(*) from headwater_ops.pending_rebuilds") == [(0,)]
    runs = query(database_url, "select flow_name, started_by, status, rows_loaded, run_id from headwater_ops.runs "
                               "order by started_at")
    assert sorted(row[:4] for row in runs) == sorted([
        ("load-source", "deployment:load-shop_files", "succeeded", len(truth["orders"])),
        ("load-source", "deployment:load-shop_db", "succeeded", len(truth["customers"]) + len(truth["products"])),
        ("load-source", "deployment:load-shop_api", "succeeded", len(truth["payments"])),
        ("build", "deployment:build", "succeeded", 0),
    ])
    assert runs[-1][4] == str(build.id)  # the build started after every load
    assert {row[4] for row in runs} == {str(run.id) for run in [*loaded.values(), build]}

    # What each run said it did.
    assert "marts build on the `build` deployment, which now has raw_shop_db.customers, raw_shop_db.products " \
           "pending." in worker_output[db_pool]
    assert f"Loaded {len(truth['orders']):,} rows; marts build on the `build` deployment" in worker_output[files_pool]
    assert "Published marts" in worker_output[files_pool]

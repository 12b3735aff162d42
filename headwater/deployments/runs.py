"""One run of a deployment, started now and followed to its final state, and the process worker that runs it.

A run started here waits in a work queue of its own: a worker started only for it (`--run-once`) takes that
run and not the deployment's scheduled runs that are due, while a long-lived worker of the pool takes it too.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from uuid import UUID

from headwater.common.runtime import child_environ
from headwater.deployments.server import API_URL_ENV, PrefectServer, prefect_client

RUN_QUEUE = "manual-runs"
POLL_SECONDS = 2.0
WORKER_LOG = Path("logs") / "prefect-worker.log"


class RunNotStarted(RuntimeError):
    """The worker exited and nothing took the run."""


@dataclass(frozen=True)
class StartedRun:
    id: UUID
    name: str


@dataclass(frozen=True)
class RunOutcome:
    id: UUID
    name: str
    state: str  # Prefect's state name: Completed, Failed, Crashed, Cancelled, ...
    message: str | None
    seconds: float | None
    completed: bool


def start_run(server: PrefectServer, deployment_id: UUID) -> StartedRun:
    """A flow run of the deployment with its default parameters, scheduled now in RUN_QUEUE."""
    with prefect_client(server) as client:
        run = client.create_flow_run_from_deployment(deployment_id, work_queue_name=RUN_QUEUE)
    return StartedRun(id=run.id, name=run.name)


def worker_command(pool: str, *, queue: str | None = None, once: bool = False) -> list[str]:
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool]
    if queue:
        command += ["--work-queue", queue]
    if once:
        command.append("--run-once")  # one poll; returns when the runs it took have finished
    return command


def start_worker(server: PrefectServer, root: Path, command: list[str], log: Path | None = None) -> subprocess.Popen:
    """The worker in the project folder, in this process group (Ctrl-C reaches it); output to `log` if given."""
    env = child_environ({API_URL_ENV: server.api_url})
    if log is None:
        return subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"\n--- {datetime.now(timezone.utc).isoformat(timespec='seconds')} {' '.join(command)}\n")
        out.flush()
        return subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for_run(
    server: PrefectServer,
    run: StartedRun,
    worker: subprocess.Popen | None,
    on_state: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Poll the run until its state is final. If `worker` exits while the run still waits, nothing will take
    it: RunNotStarted. If it exits while the run is under way, another worker has it; follow that one."""
    with prefect_client(server) as client:
        while True:
            worker_done = worker is not None and worker.poll() is not None
            flow_run = client.read_flow_run(run.id)  # read after the poll, so a run that just ended is final here
            state = flow_run.state
            if on_state:
                on_state(flow_run.state_name or "Scheduled")
            if state is not None and state.is_final():
                return _outcome(flow_run)
            if worker_done:
                if state is None or state.is_scheduled():
                    raise RunNotStarted(f"The worker exited with code {worker.returncode} without taking flow run "
                                        f"{run.name} ({run.id}).")
                worker = None
            time.sleep(POLL_SECONDS)


def serve_worker(worker: subprocess.Popen) -> int:
    """Wait for a long-lived worker until it stops; SIGTERM sent to this process is passed on (it then finishes
    the runs under way), Ctrl-C reaches it directly through the terminal's process group."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: worker.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return worker.wait()
            except KeyboardInterrupt:
                continue  # the worker had the same Ctrl-C: wait for it to shut down
    finally:
        signal.signal(signal.SIGTERM, previous)


def _outcome(flow_run) -> RunOutcome:
    seconds = flow_run.total_run_time.total_seconds() if flow_run.total_run_time else None
    if not seconds and flow_run.start_time and flow_run.end_time:
        seconds = (flow_run.end_time - flow_run.start_time).total_seconds()
    return RunOutcome(
        id=flow_run.id,
        name=flow_run.name,
        state=flow_run.state_name or flow_run.state.type.value.title(),
        message=flow_run.state.message if flow_run.state else None,
        seconds=seconds,
        completed=flow_run.state.is_completed(),
    )

"""Work pools created when missing, and the deployments of prefect.yaml registered by Prefect's own
`prefect deploy --all`, then read back from the server (name, id, pool, schedules)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import WorkerStatus
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from headwater.common.runtime import child_environ
from headwater.deployments.prefect_file import PREFECT_FILE, DeploymentSpec
from headwater.deployments.server import API_URL_ENV, PrefectServer, prefect_client

POOL_TYPE = "process"  # runs each flow in a subprocess of the worker, in the project folder
DEPLOY_TIMEOUT_SECONDS = 600


class DeployError(RuntimeError):
    """Prefect refused the deployments; the message carries its output."""


@dataclass(frozen=True)
class PoolStatus:
    name: str
    type: str
    created: bool
    paused: bool
    workers_online: int


@dataclass(frozen=True)
class RegisteredDeployment:
    full_name: str  # flow name/deployment name, as `prefect deployment run` takes it
    id: UUID
    work_pool: str | None
    schedules: tuple[str, ...]


def ensure_work_pools(server: PrefectServer, names: list[str]) -> list[PoolStatus]:
    """Each pool as found on the server, created as a process pool when missing."""
    statuses = []
    with prefect_client(server) as client:
        for name in dict.fromkeys(names):
            try:
                pool = client.read_work_pool(name)
                created = False
            except ObjectNotFound:
                template = ProcessWorker.get_default_base_job_template()
                pool = client.create_work_pool(WorkPoolCreate(name=name, type=POOL_TYPE, base_job_template=template))
                created = True
            online = [worker for worker in client.read_workers_for_work_pool(pool.name)
                      if worker.status == WorkerStatus.ONLINE]
            statuses.append(PoolStatus(name=pool.name, type=pool.type, created=created, paused=pool.is_paused,
                                       workers_online=len(online)))
    return statuses


def register_deployments(server: PrefectServer, root: Path, prefect_file: str = PREFECT_FILE) -> None:
    """`prefect deploy --all` in the project folder: Prefect reads the prefect file and imports each flow.

    With no `pull:` section, Prefect records this folder as the one the worker runs the flows in.
    """
    command = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all", "--prefect-file", prefect_file]
    result = subprocess.run(command, cwd=root, env=child_environ({API_URL_ENV: server.api_url}),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=DEPLOY_TIMEOUT_SECONDS)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise DeployError(f"`prefect deploy --all` in {root} exited with code {result.returncode}:\n{output}")


def read_registered(server: PrefectServer, specs: list[DeploymentSpec]) -> list[RegisteredDeployment]:
    """The deployments the prefect file defines, as the server now has them."""
    with prefect_client(server) as client:
        found = client.read_deployments(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[spec.name for spec in specs]))
        )
        registered = []
        for spec in specs:
            # Deployment names are unique per flow only: the entrypoint tells ours from another flow's namesake.
            matches = [d for d in found if d.name == spec.name and d.entrypoint == spec.entrypoint]
            if not matches:
                raise DeployError(f"`prefect deploy --all` ended without error, but the server has no deployment "
                                  f"`{spec.name}` of {spec.entrypoint}.")
            deployment = max(matches, key=lambda d: d.updated or d.created)
            flow = client.read_flow(deployment.flow_id)
            registered.append(RegisteredDeployment(
                full_name=f"{flow.name}/{deployment.name}",
                id=deployment.id,
                work_pool=deployment.work_pool_name,
                schedules=tuple(_describe(schedule.schedule) for schedule in deployment.schedules if schedule.active),
            ))
    return registered


def _describe(schedule) -> str:
    cron = getattr(schedule, "cron", None)
    if cron:
        return f"{cron} ({schedule.timezone or 'UTC'})"
    interval = getattr(schedule, "interval", None)
    if interval:
        return f"every {interval}"
    return str(getattr(schedule, "rrule", schedule))

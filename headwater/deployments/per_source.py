"""The deployments of `headwater deploy --per-source`: `load-<source>` for each enabled source and `build`, written
as a prefect.yaml of their own (.headwater/prefect-per-source.yaml, rewritten on every deploy) that Prefect's
`prefect deploy --all` registers like the project's prefect.yaml.

Work pools and schedules come from the `deploy:` block of headwater.yaml; what it leaves unset comes from the
daily deployment of prefect.yaml (its pool, work queue and schedules), so both deploy to the same place by
default. Every deployment also takes daily's job variables (an image, an environment) and the build, push and
pull steps of prefect.yaml and of daily, so they run wherever daily runs. The build deployment runs hourly unless
`deploy.build.schedule` says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from headwater.common.runtime import STATE_DIR
from headwater.deployments.prefect_file import PREFECT_FILE, DeploymentSpec, read_prefect_file
from headwater.project.config import ProjectConfig

PER_SOURCE_FILE = f"{STATE_DIR}/prefect-per-source.yaml"  # relative to the project folder
DAILY_ENTRYPOINT = "flows/daily.py:daily"
SOURCE_ENTRYPOINT = "flows/source.py:load_source_flow"
BUILD_ENTRYPOINT = "flows/build.py:build_flow"
BUILD_DEPLOYMENT = "build"
HEADER = ("# Written by `headwater deploy --per-source` from the deploy: block of headwater.yaml and the daily\n"
          "# deployment of prefect.yaml; rewritten on every deploy, so change those instead.\n")


def source_deployment(source: str) -> str:
    return f"load-{source}"


def write_per_source_file(root: Path, project: ProjectConfig) -> list[DeploymentSpec]:
    """Write root/PER_SOURCE_FILE and return its deployments, build last."""
    daily = _daily_spec(root)
    settings = project.deploy
    entries = [
        _entry(source_deployment(source.name), SOURCE_ENTRYPOINT,
               f"Load source {source.name} into {source.dataset}; the build deployment builds the marts from it.",
               settings.pools.get(source.name, daily.work_pool), daily,
               [_cron(settings.schedules[source.name])] if source.name in settings.schedules else list(daily.schedules),
               {"source": source.name})
        for source in project.sources if source.enabled
    ]
    entries.append(_entry(BUILD_DEPLOYMENT, BUILD_ENTRYPOINT,
                          "Build and publish the marts fed by what the per-source loads left pending.",
                          settings.build_pool or daily.work_pool, daily, [_cron(settings.build_schedule)], {}))
    prefect_file = yaml.safe_load((root / PREFECT_FILE).read_text()) or {}
    shared, steps = _carried_over(prefect_file)
    for entry in entries:
        entry.update(steps)
        if shared:
            entry["work_pool"]["job_variables"] = dict(shared)
    path = root / PER_SOURCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    top_level_steps = {section: prefect_file[section] for section in STEP_SECTIONS if prefect_file.get(section)}
    document = {"name": project.name, **top_level_steps, "deployments": entries}
    path.write_text(HEADER + yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
    return read_prefect_file(root, PER_SOURCE_FILE)


def _daily_spec(root: Path) -> DeploymentSpec:
    """prefect.yaml's daily deployment (by its entrypoint), else its first one: the defaults of the others."""
    specs = read_prefect_file(root)
    return next((spec for spec in specs if spec.entrypoint == DAILY_ENTRYPOINT), specs[0])


# What a deployment needs to run where daily runs: its image or environment (the pool's job variables) and the
# steps that build, push and fetch the code (docs/scaling.md: Docker and Kubernetes work pools).
STEP_SECTIONS = ("build", "push", "pull")


def _carried_over(prefect_file: dict) -> tuple[dict, dict]:
    """The daily deployment's work pool job variables and its own build, push and pull steps, for every
    per-source deployment."""
    entries = prefect_file.get("deployments") or []
    daily = next((entry for entry in entries if entry.get("entrypoint") == DAILY_ENTRYPOINT), entries[0] if entries
                 else {})
    job_variables = (daily.get("work_pool") or {}).get("job_variables") or {}
    return job_variables, {section: daily[section] for section in STEP_SECTIONS if daily.get(section)}


def _entry(name: str, entrypoint: str, description: str, pool: str, daily: DeploymentSpec, schedules: list,
           parameters: dict) -> dict:
    work_pool = {"name": pool, "work_queue_name": daily.work_queue} if daily.work_queue else {"name": pool}
    return {"name": name, "description": description, "entrypoint": entrypoint, "tags": ["headwater"],
            "parameters": parameters, "work_pool": work_pool, "schedules": schedules}


def _cron(expression: str) -> dict:
    return {"cron": expression, "timezone": "UTC"}


@dataclass(frozen=True)
class DeployPlan:
    """What `headwater deploy` registers: the deployments of one prefect file, and for per-source deployments the
    destination's global concurrency limit (name, slots)."""

    prefect_file: str  # relative to the project folder
    specs: list[DeploymentSpec]
    destination_limit: tuple[str, int] | None = None


def deploy_plan(root: Path, project: ProjectConfig, per_source: bool) -> DeployPlan:
    """prefect.yaml as written, or the per-source deployments when asked for (`--per-source`, `deploy.per_source`)."""
    if not (per_source or project.deploy.per_source):
        return DeployPlan(PREFECT_FILE, read_prefect_file(root))
    specs = write_per_source_file(root, project)
    return DeployPlan(PER_SOURCE_FILE, specs, (project.deploy.destination_limit, project.deploy.destination_slots))

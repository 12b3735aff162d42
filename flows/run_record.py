"""The start and end every run of the per-source deployments shares with daily: a 'running' row in headwater_ops
held alive by a session lock, earlier dead runs marked crashed; at the end the summary printed, the run's record,
alerts and Prefect artifacts, and Failed when a step failed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flows.artifacts import publish_artifacts
from flows.daily import RunFailed, export_openlineage, record_crash, write_catalog_site
from headwater.access.run_roles import RunRoles, run_roles
from headwater.load.reload import Reload, ReloadError
from headwater.local.destination import resolve_destination, uses_embedded_database
from headwater.ops.alerts import notify
from headwater.ops.audit import begin_run, end_run
from headwater.ops.crashed_runs import mark_crashed_runs, run_alive
from headwater.ops.history import RunInfo
from headwater.ops.summary import RunSummary, print_site, print_summary
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ProjectConfig


class UnknownSource(ValueError):
    """The run names a source headwater.yaml does not configure (or disables); nothing was written."""


@dataclass
class RecordedRun:
    project: ProjectConfig
    address: PostgresAddress
    roles: RunRoles
    run: RunInfo
    summary: RunSummary
    started: float  # time.perf_counter() at the flow's start


def record_failure(flow, flow_run, state) -> None:
    """daily's crash record, except for a run refused before it began: it wrote nothing and records nothing."""
    if isinstance(state.result(raise_on_failure=False), (UnknownSource, ReloadError)):
        return
    record_crash(flow, flow_run, state)


@contextmanager
def recorded_run(project: ProjectConfig, flow_name: str, reload: Reload, started: float) -> Iterator[RecordedRun]:
    """The run's 'running' row for the block, alive while this process holds its lock; earlier runs found dead
    are marked crashed on the summary."""
    address = resolve_destination(project.state_dir)
    run = RunInfo.current(flow_name)
    roles = run_roles(address, project.grants)
    with run_alive(address, run.run_id):
        begin_run(roles.loader, project, run, reload)
        summary = RunSummary(destination=address.safe_url, embedded=uses_embedded_database(), roles=roles.note,
                             run_id=run.run_id)
        summary.crashed_runs = mark_crashed_runs(roles.loader, run.run_id)
        yield RecordedRun(project, address, roles, run, summary, started)


def finish_run(recorded: RecordedRun, logger, lineage=None, catalog_site: bool = False) -> RunSummary:
    """Print and record the run, alert, publish its artifacts; RunFailed when a step failed."""
    project, summary = recorded.project, recorded.summary
    summary.seconds = time.perf_counter() - recorded.started
    print_summary(summary)
    end_run(recorded.roles.loader, recorded.run, summary)
    if lineage is not None:
        export_openlineage(project, recorded.address, lineage, recorded.run.run_id, logger)
    if catalog_site and project.catalog.site_after_run:  # after end_run: the site shows this run
        write_catalog_site(project, recorded.address, summary, lineage, logger)
        print_site(summary)
    notify(project, summary, logger)  # never raises
    publish_artifacts(summary, project.name)
    if not summary.ok:
        raise RunFailed("; ".join(summary.failures))
    return summary

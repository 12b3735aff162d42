"""One source loaded on its own: the flow of the `load-<source>` deployments (`headwater deploy --per-source`).

The load occupies a slot of the Prefect global concurrency limit `deploy.destination_limit` while it writes, so
no more than `deploy.destination_slots` sources write to the destination at once. What it loaded stays pending
in headwater_ops for the `build` deployment (flows/build.py), which builds and publishes the marts.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.concurrency.sync import concurrency

from flows.daily import read_project
from flows.run_record import UnknownSource, finish_run, record_failure, recorded_run
from flows.tasks import load_source_task
from headwater.example.session import running_example
from headwater.load.reload import ReloadError, plan_reload
from headwater.marts.rebuild import changed_relations
from headwater.ops.freshness import evaluate_freshness
from headwater.ops.pending import remember_pending
from headwater.ops.summary import RunSummary
from headwater.project.config import ProjectConfig, SourceConfig


def source_to_load(project: ProjectConfig, name: str) -> SourceConfig:
    """The enabled source of that name; UnknownSource naming the configured ones otherwise."""
    configured = [source.name for source in project.sources]
    if name not in configured:
        raise UnknownSource(f"source `{name}` is not configured in {project.path}; its sources are "
                            f"{', '.join(configured)}.")
    source = project.source(name)
    if not source.enabled:
        raise UnknownSource(f"source `{name}` is disabled in {project.path} (enabled: false); enable it to load it.")
    return source


def check_refresh_names(source: str, full_refresh: list[str] | None) -> None:
    """A full refresh of another source would be silently ignored by this run: refused instead."""
    for item in full_refresh or []:
        if str(item).partition(".")[0] != source:
            raise ReloadError(f"full_refresh {item}: this run loads {source} only; give {source} or {source}.TABLE")


@flow(name="load-source", log_prints=False, on_failure=[record_failure], on_crashed=[record_failure])
def load_source_flow(
    source: str,
    full_refresh: list[str] | None = None,
    since: str | None = None,
    until: str | None = None,
) -> RunSummary:
    """Load one configured source into raw_<source>; the `build` deployment builds the marts from it.

    Args:
        source: The source's name under `sources:` in headwater.yaml.
        full_refresh: The source, or SOURCE.TABLE names of it, to drop and reload from scratch, cursor included.
        since: Backfill window start on each merge/scd2 table's cursor (ISO date/timestamp or integer).
        until: Backfill window end, exclusive (default: now); the regular cursor does not move.
    """
    started = time.perf_counter()
    logger = get_run_logger()
    project = read_project()
    chosen = source_to_load(project, source)  # before anything is written
    check_refresh_names(source, full_refresh)
    reload = plan_reload(project, full_refresh, since, until)
    with recorded_run(project, "load-source", reload, started) as recorded:
        summary, loader = recorded.summary, recorded.roles.loader
        # The destination takes deploy.destination_slots loads at once; this one waits here for a free slot.
        with running_example(project), concurrency(project.deploy.destination_limit, occupy=1):
            summary.loads.append(load_source_task(project, chosen, loader, reload))
        loaded = changed_relations(summary.loads)
        remember_pending(loader, loaded, recorded.run.run_id)
        summary.marts_left = marts_left(summary, loaded)
        summary.freshness = [result for result in evaluate_freshness(project, loader) if result.source == source]
        return finish_run(recorded, logger)


def marts_left(summary: RunSummary, loaded: list) -> str:
    count = sum(table.loaded for load in summary.loads for table in load.tables)
    rows = f"{count:,} row{'' if count == 1 else 's'}"
    if not all(load.ok for load in summary.loads):
        return "The load failed: nothing it read is left for the marts to build."
    if any(load.skipped for load in summary.loads):
        return "Skipped: another run was loading this source; that run leaves what it loads for the build."
    if not loaded:
        return f"Loaded {rows}; no table changed, so nothing is left for the marts to build."
    tables = ", ".join(f"{schema}.{table}" for schema, table in loaded)
    return f"Loaded {rows}; marts build on the `build` deployment, which now has {tables} pending."

"""Prefect tasks of the daily flow: thin wrappers around Headwater's plain functions."""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from headwater.load.pipeline import SourceLoad, load_source
from headwater.load.reload import Reload
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ProjectConfig, SourceConfig


def progress_lines() -> Callable[[str], None]:
    """The run logger's `info`, callable from any thread.

    Progress lines may come from dlt's or a reader's worker threads. Prefect keeps its settings (the API
    URL among them) in context variables, which such threads do not inherit; a line logged there would
    make Prefect start a temporary server to send it to. Each line is logged in this task's context.
    """
    logger = get_run_logger()
    context = contextvars.copy_context()
    return lambda line: context.copy().run(logger.info, line)


# Every task reads or writes the database: results are never cached between runs.
@task(name="load-source", task_run_name="load-{source.name}", cache_policy=NO_CACHE)
def load_source_task(
    project: ProjectConfig, source: SourceConfig, address: PostgresAddress, reload: Reload | None = None
) -> SourceLoad:
    """Load one source into raw_<source> with dlt (incremental; cursor state commits with the data)."""
    connector = connector_registry().get(source.connector)
    return load_source(project, source, connector, address, reload, progress=progress_lines())


@task(name="verify-raw-contracts", cache_policy=NO_CACHE)
def verify_raw_contracts_task(project: ProjectConfig, address: PostgresAddress, changed, full_build: bool = False):
    """Verify the raw contracts of the tables that received rows (every raw contract on a full build)."""
    from headwater.marts.quality import discover_contracts, verify_contracts

    raw = {c.schema for c in discover_contracts(project.quality_dir) if c.schema.startswith("raw_")}
    if full_build:
        return verify_contracts(project.quality_dir, address, schemas=raw)
    return verify_contracts(project.quality_dir, address, tables=set(changed)) if changed else []


@task(name="plan-rebuild", cache_policy=NO_CACHE)
def plan_rebuild_task(project: ProjectConfig, address: PostgresAddress, changed, raw_contracts, full_build: bool):
    """Parse the dbt project once and decide which models to rebuild and which sources to hold back."""
    from headwater.marts.rebuild import RebuildPlan, load_manifest_sources, plan_rebuild
    from headwater.marts.transform import dbt_state_dirs, run_dbt

    if not changed and not full_build:
        return RebuildPlan(run=False)  # nothing new: no need to even parse the project
    parsed = run_dbt(["parse"], project_dir=project.transform_dir, state_dir=project.state_dir, address=address)
    if not parsed.success:
        raise RuntimeError(f"dbt parse failed: {parsed.error}")
    sources = load_manifest_sources(dbt_state_dirs(project.state_dir)[0])
    return plan_rebuild(changed, raw_contracts, sources, full_build=full_build)


@task(name="dbt-rebuild", cache_policy=NO_CACHE)
def dbt_rebuild_task(project: ProjectConfig, address: PostgresAddress, plan):
    """`dbt build` of the planned selection, marts into their audit schema; None when there is nothing to build."""
    from headwater.marts.publish import audit_schemas, dbt_audit_args
    from headwater.marts.transform import run_dbt

    if not plan.run:
        return None
    command = ["build", *dbt_audit_args(audit_schemas())]
    if plan.exclude:
        command += ["--exclude", *plan.exclude]
    return run_dbt(command, project_dir=project.transform_dir, state_dir=project.state_dir, address=address,
                   select=plan.select, progress=progress_lines())


@task(name="audit-and-publish", cache_policy=NO_CACHE)
def audit_and_publish_task(project: ProjectConfig, address: PostgresAddress, dbt_result):
    """Verify the freshly built marts in their audit schema, then publish all of them or none."""
    from headwater.marts.publish import audit_and_publish

    return audit_and_publish(project.quality_dir, address, dbt_result)


@task(name="lineage", cache_policy=NO_CACHE)
def lineage_task(project: ProjectConfig, address: PostgresAddress):
    """Column lineage of the project, connector resources to published marts (headwater.lineage.build)."""
    from headwater.lineage.build import build_lineage

    return build_lineage(project, address, refresh=True, progress=progress_lines())


@task(name="catalog-site", cache_policy=NO_CACHE)
def catalog_site_task(project: ProjectConfig, address: PostgresAddress, lineage=None):
    """Write the static catalog site; returns the path of its index.html.

    Without a lineage (its task failed this run) the site reuses the last dbt artifacts rather than
    running `dbt docs generate` a second time, and falls back to the raw tables when there are none.
    """
    from headwater.catalog_site import write_site  # imported lazily: the site is optional

    return write_site(project, address, lineage=lineage, refresh=lineage is not None)

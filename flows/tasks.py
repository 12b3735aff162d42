"""Prefect tasks of the daily flow: thin wrappers around Headwater's plain functions."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from headwater.config import ProjectConfig, SourceConfig
from headwater.destination import PostgresAddress
from headwater.loading import SourceLoad, load_source
from headwater.plugins import connector_registry
from headwater.reload import Reload


# Every task reads or writes the database: results are never cached between runs.
@task(name="load-source", cache_policy=NO_CACHE)
def load_source_task(
    project: ProjectConfig, source: SourceConfig, address: PostgresAddress, reload: Reload | None = None
) -> SourceLoad:
    """Load one source into raw_<source> with dlt (incremental; cursor state commits with the data)."""
    connector = connector_registry().get(source.connector)
    return load_source(project, source, connector, address, reload)


@task(name="dbt-build", cache_policy=NO_CACHE)
def dbt_build_task(project: ProjectConfig, address: PostgresAddress):
    """Build the dbt project (staging views, marts, their tests)."""
    from headwater.transform import run_dbt

    return run_dbt(["build"], project_dir=project.transform_dir, state_dir=project.state_dir, address=address)


@task(name="verify-contracts", cache_policy=NO_CACHE)
def verify_contracts_task(project: ProjectConfig, address: PostgresAddress):
    """Verify the Soda contracts in the quality folder against raw tables and marts."""
    from headwater.quality import verify_contracts

    return verify_contracts(project.quality_dir, address)

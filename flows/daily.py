"""The daily pipeline: load every source, build the dbt project, verify the quality contracts.

    python -m flows.daily                 # run once, locally
    python -m flows.daily --advance-example 1   # simulate a day of the bundled shop first
    python -m flows.daily --full-refresh shop_db.customers   # drop and reload one table (or a whole source)
    python -m flows.daily --since 2024-05-01 --until 2024-06-01   # re-read a cursor window
    python -m flows.daily --full-build    # rebuild every dbt model, not only what new rows feed
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from prefect import flow, get_run_logger
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.artifacts import publish_artifacts
from flows.source_loads import load_sources
from flows.tasks import (
    audit_and_publish_task,
    catalog_site_task,
    dbt_rebuild_task,
    lineage_task,
    plan_rebuild_task,
    verify_raw_contracts_task,
)
from headwater.access.run_roles import RunRoles, run_roles
from headwater.common.prefect_tls import share_api_tls_contexts
from headwater.common.runtime import config_path
from headwater.example.session import running_example
from headwater.lineage.pii import pii_exposures
from headwater.load.reload import ReloadError, add_reload_arguments, not_backfilled, plan_reload
from headwater.local.destination import destination_url_problem, resolve_destination, uses_embedded_database
from headwater.local.stack import StackError, prefect_server_for_runs, unreachable_api_problem
from headwater.marts.build_lock import build_lock
from headwater.marts.publish import PUBLISHED_SCHEMAS
from headwater.marts.rebuild import changed_relations
from headwater.ops.alerts import notify
from headwater.ops.audit import begin_run, end_run
from headwater.ops.crashed_runs import mark_crashed_runs, run_alive
from headwater.ops.freshness import evaluate_freshness
from headwater.ops.history import RunInfo
from headwater.ops.pending import pending_marks, remember_pending
from headwater.ops.pending import settle as settle_pending
from headwater.ops.summary import RunSummary, print_site, print_summary
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.postgres.advisory_locks import LockNotAcquired
from headwater.project.config import ConfigError, ProjectConfig, load_project


class RunFailed(Exception):
    """A step failed; the summary has been printed and the flow run ends Failed."""


def read_project() -> ProjectConfig:
    """Read and validate headwater.yaml: a broken config stops here, before anything is written."""
    return load_project(config_path(), connector_registry())


def contract_tables(project: ProjectConfig) -> set[tuple[str, str]]:
    """(schema, table) of every Soda contract of the project: a table without a result this run was skipped."""
    from headwater.marts.quality import discover_contracts

    if project.quality_dir is None:
        return set()
    return {(contract.schema, contract.table) for contract in discover_contracts(project.quality_dir)}


def check_pii(project: ProjectConfig, address, summary: RunSummary, logger):
    """Build the lineage once and put the published columns carrying unmasked PII on the summary.

    Returns the lineage (None when it could not be built: logged and reported, never fatal by itself;
    with `catalog.pii_exposure: fail` an unchecked run counts as failed, see RunSummary.failures).
    """
    summary.pii_action = project.catalog.pii_exposure
    try:
        lineage = lineage_task(project, address)
        summary.pii = pii_exposures(lineage, PUBLISHED_SCHEMAS)
    except Exception as error:
        summary.lineage_error = f"{type(error).__name__}: {error}"
        logger.warning("lineage could not be built: %s", summary.lineage_error)
        return None
    # Reported once, by the summary (a table and one warning line) and the run's artifact.
    return lineage


def export_openlineage(project: ProjectConfig, address, lineage, run_id: str, logger) -> None:
    """Append the run's OpenLineage event to .headwater/openlineage/events.jsonl; a failure is only logged."""
    from headwater.lineage.openlineage import append_event, events_file, openlineage_event

    try:
        append_event(events_file(project), openlineage_event(lineage, project, address, run_id=run_id))
    except Exception as error:
        logger.warning("OpenLineage event could not be written: %s: %s", type(error).__name__, error)


def write_catalog_site(project: ProjectConfig, address, summary: RunSummary, lineage, logger) -> None:
    """Regenerate the catalog site (catalog.site_after_run); a failure is logged and reported, never fatal."""
    try:
        summary.site = catalog_site_task(project, address, lineage)
    except Exception as error:
        summary.site_error = f"{type(error).__name__}: {error}"
        logger.warning("catalog site could not be written: %s", summary.site_error)


def set_reader_grants(project: ProjectConfig, roles: RunRoles, summary: RunSummary, lineage, logger) -> None:
    """With `grants:`, give the reader role the published mart columns that carry no unmasked PII.

    Column grants are no default privileges and publishing swaps new relations in, so they are set after
    every run's lineage. Without a lineage the grants publishing carried over stay; new columns wait.
    """
    from headwater.access.mart_grants import grant_reader, pii_findings

    if project.grants is None or project.transform_dir is None:
        return
    if lineage is None:
        summary.reader_grants = ("reader grants left as publishing carried them over: the lineage could not be "
                                 "built, so new mart columns stay hidden from the reader until a run builds it")
        return
    try:
        with roles.transformer.connect(connect_timeout=10) as connection, connection.transaction():
            granted = grant_reader(connection, project.grants.reader.name, PUBLISHED_SCHEMAS,
                                   pii_findings(lineage, PUBLISHED_SCHEMAS))
        summary.reader_grants = granted.describe()
    except Exception as error:
        summary.reader_grants_error = f"{type(error).__name__}: {str(error).strip()}"
        logger.warning("reader grants could not be set: %s", summary.reader_grants_error)


def record_crash(flow, flow_run, state) -> None:
    """A run that ended on an unexpected error still leaves its record in headwater_ops and raises an alert.

    Runs that fail the ordinary way (RunFailed) were recorded and alerted before raising.
    """
    error = state.result(raise_on_failure=False)
    if isinstance(error, RunFailed):
        return
    logger = logging.getLogger("headwater.flows")
    summary = RunSummary(run_id=str(flow_run.id), crash=f"{type(error).__name__}: {error}")
    try:
        project = read_project()
        notify(project, summary, logger)  # never raises
        run = RunInfo(run_id=summary.run_id, flow_name=flow.name, parameters=dict(flow_run.parameters or {}))
        roles = run_roles(resolve_destination(project.state_dir), project.grants)
        end_run(roles.loader, run, summary, status="failed")
    except Exception:  # the run has failed already; reporting it must not hide why
        logger.exception("could not record the failed run %s", flow_run.id)


def build_and_publish(project: ProjectConfig, roles: RunRoles, summary: RunSummary, loaded, full_build: bool,
                      run_id: str, logger):
    """Check raw contracts, rebuild what changed, audit and publish, settle what is still pending; returns
    the lineage (None without a dbt project or when it could not be built)."""
    # Only what changed is checked and rebuilt (with what earlier runs could not publish);
    # a source failing its raw contract feeds nothing.
    marks = pending_marks(roles.loader)
    changed = sorted(set(loaded) | set(marks))
    address = roles.transformer  # reads raw_*, builds and publishes the marts
    if project.quality_dir is not None:
        summary.contracts = verify_raw_contracts_task(project, address, changed, full_build)
    lineage = None
    if project.transform_dir is not None:
        summary.rebuild = plan_rebuild_task(project, address, changed, summary.contracts, full_build)
        summary.dbt = dbt_rebuild_task(project, address, summary.rebuild)
        # Marts are built in their audit schema and published only if every blocking check passed.
        summary.publish = audit_and_publish_task(project, address, summary.dbt)
        summary.contracts += summary.publish.audited
        # What reaches the published marts now: PII exposure warns or fails (catalog.pii_exposure).
        lineage = check_pii(project, address, summary, logger)
        set_reader_grants(project, roles, summary, lineage, logger)
    settle_pending(roles.loader, changed, summary, run_id, marks)
    return lineage


@flow(name="daily", log_prints=False, on_failure=[record_crash], on_crashed=[record_crash])
def daily(
    advance_example: int = 0,
    full_refresh: list[str] | None = None,
    since: str | None = None,
    until: str | None = None,
    full_build: bool = False,
) -> RunSummary:
    """Load every configured source incrementally, run `dbt build`, verify Soda contracts, report.

    Args:
        advance_example: Days to advance the bundled example business before loading (0 = as it is).
        full_refresh: SOURCE or SOURCE.TABLE names to drop and reload from scratch, cursor included.
        since: Backfill window start on each merge/scd2 table's cursor (ISO date/timestamp or integer).
        until: Backfill window end, exclusive (default: now); the regular cursor does not move.
        full_build: Rebuild every dbt model, not only those downstream of tables that received rows.
    """
    started = time.perf_counter()
    logger = get_run_logger()
    project = read_project()
    reload = plan_reload(project, full_refresh, since, until)  # unknown names stop the run here
    for line in not_backfilled(project, reload, connector_registry()):  # the summary repeats them, per table loaded
        logger.warning(line)
    address = resolve_destination(project.state_dir)
    logger.info("Destination: %s", address.safe_url)
    run = RunInfo.current("daily")
    roles = run_roles(address, project.grants)  # each step's least role (grants:), or the URL's user
    # Held until the run ends; a later run that finds this run 'running' with the lock free marks it crashed.
    with run_alive(address, run.run_id):
        return _daily(project, address, roles, run, reload, advance_example, full_build, started, logger)


def _daily(project: ProjectConfig, address: PostgresAddress, roles: RunRoles, run: RunInfo, reload,
           advance_example: int, full_build: bool, started: float, logger) -> RunSummary:
    # 'running' (a run that crashes from here on stays so until the next run marks it) and, in the audit trail,
    # its start with a changed headwater.yaml, full refresh or backfill: one transaction.
    begin_run(roles.loader, project, run, reload)
    summary = RunSummary(destination=address.safe_url, embedded=uses_embedded_database(),
                         contract_tables=contract_tables(project), roles=roles.note)
    summary.crashed_runs = mark_crashed_runs(roles.loader, run.run_id)
    with running_example(project, advance_days=advance_example):
        enabled = [source for source in project.sources if source.enabled]
        summary.loads = load_sources(project, enabled, roles.loader, reload, logger.info)
    loaded = changed_relations(summary.loads)
    try:
        # One build and publish at a time per destination: a second run waits, then builds what is behind.
        with build_lock(address, project.run.lock_wait_seconds, waiting=logger.info):
            lineage = build_and_publish(project, roles, summary, loaded, full_build, run.run_id, logger)
    except LockNotAcquired as busy:
        summary.build_skipped = (f"another run was building the marts ({busy.holder or 'holder unknown'}); "
                                 f"waited {busy.waited:.0f} s (run.lock_wait)")
        remember_pending(roles.loader, loaded, run.run_id)  # the next run builds them
        lineage = None
    summary.seconds = time.perf_counter() - started

    summary.run_id = run.run_id
    summary.freshness = evaluate_freshness(project, roles.loader)  # error_after breaches fail the run
    print_summary(summary)
    end_run(roles.loader, run, summary)  # headwater_ops and the audit trail: one transaction
    if lineage is not None:  # one OpenLineage event per run, for catalogs that read them
        export_openlineage(project, address, lineage, run.run_id, logger)
    if project.catalog.site_after_run:  # after end_run: the site shows this run
        write_catalog_site(project, address, summary, lineage, logger)
        print_site(summary)
    notify(project, summary, logger)  # never raises: a notifier that fails is logged
    publish_artifacts(summary, project.name)
    if not summary.ok:
        raise RunFailed("; ".join(summary.failures))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.daily", description=daily.description)
    parser.add_argument("--advance-example", type=int, default=0, metavar="DAYS",
                        help="simulate DAYS days of the bundled shop before loading")
    add_reload_arguments(parser)
    parser.add_argument("--full-build", action="store_true",
                        help="rebuild every dbt model, not only those downstream of tables that received rows")
    args = parser.parse_args(argv)
    try:
        project = read_project()
        plan_reload(project, args.full_refresh, args.since, args.until)
    except (ConfigError, ReloadError) as error:
        # Plain text, never re-wrapped: each problem stays on one line with its file:line.
        print(error, file=sys.stderr)
        return 2
    settings = shell_run_settings(project)
    if isinstance(settings, int):
        return settings
    # Only options that were given become flow parameters, so a plain run records just advance_example.
    reload = {name: getattr(args, name) for name in ("full_refresh", "since", "until") if getattr(args, name)}
    if args.full_build:
        reload["full_build"] = True
    with temporary_settings(updates=settings):
        try:
            state = daily(advance_example=args.advance_example, **reload, return_state=True)
        except RuntimeError as error:  # raised before the flow's body runs: nothing was written
            problem = unreachable_api_problem(error)
            if problem is None:
                raise
            print(f"error: {problem}", file=sys.stderr)
            return 1
    return 0 if state.is_completed() else 1


def shell_run_settings(project: ProjectConfig) -> dict | int:
    """Prefect's settings for a flow started from the shell (its server found or started), or the exit code after
    saying why it cannot start: a bad HEADWATER_DATABASE_URL (2), a Prefect server that cannot be had (1)."""
    problem = destination_url_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        api_url = prefect_server_for_runs(project.state_dir, progress=lambda line: print(line, file=sys.stderr))
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    share_api_tls_contexts()
    return run_settings(api_url)


def run_settings(api_url: str | None) -> dict:
    """Prefect settings of a run started from the shell: the server it reports to and no heartbeats.

    Heartbeats tell a Prefect server that a worker's run still lives; a run from the shell is watched by
    its terminal, and the next run marks it crashed in Prefect when it died (headwater.ops.crashed_runs).
    Prefect's heartbeat thread sleeps in 1 s steps, so it held up the end of every run by up to a second.
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY set by the user keeps them.
    """
    updates: dict = {PREFECT_API_URL: api_url} if api_url else {}
    if "PREFECT_FLOWS_HEARTBEAT_FREQUENCY" not in os.environ and "PREFECT_RUNNER_HEARTBEAT_FREQUENCY" not in os.environ:
        updates["flows.heartbeat_frequency"] = None
    return updates


if __name__ == "__main__":
    sys.exit(main())

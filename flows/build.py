"""The marts built from what the per-source loads left pending: the flow of the `build` deployment.

It checks the raw contracts of the pending tables, rebuilds the dbt models they feed, audits and publishes them
(flows.daily.build_and_publish, under the destination's build lock), and settles what it published.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger

from flows.daily import build_and_publish, contract_tables, read_project
from flows.run_record import finish_run, record_failure, recorded_run
from headwater.load.reload import Reload
from headwater.marts.build_lock import build_lock
from headwater.ops.pending import pending_relations
from headwater.ops.summary import RunSummary
from headwater.postgres.advisory_locks import LockNotAcquired

NOTHING_PENDING = ("Nothing pending: no load left new rows since the last build, so dbt did not run and the "
                   "published marts are unchanged.")


@flow(name="build", log_prints=False, on_failure=[record_failure], on_crashed=[record_failure])
def build_flow(full_build: bool = False) -> RunSummary:
    """Build and publish the marts fed by the raw tables the per-source loads left pending.

    Args:
        full_build: Rebuild every dbt model, not only those downstream of the pending tables.
    """
    started = time.perf_counter()
    logger = get_run_logger()
    project = read_project()
    with recorded_run(project, "build", Reload(), started) as recorded:
        summary, roles = recorded.summary, recorded.roles
        summary.contract_tables = contract_tables(project)
        pending = pending_relations(roles.loader)
        if not pending and not full_build:
            summary.marts_left = NOTHING_PENDING
            return finish_run(recorded, logger)
        lineage = None
        try:
            # One build and publish at a time per destination (daily's too); what is pending is read under it.
            with build_lock(recorded.address, project.run.lock_wait_seconds, waiting=logger.info):
                lineage = build_and_publish(project, roles, summary, [], full_build, recorded.run.run_id, logger)
        except LockNotAcquired as busy:
            summary.marts_left = (f"Skipped dbt build and publish: another run was building the marts "
                                  f"({busy.holder or 'holder unknown'}), waited {busy.waited:.0f} s (run.lock_wait); "
                                  f"{len(pending)} tables stay pending for the next build.")
        return finish_run(recorded, logger, lineage, catalog_site=True)

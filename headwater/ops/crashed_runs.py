"""Runs that died without finishing are marked crashed by the next run, in headwater_ops and in Prefect.

A run killed outright (SIGKILL, out of memory, a lost machine) writes nothing more: its record stays
'running', and Prefect keeps showing its flow run as Running. Every run therefore holds a lock named
after itself for its whole life (headwater.postgres.advisory_locks). Postgres releases it when the
process's connection goes, so a later run that finds a 'running' record whose lock is free knows
that run is gone, and marks it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from headwater.ops.audit import record_event
from headwater.ops.history import SCHEMA, ensure_schema
from headwater.postgres.advisory_locks import HeldLock, advisory_lock, lock_is_free

if TYPE_CHECKING:
    from headwater.postgres.address import PostgresAddress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrashedRun:
    run_id: str
    flow_name: str
    started_at: datetime
    started_by: str


def run_lock_name(run_id: str) -> str:
    return f"run {run_id}"


@contextmanager
def run_alive(address: "PostgresAddress", run_id: str) -> Iterator[HeldLock]:
    """Hold the run's own lock for the block: while it is held, the run counts as alive."""
    with advisory_lock(address, run_lock_name(run_id), f"headwater run {run_id}", wait_seconds=0) as held:
        yield held


def mark_crashed_runs(address: "PostgresAddress", by_run: str) -> list[CrashedRun]:
    """Mark every 'running' run that no live process holds as crashed; returns them, oldest first."""
    with address.connect() as connection:
        ensure_schema(connection)
        running = connection.execute(
            f"select run_id, flow_name, started_at, started_by from {SCHEMA}.runs "
            "where status = 'running' and run_id <> %s order by started_at", (by_run,)).fetchall()
    crashed = [CrashedRun(*row) for row in running if lock_is_free(address, run_lock_name(row[0]))]
    if not crashed:
        return []
    marked = []
    with address.connect() as connection:
        for run in crashed:
            # Only while still 'running': a run that ends after all writes its own status.
            if connection.execute(
                    f"update {SCHEMA}.runs set status = 'crashed', ended_at = now(), failures = %s::jsonb "
                    "where run_id = %s and status = 'running'", (_failure(by_run), run.run_id)).rowcount:
                marked.append(run)
    for run in marked:  # the audit trail's end of a run that could not record its own
        record_event(address, "run.end", {"run_id": run.run_id, "status": "crashed", "found_by_run": by_run})
    for run in crashed:
        _mark_crashed_in_prefect(run.run_id, by_run)
    return crashed


def _failure(by_run: str) -> str:
    return json.dumps([f"run crashed: its process ended without finishing (killed, out of memory or machine "
                       f"lost); found by run {by_run}"])


def _mark_crashed_in_prefect(run_id: str, by_run: str) -> None:
    """Set the Prefect flow run of that id to Crashed, if Prefect still shows it running; never raises."""
    try:
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.states import Crashed

        flow_run_id = UUID(run_id)
    except (ImportError, ValueError):  # not a Prefect flow run id (a run outside Prefect)
        return
    try:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(flow_run_id)
            if flow_run.state is not None and not flow_run.state.is_final():
                client.set_flow_run_state(flow_run_id, Crashed(
                    message=f"The run's process ended without finishing; found by Headwater run {by_run}"),
                    force=True)
    except Exception as error:  # no server, or it never knew that run: headwater_ops is the record
        log.info("could not mark flow run %s crashed in Prefect: %s: %s", run_id, type(error).__name__, error)

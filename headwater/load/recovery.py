"""Finish what a crashed run left behind, before a source's normal run.

A run killed part-way leaves a pending load package in the pipeline's working folder. dlt's
``run()`` would load only that package and return without extracting, so every crash would cost
a schedule tick; ``recover`` loads it first and the caller then extracts as usual, in the same run.

The windows a kill can leave, and what happens to each here:

- **extract**: nothing is pending and the cursor in the destination did not move. The next extract
  simply starts from the last committed cursor.
- **normalize, before the package is committed**: the extracted package is pending; it is
  normalized and loaded here.
- **normalize, after the package is committed but before the extracted copy is deleted**: the same
  load id sits in both folders and dlt fails every later run with "Directory not empty". The
  extracted copy is deleted (the normalized one is complete), then loading proceeds.
- **load, before a job's COMMIT**: the job's transaction rolled back; dlt re-runs it.
- **load, after a job's COMMIT, before its pending-transition marker is written**: dlt re-runs the
  job and, for a copy job, inserts its rows a second time. Before loading, the rows of that load id are deleted
  from the table the job writes to (the final table of an append table; the staging table of a
  merge, scd2 or replace table), but only when no job of that table in the package is completed,
  because then every row of that load id in that table comes from a job that runs again.
  A job that committed and wrote its marker is completed by dlt without running again: its rows stay.
  Residual limit: a table split into several job files, some completed and some not, cannot be
  told apart row by row; it is logged and left to the replay (merge tables are still deduplicated
  by key, append tables may then hold duplicates). Arrow batches give one file per table.

The cursor is safe in every window: it commits in the same package as the data, and dlt only
reads state whose load is recorded in ``_dlt_loads``.

``LOAD__AUTO_ABORT_ON_TERMINAL_ERROR`` is left to dlt's default (off). Aborting a package whose
other tables already committed, then extracting again, would duplicate those append tables; a
failing package is instead reported on every run until it is fixed, or dropped with
``--full-refresh SOURCE`` (``abandon_pending=True`` here), which reloads the source anyway. A
``--full-refresh SOURCE.TABLE`` takes only that table's jobs out of the pending packages
(``abandon_tables``) and loads the rest: the table is emptied and read again from the start in the
same run, so its jobs are not needed, and the source's other tables keep their rows.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import dlt

from headwater.load.refusals import run_setting_aside

log = logging.getLogger(__name__)

# Job file formats that copy rows into a table (the .sql follow-up jobs are single transactions).
_COPY_FORMATS = {"parquet", "insert_values", "csv", "jsonl", "model"}


@dataclass
class Recovery:
    """What ``recover`` did: packages loaded or abandoned, and replayed rows removed first."""

    load_ids: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    stuck_packages: list[str] = field(default_factory=list)
    abandoned: bool = False
    # (load id, qualified table, rows deleted) for each table cleaned before its job was replayed.
    cleaned: list[tuple[str, str, int]] = field(default_factory=list)
    abandoned_jobs: list[str] = field(default_factory=list)  # job files of refreshed tables dropped from packages
    set_aside: list = field(default_factory=list)  # headwater.load.refusals.SetAside: refused rows now in quarantine


def recover(pipeline: dlt.Pipeline, loader_file_format: str, abandon_pending: bool = False,
            abandon_tables: frozenset[str] = frozenset()) -> Recovery:
    """Load (or, with ``abandon_pending``, abort) packages a previous run left pending.

    ``abandon_tables``: tables about to be refreshed; their jobs are dropped from the pending packages.
    """
    recovery = Recovery()
    recovery.stuck_packages = _repair_stuck_normalize(pipeline)
    if not pipeline.has_pending_data:
        return recovery
    if abandon_tables and not abandon_pending:
        recovery.abandoned_jobs = _drop_table_jobs(pipeline, abandon_tables)
    if abandon_pending:
        # The source is about to be dropped and reloaded: the pending data is obsolete.
        pipeline.abort_packages()
        if pipeline.list_normalized_load_packages():  # the aborted package completes through load()
            pipeline.load()
        recovery.abandoned = True
        log.warning("%s: abandoned pending load packages before the full refresh", pipeline.pipeline_name)
        return recovery
    for load_id in pipeline.list_normalized_load_packages():
        recovery.cleaned.extend(_remove_replayed_rows(pipeline, load_id))
    # No data: normalize and load what is pending; rows Postgres refuses go to quarantine (headwater.load.refusals).
    infos, recovery.set_aside, counts = run_setting_aside(
        pipeline, loader_file_format, lambda: pipeline.run(loader_file_format=loader_file_format))
    for info in infos:
        info.raise_on_failed_jobs()
        recovery.load_ids += list(info.loads_ids)
    recovery.row_counts = {name: count for name, count in counts.items() if not name.startswith("_dlt")}
    log.warning("%s: loaded pending packages %s left by an interrupted run", pipeline.pipeline_name,
                ", ".join(recovery.load_ids))
    return recovery


def _drop_table_jobs(pipeline: dlt.Pipeline, tables: frozenset[str]) -> list[str]:
    """Delete the jobs of ``tables`` (with their nested and quarantine tables) from every pending package."""
    dropped = []
    storages = (pipeline._get_normalize_storage().extracted_packages,
                pipeline._get_load_storage().normalized_packages)
    for packages in storages:
        for load_id in packages.list_packages():
            for state, job in packages.list_all_jobs_with_states(load_id):
                if not any(job.table_name == table or job.table_name.startswith(f"{table}__") for table in tables):
                    continue
                path = packages.get_job_file_path(load_id, state, job.file_name())
                for leftover in (path, f"{path}.exception"):
                    if packages.storage.has_file(leftover):
                        packages.storage.delete(leftover)
                dropped.append(f"{load_id}/{job.file_name()}")
    if dropped:
        log.warning("%s: dropped %d pending job(s) of %s before refreshing them", pipeline.pipeline_name,
                    len(dropped), ", ".join(sorted(tables)))
    return dropped


def _repair_stuck_normalize(pipeline: dlt.Pipeline) -> list[str]:
    """Delete the extracted copy of packages that normalize already committed (a kill between the two steps)."""
    stuck = sorted(set(pipeline.list_extracted_load_packages()) & set(pipeline.list_normalized_load_packages()))
    if stuck:
        extracted = pipeline._get_normalize_storage().extracted_packages
        for load_id in stuck:
            extracted.delete_package(load_id)
        log.warning("%s: removed the extracted copy of already normalized packages %s",
                    pipeline.pipeline_name, ", ".join(stuck))
    return stuck


def _remove_replayed_rows(pipeline: dlt.Pipeline, load_id: str) -> list[tuple[str, str, int]]:
    """Delete rows that started, unfinished copy jobs of ``load_id`` may already have committed."""
    package = pipeline.get_load_package_info(load_id)
    # A job whose copy committed leaves a pending-transition marker before it is moved to completed;
    # dlt then completes it without running it again, so its rows are final and must stay.
    committed = set(pipeline._get_load_storage().normalized_packages.list_pending_transitions(load_id))
    started: set[str] = set()
    completed: set[str] = set()
    for state, jobs in package.jobs.items():
        for job in jobs:
            parsed = job.job_file_info
            if parsed.file_format not in _COPY_FORMATS or parsed.table_name.startswith("_dlt"):
                continue
            if state == "started_jobs" and os.path.basename(job.file_path) not in committed:
                started.add(parsed.table_name)
            elif state in ("started_jobs", "completed_jobs"):
                completed.add(parsed.table_name)
    cleaned = []
    for table in sorted(started):
        if table in completed:
            log.warning("%s: table %s of load %s has completed and unfinished jobs; a replay may duplicate "
                        "its rows", pipeline.pipeline_name, table, load_id)
            continue
        disposition = package.schema.tables.get(table, {}).get("write_disposition", "append")
        with pipeline.sql_client() as client:
            if disposition == "append":
                cleaned.append(_delete_load(client, table, load_id))
            else:  # merge, scd2 and replace-from-staging jobs copy into the staging dataset first
                with client.with_staging_dataset():
                    cleaned.append(_delete_load(client, table, load_id))
    return [entry for entry in cleaned if entry[2]]


def _delete_load(client, table: str, load_id: str) -> tuple[str, str, int]:
    qualified = client.make_qualified_table_name(table)
    exists = client.execute_sql(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        client.dataset_name, table,
    )
    if not exists:
        return (load_id, qualified, 0)
    with client.begin_transaction():
        deleted = client.execute_sql(
            f"WITH gone AS (DELETE FROM {qualified} WHERE _dlt_load_id = %s RETURNING 1) SELECT count(*) FROM gone",
            load_id,
        )
    count = deleted[0][0] if deleted else 0
    if count:
        log.warning("deleted %d rows of unfinished load %s from %s before replaying its job", count, load_id, qualified)
    return (load_id, qualified, count)

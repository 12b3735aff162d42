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
  from the table the job writes to (the final table of an append table, and dlt's state table, whose
  row a replay would add again; the staging table of a merge, scd2 or replace table), but only when no
  job of that table in the package is completed, because then every row of that load id in that table
  comes from a job that runs again.
  A job that committed and wrote its marker is completed by dlt without running again: its rows stay.
  A copy job split over several COPY streams (headwater.postgres.copy_streams) commits them one after
  the other: a kill between two commits is this same window (the job is started, not completed), and
  the job itself, seeing the marker it wrote before its first commit, deletes its load id again first.
  Residual limit: a table split into several job files, some completed and some not, cannot be
  told apart row by row; it is logged and left to the replay (merge tables are still deduplicated
  by key, append tables may then hold duplicates). Arrow batches give one file per table.

- **rows in no load file, not committed**: a source passed a table's rows straight into it during extract,
  or copy ahead sent them to the table's COPY alone (headwater.postgres.copy_ahead); their transaction died
  with the run. The package is discarded whole (see below), so its cursor does not move, and this run reads
  the rows again.

- **a package pending here, overtaken**: a run without this folder loaded the source since (its load is
  newer in ``_dlt_loads`` than the package), reading the package's rows again from the cursor in the
  destination. The package is discarded (below), not loaded: that would add its rows a second time.
- **any window, and the next run does not have the working folder** (it runs on another machine, or
  the disk did not survive): nothing is pending here, and the crashed load's package is gone with the
  folder. Each copy job recorded its load id and table in ``headwater_ops.open_loads`` in the transaction
  that committed its rows (headwater.postgres.copy_streams.OpenLoad), so whatever rows the crashed load
  committed are named there. A load found there that is neither recorded in ``_dlt_loads`` nor pending in
  this working folder is undone (``settle_open_loads``): its rows are deleted from each table it names
  (nested rows with their parent rows, or when their parent row is not in the table), with its entries,
  in one transaction; dlt restores the cursor from the destination, where it never moved for that load,
  so this run reads those rows again. Merge, scd2 and replace tables are named too (their staging table;
  a merge that had already run into the final table took the rows by key, and taking them again changes
  nothing). A load pending in this working folder is left to the windows above: its rows are its own.
  Entries of loads recorded in ``_dlt_loads`` are deleted here and after each load, so the table is
  empty between runs.

The cursor is safe in every window: it commits in the same package as the data, and dlt only
reads state whose load is recorded in ``_dlt_loads``.

``LOAD__AUTO_ABORT_ON_TERMINAL_ERROR`` is left to dlt's default (off). Aborting a package whose
other tables already committed, then extracting again, would duplicate those append tables. Rows
Postgres refuses are set aside instead (headwater.load.refusals), so a package fails again only when
the database cannot be reached or a job that is not a copy fails. It is then reported on every run
until it loads, and can be dropped:

- with ``--full-refresh SOURCE`` (``abandon_pending=True`` here), which reloads the source anyway;
- with ``--full-refresh SOURCE.TABLE``, which takes only that table's jobs out of the pending
  packages (``abandon_tables``) and loads the rest: the table is emptied and read again from the
  start in the same run, so its jobs are not needed, and the source's other tables keep their rows;
- with ``headwater recover SOURCE --discard-pending`` (``discard_pending``), which shows what is
  pending first (``pending_loads``).

**Discarding** a package aborts it the way dlt does: dlt's local state (cursors, the files read)
goes back to what it was before the package was extracted, since that state was to commit with the
package, so the next run reads those rows again. Rows of the package that append tables already
hold (a job that committed before another one failed) are deleted first, or that next run would
add them twice; merge, replace and scd2 tables take the same rows again without duplicates. The
abort is flagged in the package before anything is deleted: a discard interrupted part-way is
finished by the next run, the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import dlt
import pyarrow.parquet as pq

from headwater.load.refusals import delete_children, failure_of, run_setting_aside
from headwater.postgres.copy_ahead import PASSED_THROUGH
from headwater.postgres.copy_streams import OPEN_LOADS, OPEN_REFRESHES

log = logging.getLogger(__name__)

# Job file formats that copy rows into a table (the .sql follow-up jobs are single transactions).
_COPY_FORMATS = {"parquet", "insert_values", "csv", "jsonl", "model"}
# dlt's table of the state each load commits: one row per load, its _dlt_id unique, so a replayed job that
# had committed fails on the key. Its rows of the load id come only from that job, as an append table's do.
_STATE_TABLE = "_dlt_pipeline_state"


@dataclass
class Recovery:
    """What ``recover`` did: packages loaded or abandoned, and replayed rows removed first."""

    load_ids: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    stuck_packages: list[str] = field(default_factory=list)
    abandoned: bool = False
    discarded_because: str = ""  # why the pending packages were discarded instead of loaded, if they were
    # (load id, qualified table, rows deleted) for each table cleaned before its job was replayed.
    cleaned: list[tuple[str, str, int]] = field(default_factory=list)
    abandoned_jobs: list[str] = field(default_factory=list)  # job files of refreshed tables dropped from packages
    # (load id, qualified table, rows deleted): rows of loads left unfinished by a run whose package is not here
    orphaned: list[tuple[str, str, int]] = field(default_factory=list)
    set_aside: list = field(default_factory=list)  # headwater.load.refusals.SetAside: refused rows now in quarantine
    # (table, its resource) a full refresh emptied whose load never completed: this run refreshes them again
    refresh_again: list[tuple[str, str]] = field(default_factory=list)


def recover(pipeline: dlt.Pipeline, loader_file_format: str, abandon_pending: bool = False,
            abandon_tables: frozenset[str] = frozenset(), protection: Callable | None = None) -> Recovery:
    """Load (or, with ``abandon_pending``, abort) packages a previous run left pending.

    ``abandon_tables``: tables about to be refreshed; their jobs are dropped from the pending packages.
    ``protection``: table -> how its quarantine records keep personal data out, for rows Postgres refuses.

    Then the rows of loads that no pending package here holds and that never completed are deleted
    (``settle_open_loads``): a run on another machine, or on a disk that did not survive, left them.
    """
    here = _local_load_ids(pipeline)
    recovery = _recover_local(pipeline, loader_file_format, abandon_pending, abandon_tables, protection)
    recovery.orphaned = [removed for removed in settle_open_loads(pipeline, discarded=here) if removed[0] not in here]
    recovery.refresh_again = settle_open_refreshes(pipeline)
    return recovery


def _recover_local(pipeline: dlt.Pipeline, loader_file_format: str, abandon_pending: bool,
                   abandon_tables: frozenset[str], protection: Callable | None) -> Recovery:
    recovery = Recovery()
    recovery.stuck_packages = _repair_stuck_normalize(pipeline)
    if _discard_requested(pipeline):  # a discard was interrupted: finish it, then load as usual
        _finish_discard(pipeline)
        recovery.abandoned = True
    if not pipeline.has_pending_data:  # (a package flagged to be discarded does not count as pending)
        return recovery
    never_loaded = _never_loaded(pipeline)
    if never_loaded:
        # dlt would not load these packages: with no schema named it neither normalizes nor loads, and with no
        # dataset it wipes the working folder first. Discarding them restores the state they started from (rows
        # copied ahead are removed with their journal entries, below): this run reads their rows again.
        discarded = discard_pending(pipeline)
        recovery.abandoned, recovery.discarded_because = True, never_loaded
        log.warning("%s: discarded pending load packages %s: %s; this run reads their rows again",
                    pipeline.pipeline_name, ", ".join(discarded.pending.load_ids), never_loaded)
        return recovery
    overtaken = _overtaken(pipeline)
    if overtaken and not abandon_pending:
        # A run without this folder loaded since, from the cursor in the destination: it read these rows again.
        discard_pending(pipeline)
        recovery.abandoned = True
        recovery.discarded_because = f"a later load ({overtaken[1]}) recorded by a run elsewhere read their rows again"
        log.warning("%s: discarded pending load packages %s: a later load (%s) recorded by a run elsewhere read "
                    "their rows again", pipeline.pipeline_name, ", ".join(overtaken[0]), overtaken[1])
        return recovery
    unfinished = _unfinished_pass_throughs(pipeline)
    if unfinished and not abandon_pending:
        # Their rows were in no file: loading the package would move the cursor past rows never committed.
        discard_pending(pipeline)
        tables = ", ".join(sorted({table for tables in unfinished.values() for table in tables}))
        recovery.abandoned = True
        recovery.discarded_because = f"the rows of {tables} in no load file were not committed"
        log.warning("%s: discarded pending load packages %s: the rows of %s in no load file were not committed; "
                    "this run reads them again", pipeline.pipeline_name, ", ".join(sorted(unfinished)), tables)
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
    # Rows the normalized packages hold: normalized by an earlier run, they are not in this run's counts.
    counts = {table.table: table.rows or 0 for table in pending_loads(pipeline).tables
              if table.state == "normalized" and table.jobs}
    # No data: normalize and load what is pending; rows Postgres refuses go to quarantine (headwater.load.refusals).
    infos, recovery.set_aside, normalized = run_setting_aside(
        pipeline, loader_file_format, lambda: pipeline.run(loader_file_format=loader_file_format), protection)
    for info in infos:
        info.raise_on_failed_jobs()
        recovery.load_ids += list(info.loads_ids)
    for name, count in normalized.items():
        counts[name] = counts.get(name, 0) + count
    recovery.row_counts = {name: count for name, count in counts.items() if not name.startswith("_dlt")}
    if recovery.load_ids:
        log.warning("%s: loaded pending packages %s left by an interrupted run", pipeline.pipeline_name,
                    ", ".join(recovery.load_ids))
    else:
        log.info("%s: an interrupted run left a package with nothing to load; it was dropped", pipeline.pipeline_name)
    return recovery


def _never_loaded(pipeline: dlt.Pipeline) -> str | None:
    """Why none of the pending packages can have reached the destination, if so."""
    if not pipeline.default_schema_name:
        return "a first run was stopped after extracting them, before dlt recorded its state"
    with pipeline.sql_client() as client:
        # (information_schema, which dlt's has_dataset reads, hides a schema the role has no privilege on)
        if not client.execute_sql("SELECT to_regnamespace(%s) IS NOT NULL", client.dataset_name)[0][0]:
            return f"the destination has no dataset {client.dataset_name}, so nothing of them was loaded"
    return None


def _overtaken(pipeline: dlt.Pipeline) -> tuple[list[str], str] | None:
    """(the pending packages here, the newest load recorded in ``_dlt_loads``) when that load is newer than one of
    them: only a run without this folder loads before a package pending here has loaded (a run with it loads the
    package first), so it restored the cursor from the destination and read the package's rows again. None
    otherwise. (Load ids are the times they were created: clocks of machines more than a run apart would hide it.)"""
    pending = sorted(_local_load_ids(pipeline), key=float)
    with pipeline.sql_client() as client:
        if not _columns(client, client.dataset_name, "_dlt_loads"):
            return None
        newest = client.execute_sql(f"SELECT max(load_id::numeric)::text FROM "
                                    f"{client.make_qualified_table_name('_dlt_loads')}")[0][0]
    if newest is None or not pending or float(newest) <= float(pending[0]):
        return None
    return pending, newest


def _unfinished_pass_throughs(pipeline: dlt.Pipeline) -> dict[str, list[str]]:
    """Load id -> tables with rows in no load file (passed through or copied ahead alone, headwater.postgres.
    copy_ahead) whose copy job did not finish: those rows died with the run that sent them, uncommitted."""
    unfinished: dict[str, list[str]] = {}
    storages = (("normalized", pipeline._get_load_storage().normalized_packages),
                ("extracted", pipeline._get_normalize_storage().extracted_packages))
    for state, packages in storages:
        for load_id in packages.list_packages():
            passed = packages.get_load_package_state(load_id).get(PASSED_THROUGH) or {}
            if not passed or load_id in unfinished:
                continue
            done: dict[str, bool] = {}  # table -> every job of it finished
            if state == "normalized":  # a job marked to move to completed did commit (not one marked failed)
                for job_state, job in packages.list_all_jobs_with_states(load_id):
                    transition = (packages.load_pending_transition(load_id, job.file_name()) or ("",))[0]
                    finished_job = job_state == "completed_jobs" or transition == "completed"
                    done[job.table_name] = done.get(job.table_name, True) and finished_job
            finished = {table for table, every_job in done.items() if every_job}
            if set(passed) - finished:
                unfinished[load_id] = sorted(set(passed) - finished)
    return unfinished


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
            if parsed.file_format not in _COPY_FORMATS or (
                    parsed.table_name.startswith("_dlt") and parsed.table_name != _STATE_TABLE):
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


@dataclass
class PendingTable:
    """One table's part of what is pending: its jobs not loaded yet, in one or more load packages."""

    table: str
    state: str  # "extracted" (not normalized yet) or "normalized" (ready to load)
    load_ids: list[str] = field(default_factory=list)
    jobs: int = 0  # jobs not loaded yet
    rows: int | None = 0  # rows in those jobs; None when some job's rows cannot be counted (not Parquet)
    loaded_jobs: int = 0  # jobs of the same packages that loaded already (their rows are in the table)
    failures: list[str] = field(default_factory=list)  # the distinct last failures of its jobs
    since: datetime | None = None  # when the oldest of its packages was extracted


@dataclass
class PendingLoads:
    """What is pending for one source: per table, and the packages' load ids."""

    tables: list[PendingTable] = field(default_factory=list)
    load_ids: list[str] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)  # tables a pending --full-refresh load has emptied

    @property
    def empty(self) -> bool:
        return not self.load_ids


def pending_loads(pipeline: dlt.Pipeline) -> PendingLoads:
    """The packages a failed or interrupted run left pending, per table; reads the working folder only."""
    pending = PendingLoads()
    tables: dict[tuple[str, str], PendingTable] = {}
    storages = (("normalized", pipeline._get_load_storage().normalized_packages),
                ("extracted", pipeline._get_normalize_storage().extracted_packages))
    for state, packages in storages:
        for load_id in packages.list_packages():
            if load_id in pending.load_ids:  # normalized already, its extracted copy not yet deleted
                continue
            pending.load_ids.append(load_id)
            package_state = packages.get_load_package_state(load_id)
            pending.refreshed += [name for name in package_state.get("applied_truncated_tables", [])
                                  if name not in pending.refreshed and not name.startswith("_dlt")]
            since = _created_at(load_id, package_state)
            committed = set(packages.list_pending_transitions(load_id)) if state == "normalized" else set()
            for job_state, job in packages.list_all_jobs_with_states(load_id):
                if job.table_name.startswith("_dlt"):
                    continue
                table = tables.setdefault((job.table_name, state), PendingTable(job.table_name, state))
                if load_id not in table.load_ids:
                    table.load_ids.append(load_id)
                table.since = min(table.since or since, since)
                if job_state == "completed_jobs" or job.file_name() in committed:
                    table.loaded_jobs += 1
                    continue
                table.jobs += 1
                table.rows = _add(table.rows, _job_rows(packages, load_id, job_state, job))
                failure = failure_of(packages, load_id, job_state, job)
                if failure and failure not in table.failures:
                    table.failures.append(failure)
    pending.tables = sorted((table for table in tables.values() if table.jobs or table.loaded_jobs),
                            key=lambda table: (table.table, table.state))
    return pending


@dataclass
class Discarded:
    """What ``discard_pending`` did."""

    pending: PendingLoads  # what was pending, as it was shown
    deleted: list[tuple[str, str, int]] = field(default_factory=list)  # (load id, table, rows) already written
    state_restored: bool = True  # dlt's local state went back to before the packages (cursors, files read)


def discard_pending(pipeline: dlt.Pipeline) -> Discarded:
    """Drop every package pending for the pipeline; the next run reads their rows again (see the module docstring)."""
    _repair_stuck_normalize(pipeline)
    result = Discarded(pending_loads(pipeline))
    if result.pending.empty:
        return result
    plan = pipeline.abort_packages(dry_run=True)
    result.state_restored = plan is not None and _can_restore(pipeline, plan["restore_from_load_id"])
    normalized = pipeline._get_load_storage().normalized_packages
    loading = pipeline.list_normalized_load_packages()
    if loading:
        normalized.set_abort_flag(loading[0])  # from here on, any run finishes the discard instead of loading
        result.deleted = _finish_discard(pipeline)
    else:  # extracted only: nothing reached the destination
        pipeline.abort_packages()
    log.warning("%s: discarded pending load packages %s", pipeline.pipeline_name, ", ".join(result.pending.load_ids))
    return result


def _discard_requested(pipeline: dlt.Pipeline) -> bool:
    loading = pipeline.list_normalized_load_packages()
    return bool(loading) and pipeline._get_load_storage().normalized_packages.has_abort_flag(loading[0])


def _finish_discard(pipeline: dlt.Pipeline) -> list[tuple[str, str, int]]:
    """Delete the rows pending packages already wrote to append tables, then let dlt abort them (the oldest
    carries the flag; the others go with it) and restore its local state."""
    deleted = []
    for load_id in pipeline.list_normalized_load_packages():
        package = pipeline.get_load_package_info(load_id)
        tables = sorted({job.job_file_info.table_name for jobs in package.jobs.values() for job in jobs})
        for table in tables:
            schema = package.schema.tables.get(table, {})
            if table.startswith("_dlt") or schema.get("parent") or schema.get("write_disposition") != "append":
                continue  # nested tables go with their root table's rows, below
            with pipeline.sql_client() as client:
                count, written = _delete_load_returning_ids(client, table, load_id, "_dlt_id" in schema["columns"])
                dataset = client.dataset_name
            if count:
                deleted.append((load_id, table, count))
            # Nested rows carry no load id: they are found through their root rows, loaded or still in files.
            gone = written | _row_ids_in_jobs(pipeline, load_id, table)
            for nested in sorted((name for name in tables if name.startswith(f"{table}__")
                                  and package.schema.tables.get(name, {}).get("parent")),
                                 key=lambda name: name.count("__")):  # parents before children
                gone |= delete_children(pipeline, dataset, nested, gone) if gone else set()
    pipeline.load()  # dlt sees the flag: the package is aborted, the newer ones deleted, the local state restored
    return deleted


def _row_ids_in_jobs(pipeline: dlt.Pipeline, load_id: str, table: str) -> set[str]:
    packages = pipeline._get_load_storage().normalized_packages
    ids: set[str] = set()
    for state, job in packages.list_all_jobs_with_states(load_id):
        path = packages.get_job_file_path(load_id, state, job.file_name())
        if job.table_name == table and job.file_format == "parquet" and packages.storage.has_file(path):
            rows = pq.read_table(packages.storage.make_full_path(path))
            if "_dlt_id" in rows.column_names:
                ids |= set(rows.column("_dlt_id").to_pylist())
    return ids


def _delete_load_returning_ids(client, table: str, load_id: str, row_ids: bool) -> tuple[int, set[str]]:
    """Delete the rows ``load_id`` wrote to ``table``: how many, and (``row_ids``) the ``_dlt_id`` of each, to
    find their nested rows."""
    exists = client.execute_sql(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s", client.dataset_name,
        table)
    if not exists:
        return 0, set()
    with client.begin_transaction():
        deleted = client.execute_sql(f"DELETE FROM {client.make_qualified_table_name(table)} WHERE _dlt_load_id = %s "
                                     f"RETURNING {'_dlt_id' if row_ids else 'NULL'}", load_id) or []
    return len(deleted), {row[0] for row in deleted} if row_ids else set()


def _can_restore(pipeline: dlt.Pipeline, load_id: str) -> bool:
    storages = (pipeline._get_load_storage().normalized_packages, pipeline._get_normalize_storage().extracted_packages)
    return any(load_id in packages.list_packages() and packages.can_restore_pipeline_state(load_id)
               for packages in storages)


def _created_at(load_id: str, package_state: dict) -> datetime:
    created = package_state.get("created_at")
    if created is not None:
        return datetime.fromisoformat(str(created)).astimezone(timezone.utc)
    return datetime.fromtimestamp(float(load_id), timezone.utc)  # a load id is the time it was created


def _job_rows(packages, load_id: str, state: str, job) -> int | None:
    if job.file_format not in _COPY_FORMATS:  # a SQL job (a merge, say) copies no rows of its own
        return 0
    if job.file_format != "parquet":
        return None
    path = packages.storage.make_full_path(packages.get_job_file_path(load_id, state, job.file_name()))
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except OSError:
        return None


def _add(total: int | None, rows: int | None) -> int | None:
    return None if total is None or rows is None else total + rows


def _local_load_ids(pipeline: dlt.Pipeline) -> set[str]:
    return set(pipeline.list_normalized_load_packages()) | set(pipeline.list_extracted_load_packages())


def settle_open_loads(pipeline: dlt.Pipeline, discarded: set[str] | None = None) -> list[tuple[str, str, int]]:
    """Empty ``headwater_ops.open_loads`` of the pipeline's dataset (and its staging dataset): the entries of
    loads recorded in ``_dlt_loads`` go, and so do the rows of every other load there that is not pending in
    this working folder, from each table it committed rows to, in one transaction. Those loads were left
    unfinished by a run whose package is not here (another machine, or a working folder that did not survive);
    their cursor never committed, so this run reads their rows again. Call it holding the source's lock.

    ``discarded``: loads this process had here and discarded (their rows in append tables are gone already; the
    rest, in staging tables, goes now), said quietly; None: every such load is this process's (after a run).

    Returns (load id, qualified table, rows deleted) per table that held rows of such a load."""
    local = _local_load_ids(pipeline)
    with pipeline.sql_client() as client:
        if client.execute_sql("SELECT to_regclass(%s)", OPEN_LOADS)[0][0] is None:
            return []  # no copy job ever ran against this database
        dataset = client.dataset_name
        with client.with_staging_dataset():
            staging = client.dataset_name
        with client.begin_transaction():
            if _columns(client, dataset, "_dlt_loads"):
                client.execute_sql(f"DELETE FROM {OPEN_LOADS} o WHERE o.dataset IN (%s, %s) AND o.load_id IN "
                                   f"(SELECT load_id FROM {client.make_qualified_table_name('_dlt_loads')})",
                                   dataset, staging)
            entries = client.execute_sql(f"SELECT load_id, dataset, table_name, parent_table FROM {OPEN_LOADS} "
                                         f"WHERE dataset IN (%s, %s) ORDER BY load_id", dataset, staging) or []
            orphans = [entry for entry in entries if entry[0] not in local]
            removed = []
            for load_id in sorted({entry[0] for entry in orphans}):
                tables = [entry[1:] for entry in orphans if entry[0] == load_id]
                removed += _remove_open_load(client, load_id, tables)
                client.execute_sql(f"DELETE FROM {OPEN_LOADS} WHERE dataset IN (%s, %s) AND load_id = %s",
                                   dataset, staging, load_id)
    for load_id, table, count in removed:
        if discarded is None or load_id in discarded:
            log.info("%s: removed %d rows of discarded load %s from %s", pipeline.pipeline_name, count, load_id,
                     table)
            continue
        log.warning("%s: removed %d rows of load %s that a run elsewhere left unfinished in %s (its load package "
                    "is not in this working folder); they are read again", pipeline.pipeline_name, count, load_id,
                    table)
    return removed


def settle_open_refreshes(pipeline: dlt.Pipeline, refreshed: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """Clear the entries of ``headwater_ops.open_refreshes`` for the pipeline's dataset whose refresh completed:
    its load is recorded in ``_dlt_loads``, or a load that just completed refreshed the table's resource (one of
    ``refreshed``). The entries left were emptied by a refresh whose load never completed, while dlt's cursor
    stays where it was: returned as (table, resource), for this run to refresh them again. Call it holding the
    source's lock, after its pending packages were loaded or discarded."""
    with pipeline.sql_client() as client:
        if client.execute_sql("SELECT to_regclass(%s)", OPEN_REFRESHES)[0][0] is None:
            return []  # no refresh was ever passed through in this database
        dataset = client.dataset_name
        with client.begin_transaction():
            if _columns(client, dataset, "_dlt_loads"):
                client.execute_sql(f"DELETE FROM {OPEN_REFRESHES} WHERE dataset = %s AND load_id IN "
                                   f"(SELECT load_id FROM {client.make_qualified_table_name('_dlt_loads')})",
                                   dataset)
            if refreshed:
                client.execute_sql(f"DELETE FROM {OPEN_REFRESHES} WHERE dataset = %s AND resource = ANY(%s)",
                                   dataset, sorted(refreshed))
            rows = client.execute_sql(f"SELECT table_name, resource FROM {OPEN_REFRESHES} WHERE dataset = %s "
                                      f"ORDER BY 1", dataset) or []
    return [(row[0], row[1]) for row in rows]


def _remove_open_load(client, load_id: str, tables: list[tuple[str, str, str | None]]) -> list[tuple[str, str, int]]:
    """Delete the rows ``load_id`` committed into ``tables`` ((schema, table, parent table) each), in the caller's
    transaction. Nested tables carry no load id: their rows go with their parent's, and so do those whose parent
    row is not in the table at all (a nested table's job may commit before its parent's)."""
    removed, ids = [], {}
    for schema, table, parent in sorted(tables, key=lambda entry: (entry[2] is not None, entry[1].count("__"))):
        columns = _columns(client, schema, table)
        qualified = f"{client.escape_column_name(schema)}.{client.escape_column_name(table)}"
        returning = "_dlt_id" if "_dlt_id" in columns else "NULL"
        if parent is None and "_dlt_load_id" in columns:
            deleted = client.execute_sql(f"DELETE FROM {qualified} WHERE _dlt_load_id = %s RETURNING {returning}",
                                         load_id) or []
        elif parent is not None and "_dlt_parent_id" in columns and _columns(client, schema, parent):
            above = f"{client.escape_column_name(schema)}.{client.escape_column_name(parent)}"
            deleted = client.execute_sql(
                f"DELETE FROM {qualified} n WHERE n._dlt_parent_id = ANY(%s) OR NOT EXISTS "
                f"(SELECT 1 FROM {above} p WHERE p._dlt_id = n._dlt_parent_id) RETURNING {returning}",
                list(ids.get(parent, ()))) or []
        else:
            continue  # the table is gone (dropped since), or holds no row that can be told apart
        ids[table] = {row[0] for row in deleted if row[0] is not None}
        if deleted:
            removed.append((load_id, qualified, len(deleted)))
    return removed


def _columns(client, schema: str, table: str) -> set[str]:
    rows = client.execute_sql("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND "
                              "table_name = %s", schema, table) or []
    return {row[0] for row in rows}

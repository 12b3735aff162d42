"""Load one configured source into its raw_<name> schema with dlt."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import dlt
from dlt.common.schema import Schema
from dlt.common.storages import LoadStorage, NormalizeStorage
from dlt.extract import DltResource, DltSource

from headwater.common.file_rows import files_read
from headwater.common.interpolation import SecretBlockError
from headwater.load.deletes import DeleteResult, detect_deletes
from headwater.load.progress import LoadProgress
from headwater.load.recovery import discard_pending, recover, settle_open_loads, settle_open_refreshes
from headwater.load.refusals import run_setting_aside
from headwater.load.reload import BackfillOutcome, Reload, ReloadError
from headwater.load.source_lock import LockNotAcquired, end_dead_sessions, load_application_name, source_lock
from headwater.load.stored_schemas import pipeline_name
from headwater.load.table_processor import attach_processors, protection_lookup, unchanged_tables
from headwater.load.write_modes import REPLACE_STRATEGY, add_history_hash, apply_write_mode
from headwater.plugins.connectors import STREAM_LAG, Connector
from headwater.postgres.address import PostgresAddress
from headwater.postgres.copy_ahead import ROWS_LOST, copying_ahead
from headwater.postgres.load_files import use_copy_ready_writer
from headwater.postgres.loader import FileCopy, postgres
from headwater.project.config import ProjectConfig, SourceConfig
from headwater.project.quarantine_settings import describe_retention
from headwater.quarantine import is_quarantine_table, table_of
from headwater.quarantine.naming import quarantine_table_name
from headwater.quarantine.purge import PurgeRequest, purge_quarantine

log = logging.getLogger(__name__)

# Arrow batches go to Postgres as Parquet through ADBC: the path that runs near COPY speed.
LOADER_FILE_FORMAT = "parquet"
# How --full-refresh empties a table in dlt: truncated with its cursor reset, never dropped (see _runs).
REFRESH_MODE = "drop_data"
# dlt settings Headwater relies on, unless the user set them.
DLT_DEFAULTS = {
    # Every raw row carries the load id that wrote it (run records and quarantine point back to it).
    "NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID": "true",
    # Load files live only until they are copied into Postgres on this machine: compressing them
    # costs more CPU on write and read than the disk it saves.
    "DATA_WRITER__COMPRESSION": "none",
    # Batches of one table may differ in string width (Arrow's string vs large_string, depending on
    # which reader made them); dlt then widens them to one schema instead of refusing to write them.
    "DATA_WRITER__ARROW_CONCAT_PROMOTE_OPTIONS": "default",
    # A loaded package's data files are not needed again (recovery only reads unfinished packages).
    "LOAD__DELETE_COMPLETED_JOBS": "true",
    # Merge, scd2 and replace tables are copied into a staging table first; emptied once the load is
    # recorded, it keeps no second copy of the last load on disk, and the next load does not pay for
    # truncating it at its start (a staging table of 1M rows: ~40 ms).
    "LOAD__TRUNCATE_STAGING_DATASET": "true",
}


class _ArrowHintNoise(logging.Filter):
    """Drop dlt's warning that Arrow and dlt disagree on hints such as a key column's nullability.

    Arrow marks every column nullable while a primary key is NOT NULL in dlt's schema; dlt keeps its
    own hints, which is what Headwater wants, yet warns on every batch of every keyed table.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema, several column hints were different" not in (
            record.getMessage()
        )


_ARROW_HINT_NOISE = _ArrowHintNoise()


@dataclass
class Widening:
    column: str
    before: str  # the SQL type the column had
    after: str  # the SQL type it has now


@dataclass
class TableLoad:
    table: str
    rows: int  # rows loaded into the table
    quarantined: int = 0  # rows set aside in <table>__quarantine by the same run
    files: list[dict] = field(default_factory=list)  # landing files read, one report each (headwater.common.file_rows)
    widened: list[Widening] = field(default_factory=list)  # columns whose type this run widened
    deletes: DeleteResult | None = None  # rows gone from the source, for tables with `deletes:`
    backfill: BackfillOutcome | None = None  # what a --since/--until window did to the table; None: no window

    @property
    def loaded(self) -> int:
        return self.rows

    @property
    def changed(self) -> bool:
        """The raw table changed: rows loaded, or rows removed or flagged because the source deleted them."""
        return self.loaded > 0 or bool(self.deletes and self.deletes.changed)

    @property
    def read(self) -> int:
        """Every row the run took from the source: it was either loaded or quarantined."""
        return self.rows + self.quarantined

    @property
    def skipped_lines(self) -> int:
        """Lines of the landing files read that hold no row: preamble, header, blank and comment lines."""
        return sum(report.get("skipped", 0) for report in self.files)

    @property
    def problem_files(self) -> list[dict]:
        """Files that gave no row: unreadable, empty or only a header."""
        return [report for report in self.files if report.get("status") != "loaded"]


def table_loads(row_counts: dict[str, int]) -> list[TableLoad]:
    """Per table, rows loaded and quarantined, from dlt's normalized row counts of one or more runs."""
    loads: dict[str, TableLoad] = {}
    for name, count in sorted(row_counts.items()):
        if name.startswith("_dlt"):
            continue
        table = table_of(name) if is_quarantine_table(name) else name
        load = loads.setdefault(table, TableLoad(table=table, rows=0))
        if table == name:
            load.rows += count
        else:
            load.quarantined += count
    return list(loads.values())


@dataclass
class SourceLoad:
    source: str
    dataset: str
    seconds: float
    tables: list[TableLoad] = field(default_factory=list)
    load_ids: list[str] = field(default_factory=list)
    error: str | None = None
    set_aside: list = field(default_factory=list)  # refusals.SetAside: rows Postgres refused, quarantined
    # headwater.quarantine.purge.Purged: resolved quarantine rows older than the source's retention, deleted
    purged: list = field(default_factory=list)
    retention: str | None = None  # that retention, as headwater.yaml writes it
    skipped: str | None = None  # why this run did not load the source at all (another run held it)
    lag: dict | None = None  # how far a streaming source's feed trails after the load (Connector STREAM_LAG)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def rows(self) -> int:
        return sum(table.rows for table in self.tables)


def pipelines_dir(state_dir: Path, address: PostgresAddress) -> Path:
    """dlt's local working folder, one per destination database.

    dlt keeps the authoritative state in the destination; keying the local copy by
    destination means pointing Headwater at another database never reuses cursors
    that belong to a different one.
    """
    key = hashlib.sha256(f"{address.host}:{address.port}/{address.database}".encode()).hexdigest()[:12]
    return state_dir / "pipelines" / key


def prepare_loads() -> None:
    """Process-wide settings every load relies on. Idempotent; called before loads start side by side, since
    the environment is not safe to write while other threads' connections read it."""
    for name, value in DLT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    logging.getLogger("dlt").addFilter(_ARROW_HINT_NOISE)  # adding the same filter twice is a no-op
    use_copy_ready_writer()  # load files are read once, by the COPY that follows (headwater.postgres.load_files)


def open_pipeline(config: ProjectConfig, source: SourceConfig, address: PostgresAddress,
                  progress: Callable[[str], None] | None = None) -> dlt.Pipeline:
    """The dlt pipeline of one source: `headwater_<source>` loading into `raw_<source>`.

    ``progress`` is told how far a long load has got (headwater.load.progress), every few seconds.
    """
    prepare_loads()
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name(source.name),
        destination=postgres(credentials=address.dlt_credentials(load_application_name(source.name)),
                             replace_strategy=REPLACE_STRATEGY,
                             naming_convention=source.naming),
        dataset_name=source.dataset,
        pipelines_dir=str(pipelines_dir(config.state_dir, address)),
        **({"progress": LoadProgress(source.name, progress)} if progress else {}),
    )
    _complete_storage_folders(pipeline)
    return pipeline


def _complete_storage_folders(pipeline: dlt.Pipeline) -> None:
    """Create the package folders of the pipeline's working folder that are missing.

    dlt writes a storage's version file before its package folders and takes the version file to mean they
    exist: a run killed in between leaves a folder that recovery cannot list. Opening the storages as their
    owner, as dlt's normalize and load steps do, creates what is missing and leaves what is there.
    """
    LoadStorage(True, [], pipeline._load_storage_config())
    NormalizeStorage(True, pipeline._normalize_storage_config())


def build_source(config: ProjectConfig, source: SourceConfig, connector: Connector, reload: Reload | None = None):
    """Call the connector with the source's settings and apply the per-table choices of headwater.yaml.

    ``reload`` may give tables a backfill window in place of their regular cursor.
    """
    dlt_source = connector.source(**config.resolved_settings(source))
    if isinstance(dlt_source, DltResource):  # a connector may be a single @dlt.resource
        dlt_source = DltSource.from_data(Schema(source.name), source.name, dlt_source)
    if source.tables:
        dlt_source = dlt_source.with_resources(*(table.name for table in source.tables))
    for table in source.tables:
        resource = dlt_source.resources[table.name]
        apply_write_mode(resource, table, reload.backfill_incremental(source, table) if reload else None,
                         connector.change_feed)
    attach_processors(config, source, dlt_source, connector.pii)  # steps, rules and quarantine, per selected table
    for table in source.tables:
        add_history_hash(dlt_source.resources[table.name], table)
    return dlt_source


def load_source(
    config: ProjectConfig,
    source: SourceConfig,
    connector: Connector,
    address: PostgresAddress,
    reload: Reload | None = None,
    progress: Callable[[str], None] | None = None,
) -> SourceLoad:
    """Extract, normalize and load one source; the cursor state commits with the data in the destination.

    The source is locked first (headwater.load.source_lock): another run loading it is waited for up to
    `run.lock_wait`, after which this run skips the source. Packages an interrupted run left pending are
    loaded next (headwater.load.recovery), then the source is extracted as usual, or reloaded as ``reload``
    asks (headwater.load.reload).
    """
    started = time.perf_counter()
    purpose = f"load pid {os.getpid()} on {socket.gethostname()}"
    try:
        with source_lock(address, source.name, config.run.lock_wait_seconds, purpose, waiting=progress):
            end_dead_sessions(address, source.name)
            return _load_locked(config, source, connector, address, reload, progress)
    except LockNotAcquired as busy:
        return SourceLoad(source=source.name, dataset=source.dataset, seconds=time.perf_counter() - started,
                          skipped=f"another run was loading it ({busy.holder or 'holder unknown'}); "
                                  f"waited {busy.waited:.0f} s (run.lock_wait), it loads on the next run")
    except Exception as error:  # the lock could not even be asked for: the database is unreachable
        return SourceLoad(source=source.name, dataset=source.dataset, seconds=time.perf_counter() - started,
                          error=_describe(error))


def _load_locked(
    config: ProjectConfig,
    source: SourceConfig,
    connector: Connector,
    address: PostgresAddress,
    reload: Reload | None,
    progress: Callable[[str], None] | None,
) -> SourceLoad:
    started = time.perf_counter()
    started_at = datetime.now(timezone.utc)
    pipeline = open_pipeline(config, source, address, progress)
    result = SourceLoad(source=source.name, dataset=source.dataset, seconds=0.0)
    types_before = address.column_types(source.dataset)
    try:
        # A whole-source refresh drops the data anyway, so a pending (perhaps failing) package is abandoned.
        abandon = bool(reload and reload.refreshes_source(source.name))
        refreshed = reload.refreshed_tables(source.name) if reload else frozenset()
        protection = protection_lookup(config, source, pipeline, connector.pii)
        recovered = recover(pipeline, LOADER_FILE_FORMAT, abandon_pending=abandon, abandon_tables=refreshed,
                            protection=protection)
        result.load_ids = list(recovered.load_ids)
        row_counts = dict(recovered.row_counts)
        result.set_aside = list(recovered.set_aside)
        built = build_source(config, source, connector, reload)
        if recovered.refresh_again:
            reload = _refreshing_again(reload, source, built, recovered.refresh_again)
        backfills = _backfill_outcomes(built, source, connector, reload)
        for index, (dlt_source, refresh) in enumerate(_runs(built, source, reload)):
            def read_again(index=index):
                return _runs(build_source(config, source, connector, reload), source, reload)[index][0]

            infos, set_aside, counts, passed = _run_copying_ahead(pipeline, dlt_source, refresh, protection,
                                                                  read_again)
            for name, count in passed.items():
                row_counts[name] = row_counts.get(name, 0) + count  # in no load file, so not in dlt's counts
            for info in infos:
                info.raise_on_failed_jobs()
                result.load_ids += list(info.loads_ids)
            if refresh is not None:  # refreshed and recorded: no run need refresh these tables again
                settle_open_refreshes(pipeline, frozenset(dlt_source.selected_resources))
            for name, count in counts.items():
                row_counts[name] = row_counts.get(name, 0) + count
            result.set_aside += set_aside
        for refused in result.set_aside:  # rows normalized for the table that went to its quarantine instead
            row_counts[refused.table] = row_counts.get(refused.table, 0) - refused.rows
            quarantine = quarantine_table_name(refused.table)
            row_counts[quarantine] = row_counts.get(quarantine, 0) + refused.rows
        result.tables = table_loads(row_counts)
        for table in source.tables:  # tables with nothing new still appear, with 0 rows
            if table.name not in {load.table for load in result.tables}:
                result.tables.append(TableLoad(table=table.name, rows=0))
        _add_file_reports(result, pipeline, started_at)
        _add_widenings(result, types_before, address.column_types(source.dataset))
        _add_backfills(result, backfills, pipeline)
        # Only here, after the whole source loaded: a failed load raised above and compares nothing.
        if any(table.deletes for table in source.tables):
            found = detect_deletes(source, connector, config.resolved_settings(source), address,
                                   pipeline.default_schema.naming)
            for table_load in result.tables:
                table_load.deletes = found.get(table_load.table)
        settle_open_loads(pipeline)  # the loads just recorded, and any discarded, leave headwater_ops.open_loads
        _acknowledge(config, source, connector, pipeline, built.name)
        result.lag = pipeline.state.get("sources", {}).get(built.name, {}).get(STREAM_LAG)
    except Exception as error:  # reported per source; the other sources still load
        result.error = _describe(error)
    if result.error is None:
        _apply_retention(config, source, address, pipeline, result)
    result.seconds = time.perf_counter() - started
    return result


def _run_copying_ahead(pipeline: dlt.Pipeline, dlt_source: DltSource, refresh: str | None,
                       protection, read_again: Callable[[], DltSource]):
    """One pipeline run of ``dlt_source``, large append tables COPY'd while extract runs
    (headwater.postgres.copy_ahead): its load infos, what was set aside, the rows normalized and the rows
    loaded in no load file, per table.

    Rows in no load file that could not be committed (a COPY the server failed or a row it refused, a
    column change mid-extract, a commit that failed) are lost to this run's package: it is discarded, as
    recovery would discard it, and the source read again (``read_again``) with every row in a load file,
    where a refused row is set aside as usual."""
    try:
        return _run_once(pipeline, dlt_source, refresh, protection, keep_files=False)
    except Exception as error:
        lost = _rows_lost(error)
        if lost is None:
            raise
    log.warning("%s: %s; the load is discarded and the source read again with every row in a load file",
                pipeline.pipeline_name, lost)
    if pipeline.has_pending_data:  # lost in the load step; in extract, nothing was kept
        discard_pending(pipeline)
    return _run_once(pipeline, read_again(), refresh, protection, keep_files=True)


def _run_once(pipeline: dlt.Pipeline, dlt_source: DltSource, refresh: str | None, protection, keep_files: bool):
    run = functools.partial(pipeline.run, dlt_source, loader_file_format=LOADER_FILE_FORMAT, refresh=refresh)
    with copying_ahead(pipeline, refreshing=refresh is not None, file_copy=FileCopy,
                       plain_tables=unchanged_tables(dlt_source), keep_files=keep_files) as ahead:
        infos, set_aside, counts = run_setting_aside(pipeline, LOADER_FILE_FORMAT, run, protection)
    return infos, set_aside, counts, dict(ahead.passed_rows) if ahead is not None else {}


def _rows_lost(error: BaseException | None) -> str | None:
    """The line of ``error``, or of an error it wraps, that says rows in no load file were lost, if one does
    (dlt carries a failed job's message as text)."""
    while error is not None:
        found = next((line[line.find(marker):] for line in str(error).splitlines() for marker in ROWS_LOST
                      if marker in line), None)
        if found is not None:
            return found
        error = error.__cause__ or error.__context__
    return None


def _acknowledge(config: ProjectConfig, source: SourceConfig, connector: Connector, pipeline: dlt.Pipeline,
                 source_name: str) -> None:
    """Let the connector release what the committed state says raw now holds (Connector.acknowledge)."""
    if connector.acknowledge is None:
        return
    state = pipeline.state.get("sources", {}).get(source_name, {})
    try:
        connector.acknowledge(config.resolved_settings(source), state)
    except Exception as error:  # the rows are loaded; the next load acknowledges them from the same state
        log.warning("%s: what was loaded could not be acknowledged to the source (the next load does): %s",
                    source.name, _describe(error))


def _apply_retention(config: ProjectConfig, source: SourceConfig, address: PostgresAddress, pipeline: dlt.Pipeline,
                     result: SourceLoad) -> None:
    """Delete the source's resolved quarantine rows older than its `quarantine: {retention: ...}`, if it sets one."""
    retention = config.quarantine_of(source).retention
    if retention is None or not pipeline.default_schema_name:
        return
    schema = pipeline.default_schema
    keys = {name: [column for column, hints in schema.get_table_columns(name).items() if hints.get("primary_key")]
            for name in schema.data_table_names()}
    try:
        result.purged = purge_quarantine(address, source.dataset, PurgeRequest(older_than=retention), keys=keys)
    except Exception as error:  # the rows stay for the next run; the load itself went through
        log.warning("%s: resolved quarantine rows could not be deleted (quarantine.retention): %s", source.name,
                    _describe(error))
        return
    result.retention = describe_retention(retention)


def _add_file_reports(result: SourceLoad, pipeline: dlt.Pipeline, since: datetime) -> None:
    """Each table's landing files read by this run, as its connector logged them in the resource state."""
    reports = files_read(pipeline.state, since)
    loads = {load.table: load for load in result.tables}
    for table, files in reports.items():
        load = loads.get(table)
        if load is None:  # a table whose files gave no row at all still shows, with its files
            load = TableLoad(table=table, rows=0)
            result.tables.append(load)
        load.files = files


def _backfill_outcomes(dlt_source: DltSource, source: SourceConfig, connector: Connector,
                       reload: Reload | None) -> dict[str, BackfillOutcome]:
    """Per table of every resource this load runs (as the resource names it), what the window does to it."""
    if reload is None or not reload.backfills:
        return {}
    outcomes = {}
    for name, resource in dlt_source.selected_resources.items():
        outcome = reload.backfill_outcome(source, name, connector.cursor_in_settings)
        if outcome is not None:
            outcomes[resource.table_name if isinstance(resource.table_name, str) else name] = outcome
    return outcomes


def _add_backfills(result: SourceLoad, outcomes: dict[str, BackfillOutcome], pipeline: dlt.Pipeline) -> None:
    if not outcomes:
        return
    normalize = pipeline.default_schema.naming.normalize_table_identifier  # how the destination names the table
    loads = {load.table: load for load in result.tables}
    for name, outcome in outcomes.items():
        table = normalize(name)
        if table not in loads:  # nothing loaded: the table still shows, with what the window did
            loads[table] = TableLoad(table=table, rows=0)
            result.tables.append(loads[table])
        loads[table].backfill = outcome


def _add_widenings(result: SourceLoad, before: dict, after: dict) -> None:
    loads = {load.table: load for load in result.tables}
    for (table, column), sql_type in sorted(after.items()):
        previous = before.get((table, column))
        if previous is not None and previous != sql_type and table in loads:
            loads[table].widened.append(Widening(column, previous, sql_type))


def _refreshing_again(reload: Reload | None, source: SourceConfig, built: DltSource,
                      entries: list[tuple[str, str]]) -> Reload | None:
    """``reload`` with the tables a full refresh emptied, and never filled, refreshed once more: ``entries``
    (table, resource)."""
    if reload is not None and reload.refreshes_source(source.name):
        return reload  # refreshed whole anyway
    resources = {resource for _, resource in entries}
    again = frozenset(resources & set(built.selected_resources))
    for resource in sorted(resources - again):
        log.warning("%s: table %s was emptied by a full refresh that never completed, and is not loaded any more: "
                    "refresh it with `headwater run --full-refresh %s.%s` once it is", source.name, resource,
                    source.name, resource)
    if not again:
        return reload
    log.warning("%s: the full refresh of %s emptied it and never completed (its cursor stayed where it was); "
                "this run refreshes it again", source.name, ", ".join(sorted(again)))
    current = reload or Reload()
    full_refresh = dict(current.full_refresh)
    full_refresh[source.name] = full_refresh.get(source.name, frozenset()) | again
    return dataclasses.replace(current, full_refresh=full_refresh)


def _runs(dlt_source: DltSource, source: SourceConfig, reload: Reload | None):
    """The pipeline runs of this load: (source or subset, dlt refresh mode).

    A refresh empties the tables (``drop_data``: truncate them and reset their cursors) rather than
    dropping them: the dbt staging views, and any other view, built on a raw table keep working, where
    dropping the table would fail on them. Refreshing single tables takes a run of their own, because
    dlt empties every resource selected in a refreshing run; the source's other tables then load as usual.
    """
    if reload is None or source.name not in reload.full_refresh:
        return [(dlt_source, None)]
    if reload.refreshes_source(source.name):
        return [(dlt_source, REFRESH_MODE)]
    selected = list(dlt_source.selected_resources)
    tables = reload.refreshed_tables(source.name)
    unknown = sorted(tables - set(selected))
    if unknown:
        raise ReloadError(
            f"--full-refresh: source {source.name!r} has no table {', '.join(unknown)}; allowed: "
            + ", ".join(f"{source.name}.{name}" for name in selected)
        )
    runs = [(dlt_source.with_resources(*sorted(tables)), REFRESH_MODE)]
    rest = [name for name in selected if name not in tables]
    if rest:
        runs.append((dlt_source.with_resources(*rest), None))
    return runs


def _describe(error: BaseException) -> str:
    # dlt wraps the real error in its own step and extraction exceptions; the first
    # error below those wrappers is the one that says what went wrong.
    while error.__cause__ is not None and type(error).__module__.startswith("dlt."):
        error = error.__cause__
    if type(error).__name__ == "DestinationTerminalException" or isinstance(error, SecretBlockError):
        return str(error)  # messages written for people
    return f"{type(error).__name__}: {error}"

"""Load one configured source into its raw_<name> schema with dlt."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dlt
from dlt.common.schema import Schema
from dlt.extract import DltResource, DltSource

from headwater.config import ProjectConfig, SourceConfig
from headwater.connectors import Connector
from headwater.deletes import DeleteResult, detect_deletes
from headwater.destination import PostgresAddress
from headwater.postgres_loader import postgres
from headwater.quarantine import is_quarantine_table, table_of
from headwater.recovery import recover
from headwater.reload import Reload, ReloadError
from headwater.table_processor import attach_processors
from headwater.write_modes import REPLACE_STRATEGY, add_history_hash, apply_write_mode

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
class TableLoad:
    table: str
    rows: int  # rows loaded into the table
    quarantined: int = 0  # rows set aside in <table>__quarantine by the same run
    deletes: DeleteResult | None = None  # rows gone from the source, for tables with `deletes:`

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


def open_pipeline(config: ProjectConfig, source: SourceConfig, address: PostgresAddress) -> dlt.Pipeline:
    """The dlt pipeline of one source: `headwater_<source>` loading into `raw_<source>`."""
    for name, value in DLT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    logging.getLogger("dlt").addFilter(_ARROW_HINT_NOISE)  # adding the same filter twice is a no-op
    return dlt.pipeline(
        pipeline_name=f"headwater_{source.name}",
        destination=postgres(credentials=address.dlt_credentials(), replace_strategy=REPLACE_STRATEGY),
        dataset_name=source.dataset,
        pipelines_dir=str(pipelines_dir(config.state_dir, address)),
    )


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
        apply_write_mode(resource, table, reload.backfill_incremental(source.name, table) if reload else None)
    attach_processors(config, source, dlt_source)  # steps, rules and quarantine, per selected table
    for table in source.tables:
        add_history_hash(dlt_source.resources[table.name], table)
    return dlt_source


def load_source(
    config: ProjectConfig,
    source: SourceConfig,
    connector: Connector,
    address: PostgresAddress,
    reload: Reload | None = None,
) -> SourceLoad:
    """Extract, normalize and load one source; the cursor state commits with the data in the destination.

    Packages an interrupted run left pending are loaded first (headwater.recovery), then the source
    is extracted as usual, or reloaded as ``reload`` asks (headwater.reload).
    """
    started = time.perf_counter()
    pipeline = open_pipeline(config, source, address)
    result = SourceLoad(source=source.name, dataset=source.dataset, seconds=0.0)
    try:
        # A whole-source refresh drops the data anyway, so a pending (perhaps failing) package is abandoned.
        abandon = bool(reload and reload.refreshes_source(source.name))
        recovered = recover(pipeline, LOADER_FILE_FORMAT, abandon_pending=abandon)
        result.load_ids = list(recovered.load_ids)
        row_counts = dict(recovered.row_counts)
        for dlt_source, refresh in _runs(build_source(config, source, connector, reload), source, reload):
            info = pipeline.run(dlt_source, loader_file_format=LOADER_FILE_FORMAT, refresh=refresh)
            info.raise_on_failed_jobs()
            result.load_ids += list(info.loads_ids)
            normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
            for name, count in (normalized.row_counts if normalized else {}).items():
                row_counts[name] = row_counts.get(name, 0) + count
        result.tables = table_loads(row_counts)
        for table in source.tables:  # tables with nothing new still appear, with 0 rows
            if table.name not in {load.table for load in result.tables}:
                result.tables.append(TableLoad(table=table.name, rows=0))
        # Only here, after the whole source loaded: a failed load raised above and compares nothing.
        if any(table.deletes for table in source.tables):
            found = detect_deletes(source, connector, config.resolved_settings(source), address,
                                   pipeline.default_schema.naming)
            for table_load in result.tables:
                table_load.deletes = found.get(table_load.table)
    except Exception as error:  # reported per source; the other sources still load
        result.error = _describe(error)
    result.seconds = time.perf_counter() - started
    return result


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
    return f"{type(error).__name__}: {error}"

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
from headwater.destination import PostgresAddress

# Arrow batches go to Postgres as Parquet through ADBC: the path that runs near COPY speed.
LOADER_FILE_FORMAT = "parquet"
# dlt settings Headwater relies on, unless the user set them: every raw row carries the
# load id that wrote it (run records and quarantine point back to it).
DLT_DEFAULTS = {"NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID": "true"}


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
    rows: int


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


def build_source(config: ProjectConfig, source: SourceConfig, connector: Connector):
    """Call the connector with the source's settings and apply the per-table choices of headwater.yaml."""
    dlt_source = connector.source(**config.resolved_settings(source))
    if isinstance(dlt_source, DltResource):  # a connector may be a single @dlt.resource
        dlt_source = DltSource.from_data(Schema(source.name), source.name, dlt_source)
    if source.tables:
        dlt_source = dlt_source.with_resources(*(table.name for table in source.tables))
    for table in source.tables:
        resource = dlt_source.resources[table.name]
        hints: dict = {"write_disposition": table.effective_write_disposition}
        if table.primary_key:
            hints["primary_key"] = table.primary_key
        if table.cursor:
            hints["incremental"] = dlt.sources.incremental(table.cursor)
        if table.deduplicate_by and table.effective_write_disposition == "merge":
            hints["columns"] = {table.deduplicate_by: {"name": table.deduplicate_by, "dedup_sort": "desc"}}
        resource.apply_hints(**hints)
    return dlt_source


def load_source(
    config: ProjectConfig, source: SourceConfig, connector: Connector, address: PostgresAddress
) -> SourceLoad:
    """Extract, normalize and load one source; the cursor state commits with the data in the destination."""
    started = time.perf_counter()
    for name, value in DLT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    logging.getLogger("dlt").addFilter(_ARROW_HINT_NOISE)  # adding the same filter twice is a no-op
    pipeline = dlt.pipeline(
        pipeline_name=f"headwater_{source.name}",
        destination=dlt.destinations.postgres(credentials=address.dlt_credentials()),
        dataset_name=source.dataset,
        pipelines_dir=str(pipelines_dir(config.state_dir, address)),
    )
    result = SourceLoad(source=source.name, dataset=source.dataset, seconds=0.0)
    try:
        info = pipeline.run(build_source(config, source, connector), loader_file_format=LOADER_FILE_FORMAT)
        info.raise_on_failed_jobs()
        result.load_ids = list(info.loads_ids)
        row_counts = pipeline.last_trace.last_normalize_info.row_counts if pipeline.last_trace else {}
        result.tables = [
            TableLoad(table=name, rows=count)
            for name, count in sorted(row_counts.items())
            if not name.startswith("_dlt")
        ]
        for table in source.tables:  # tables with nothing new still appear, with 0 rows
            if table.name not in {load.table for load in result.tables}:
                result.tables.append(TableLoad(table=table.name, rows=0))
    except Exception as error:  # reported per source; the other sources still load
        result.error = _describe(error)
    result.seconds = time.perf_counter() - started
    return result


def _describe(error: BaseException) -> str:
    # dlt wraps the real error in its own step and extraction exceptions; the first
    # error below those wrappers is the one that says what went wrong.
    while error.__cause__ is not None and type(error).__module__.startswith("dlt."):
        error = error.__cause__
    return f"{type(error).__name__}: {error}"

"""Rows Postgres refuses are set aside in quarantine, so one bad batch never holds up its source.

A load job fails terminally when Postgres refuses its rows (a value no column of that type can
hold, say). dlt then keeps the whole package pending, and every later run of the source fails on
the same job, holding back every table of the source. Here the refused job's rows go to the
table's quarantine instead, with the database's reason and where each row came from, and the rest
of the package loads. In the order that keeps every row exactly once through a crash:

1. the rows are written as a new load package for ``<table>__quarantine`` (merged on a stable id,
   so writing them twice keeps them once);
2. the refused jobs are taken out of their package: for a table loaded through a staging table
   (merge, replace, scd2) all of its jobs, because its merge only runs once all of them are in;
3. the packages load: the rest of the first, then the quarantine rows.

A crash before 2 writes the rows again next time; after 2, both packages are pending and load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dlt.common.storages.load_package import ParsedLoadJobFileName

from headwater.common.file_rows import FILE_COLUMN, LINE_COLUMN
from headwater.quarantine import records

log = logging.getLogger(__name__)

EXCEPTION_SUFFIX = ".exception"
RULE = "load"


@dataclass
class SetAside:
    """Rows of one table that Postgres refused, now in its quarantine."""

    table: str
    rows: int
    reason: str
    load_ids: list[str] = field(default_factory=list)
    dropped_tables: list[str] = field(default_factory=list)  # nested tables whose rows went with them


def set_aside_refused_jobs(pipeline: dlt.Pipeline, loader_file_format: str) -> list[SetAside]:
    """Quarantine the rows of every terminally failed copy job in the pending packages; [] when there is none
    that can be set aside (the caller then reports the failure as it is)."""
    packages = pipeline._get_load_storage().normalized_packages
    refused = []
    for load_id in packages.list_packages():
        for _, job in _refused_jobs(packages, load_id):
            if job.file_format != "parquet" or job.table_name.startswith("_dlt"):
                return []  # a failed SQL job (a merge, say) has no rows to set aside
            refused.append((load_id, job))
    if not refused:
        return []
    results = []
    for load_id, table in sorted({(load_id, job.table_name) for load_id, job in refused}):
        results.append(_set_aside_table(pipeline, packages, load_id, table, loader_file_format))
    for result in results:
        log.warning("%s: Postgres refused %d rows of %s; they are in %s: %s", pipeline.pipeline_name, result.rows,
                    result.table, records.quarantine_table_name(result.table), result.reason)
    return results


def _set_aside_table(pipeline, packages, load_id: str, table: str, loader_file_format: str) -> SetAside:
    package_schema = packages.load_schema(load_id)
    schema = pipeline.schemas[package_schema.name]
    staged = package_schema.tables.get(table, {}).get("write_disposition", "append") != "append"
    jobs = [(state, job) for state, job in packages.list_all_jobs_with_states(load_id)
            if job.table_name == table or job.table_name.startswith(f"{table}__")]
    refused = {job.file_name() for _, job in _refused_jobs(packages, load_id)}
    reason = next((_failure(packages, load_id, state, job) for state, job in jobs if job.file_name() in refused),
                  "refused by Postgres")
    # Appended rows of completed jobs are in the table already; staged ones only reach it with the merge.
    taken = [(state, job) for state, job in jobs if job.file_name() in refused or staged]
    key = [name for name, column in package_schema.get_table_columns(table).items() if column.get("primary_key")]
    entries = []
    nested = sorted({job.table_name for _, job in taken if job.table_name != table})
    for state, job in taken:
        if job.table_name != table or job.file_format != "parquet":
            continue
        path = packages.storage.make_full_path(packages.get_job_file_path(load_id, state, job.file_name()))
        for row in _rows(pq.read_table(path)):
            entries.append(_entry(row, table, key, reason))
    if entries:
        rows = records.build_rows(table, entries, {name: None for name in key})

        def refused_rows():
            yield records.mark(rows, table)

        pipeline.extract(dlt.resource(refused_rows, name=table), schema=schema, loader_file_format=loader_file_format)
        pipeline.normalize()
    for state, job in taken:
        path = packages.get_job_file_path(load_id, state, job.file_name())
        for leftover in (path, path + EXCEPTION_SUFFIX):  # a failed job's message sits next to it
            if packages.storage.has_file(leftover):
                packages.storage.delete(leftover)
    return SetAside(table, len(entries), reason, [load_id], nested)


def _refused_jobs(packages, load_id: str):
    """(state, job) of the jobs whose last attempt failed terminally: dlt puts them back among the new jobs
    (to try again) with a terminal exception recorded, or, configured so, among the failed jobs."""
    for job_file in packages.list_failed_jobs(load_id):
        yield "failed_jobs", ParsedLoadJobFileName.parse(job_file)
    for job_file in packages.list_new_jobs(load_id):
        job = ParsedLoadJobFileName.parse(job_file)
        if job.retry_count and packages.get_last_job_exception(load_id, job)[0] == "terminal":
            yield "new_jobs", job


def _failure(packages, load_id: str, state: str, job: ParsedLoadJobFileName) -> str:
    if state == "failed_jobs":
        message = packages.get_job_failed_message(load_id, job)
    else:
        message = packages.get_last_job_exception(load_id, job)[1]
    # dlt records the traceback: its last line is the exception, "<module.Class>: <message>".
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    if not lines:
        return "refused by Postgres"
    last = lines[-1]
    head, _, rest = last.partition(": ")
    return rest if rest and "." in head and " " not in head else last


def _rows(table: pa.Table) -> list[dict]:
    """The rows as Python values; temporal and decimal values as Arrow writes them, since the value the
    database refused may be one Python cannot hold either (a timestamp 285,000 years BC)."""
    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_temporal(kind) or pa.types.is_decimal(kind):
            column = pc.cast(column, pa.string())
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names).to_pylist()


def _entry(row: dict, table: str, key: list[str], reason: str) -> dict:
    record = {name: value for name, value in row.items() if not name.startswith("_dlt_")}
    if row.get(FILE_COLUMN) is not None and row.get(LINE_COLUMN) is not None:
        location = f"{row[FILE_COLUMN]}:{row[LINE_COLUMN]}"
    else:
        values = [f"{name}={row[name]}" for name in key if row.get(name) is not None]
        location = f"{table}[{', '.join(values)}]" if values else table
    return {"record": records.record_json(record), "rule": RULE, "reason": reason, "location": location,
            "keys": {name: row.get(name) for name in key}}


def refusal_of(error: BaseException) -> bool:
    """The load step failed because a job failed terminally (not a connection or a crash)."""
    while error is not None:
        if type(error).__name__ in ("LoadClientJobFailed", "LoadClientJobTerminalRetry"):
            return True
        error = error.__cause__ or error.__context__
    return False



def run_setting_aside(pipeline: dlt.Pipeline, loader_file_format: str, run: Callable):
    """``run()`` (a pipeline run); when Postgres refuses a job, set its rows aside and load the rest.

    Returns the runs' load infos, what was set aside, and the rows the runs normalized per table.
    """
    try:
        info = run()
        return [info], [], normalized_counts(pipeline)
    except Exception as error:
        if not refusal_of(error):
            raise
        counts = normalized_counts(pipeline)  # the failed run's trace: what it extracted and normalized
        set_aside = set_aside_refused_jobs(pipeline, loader_file_format)
        if not set_aside:
            raise
    info = pipeline.run(loader_file_format=loader_file_format)
    for name, count in normalized_counts(pipeline).items():
        counts[name] = counts.get(name, 0) + count
    return [info], set_aside, counts


def normalized_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows per table the pipeline's last run normalized."""
    normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    return dict(normalized.row_counts) if normalized else {}

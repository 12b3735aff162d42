"""Rows Postgres refuses are set aside in quarantine, so one bad row never holds up its source.

A load job fails terminally when Postgres refuses its rows (a value no column of that type can
hold, text where a time was, say). dlt then keeps the whole package pending, and every later run of
the source would fail on the same job, holding back every table of the source. Here the refused
job's rows are copied again, in halves, into a scratch table (headwater.postgres.refused_rows) until
the refused rows stand alone: those go to the table's quarantine with Postgres's reason and where
each came from (``file:line``), and the job keeps the others, which load in the same run. Where the
rows cannot be told apart (a column of a landing file has a type the table's column cannot take at
all), every row of that file is set aside, with a reason that says so and what to do.

A job that fails because the connection or the server failed is not refused (headwater.postgres.
loader.refuses_data): dlt loads it again, and nothing is set aside.

In the order that keeps every row exactly once through a crash:

1. the refused rows are found, writing nothing;
2. they are written as a new load package for ``<table>__quarantine`` (merged on a stable id, so
   writing them twice keeps them once);
3. the rows of nested tables that belong to the refused rows are dropped (from the job files still to
   load, and from the table a nested job already copied them into), then the refused job's file is
   replaced by one holding only the rows that load (an atomic rename), or deleted when none do;
4. the packages load: the rest of the first, then the quarantine rows.

The refused rows went through the table's steps, so its `pii` steps treated them already; columns declared
PII without a step are masked in their records (headwater.quarantine.protection), and in the reasons.

A crash before 3 finds and writes the same rows again next time; after 3, both packages are pending
and load.
"""

from __future__ import annotations

import functools
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dlt.common.storages.load_package import ParsedLoadJobFileName

from headwater.common.file_rows import FILE_COLUMN, LINE_COLUMN
from headwater.postgres.copy_ahead import passed_through, rows_lost
from headwater.postgres.refused_rows import Refusal, find_refused_rows
from headwater.quarantine import records
from headwater.quarantine.naming import is_quarantine_table
from headwater.quarantine.protection import NO_PROTECTION, Protected, RecordProtection, redacted

# Which protection a table's quarantine records get (headwater.load.table_processor.protection_lookup).
ProtectionOf = Callable[[str], RecordProtection]

log = logging.getLogger(__name__)

EXCEPTION_SUFFIX = ".exception"
RULE = "load"
# Rounds of setting aside in one run: a package can hold refused jobs of several tables, and dlt stops
# starting jobs after the first one fails, so each round may reveal more.
MAX_ROUNDS = 5
REWRITE_FILE = "headwater_rewrite.parquet"  # in the package folder, outside the job folders dlt lists


@dataclass
class SetAside:
    """Rows of one table that Postgres refused, now in its quarantine."""

    table: str
    rows: int
    reason: str  # the reason, or the first of them and how many others
    load_ids: list[str] = field(default_factory=list)
    dropped_tables: list[str] = field(default_factory=list)  # nested tables whose rows went with them
    files: list[str] = field(default_factory=list)  # landing files whose rows were set aside whole


def set_aside_refused_jobs(pipeline: dlt.Pipeline, loader_file_format: str,
                          protection: ProtectionOf | None = None) -> list[SetAside] | None:
    """Quarantine the refused rows of every terminally failed copy job in the pending packages, and put the
    jobs back to load the rest. None when a failed job has no rows to set aside (the caller then reports
    the failure as it is); [] when the failed jobs copy now (they load again, nothing is set aside)."""
    packages = pipeline._get_load_storage().normalized_packages
    refused = []
    for load_id in packages.list_packages():
        for state, job in _refused_jobs(packages, load_id):
            if job.file_format != "parquet" or job.table_name.startswith("_dlt"):
                return None  # a failed SQL job (a merge, say) has no rows to set aside
            if rows_lost(pipeline.dataset_name, job.table_name, load_id):
                return None  # rows in no load file were lost, not refused: the package can only be discarded
            refused.append((load_id, state, job))
    if not refused:
        return None
    searches = [_search(pipeline, packages, load_id, state, job) for load_id, state, job in refused]
    results = {}
    for (load_id, table), table_searches in _by_table(searches).items():
        protecting = protection(table) if protection is not None else NO_PROTECTION
        results[load_id, table] = _quarantine(pipeline, packages, load_id, table, table_searches, loader_file_format,
                                              protecting)
    for search in searches:
        dropped = results[search.load_id, search.job.table_name].dropped_tables
        dropped += [name for name in search.rewrite(pipeline, packages) if name not in dropped]
    results = [result for result in results.values() if result.rows]
    for result in results:
        log.warning("%s: Postgres refused %d rows of %s; they are in %s: %s", pipeline.pipeline_name, result.rows,
                    result.table, records.quarantine_table_name(result.table), result.reason)
    return results


@dataclass
class _JobSearch:
    """One refused job: its rows, which of them Postgres refuses, and the job's file to rewrite."""

    load_id: str
    state: str
    job: ParsedLoadJobFileName
    path: str  # the job file, relative to the package storage
    rows: pa.Table
    refusals: list[Refusal]
    key: list[str]

    @property
    def refused_rows(self) -> list[int]:
        return sorted({index for refusal in self.refusals for index in refusal.rows})

    def kept(self) -> pa.Table:
        refused = set(self.refused_rows)
        return self.rows.filter(pa.array([index not in refused for index in range(self.rows.num_rows)]))

    def rewrite(self, pipeline: dlt.Pipeline, packages) -> list[str]:
        """Replace the job's file by one holding only the rows that load, and forget the job's failure: it runs
        again with the package. Returns the nested tables whose rows of the refused rows were dropped.

        Nested rows first: a crash before the job's own file is rewritten finds the same refused rows again,
        and their nested rows already gone."""
        dropped = []
        if self.refusals and "_dlt_id" in self.rows.column_names:
            gone = set(self.rows.column("_dlt_id").take(self.refused_rows).to_pylist())
            dropped = _drop_nested_rows(pipeline, packages, self.load_id, self.job.table_name, gone)
        if self.refusals:
            # A table with rows passed through keeps its job, even emptied: the job is what commits them.
            passed = passed_through(pipeline.dataset_name, self.job.table_name, self.load_id)
            _replace_rows(packages, self.load_id, self.path, self.kept(), keep_empty=passed is not None)
        _forget_failure(packages, self.load_id, self.state, self.job)
        return dropped


def _search(pipeline: dlt.Pipeline, packages, load_id: str, state: str, job: ParsedLoadJobFileName) -> _JobSearch:
    package_schema = packages.load_schema(load_id)
    table = job.table_name
    path = packages.get_job_file_path(load_id, state, job.file_name())
    rows = pq.read_table(packages.storage.make_full_path(path))
    schema_name = _target_schema(pipeline, package_schema, table)
    columns = package_schema.get_table_columns(table)
    client = pipeline.destination_client()
    refusals = find_refused_rows(client.config.credentials.to_native_representation(), schema_name, table, columns,
                                 client.capabilities, rows)
    key = [name for name, column in columns.items() if column.get("primary_key")]
    return _JobSearch(load_id, state, job, path, rows, refusals or [], key)


def _target_schema(pipeline: dlt.Pipeline, package_schema, table: str) -> str:
    """The schema the job copied into: the staging dataset for merge, replace and scd2 tables."""
    staged = package_schema.tables.get(table, {}).get("write_disposition", "append") != "append"
    with pipeline.sql_client() as client:
        if not staged:
            return client.dataset_name
        with client.with_staging_dataset():
            staging = client.dataset_name
            exists = client.execute_sql(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s", staging, table)
        return staging if exists else client.dataset_name


def _drop_nested_rows(pipeline: dlt.Pipeline, packages, load_id: str, table: str, gone: set[str]) -> list[str]:
    """Drop the rows of ``table``'s nested tables that belong to the refused rows (``gone``: their ``_dlt_id``),
    level by level: from the job files still to load, and from the table a job already copied them into."""
    dropped = []
    jobs: dict[str, list] = {}
    for state, job in packages.list_all_jobs_with_states(load_id):
        if job.table_name.startswith(f"{table}__") and not is_quarantine_table(job.table_name):
            jobs.setdefault(job.table_name, []).append((state, job))
    package_schema = packages.load_schema(load_id)
    for nested in sorted(jobs, key=lambda name: name.count("__")):  # parents before children
        removed: set[str] = set()
        for state, job in jobs[nested]:
            path = packages.get_job_file_path(load_id, state, job.file_name())
            if job.file_format == "parquet" and state != "completed_jobs" and packages.storage.has_file(path):
                rows = pq.read_table(packages.storage.make_full_path(path))
                belongs = [parent in gone for parent in rows.column("_dlt_parent_id").to_pylist()]
                if any(belongs):
                    removed |= set(rows.filter(pa.array(belongs)).column("_dlt_id").to_pylist())
                    _replace_rows(packages, load_id, path, rows.filter(pa.array([not taken for taken in belongs])))
        if gone and any(state in ("completed_jobs", "started_jobs") for state, _ in jobs[nested]):
            removed |= delete_children(pipeline, _target_schema(pipeline, package_schema, nested), nested, gone)
        if removed:
            dropped.append(nested)
            gone = gone | removed
    return dropped


def delete_children(pipeline: dlt.Pipeline, schema: str, table: str, parents: set[str]) -> set[str]:
    """Delete the rows of ``schema.table`` whose parent is one of ``parents``; their ``_dlt_id``."""
    with pipeline.sql_client() as client:
        qualified = f"{client.escape_column_name(schema)}.{client.escape_column_name(table)}"
        with client.begin_transaction():
            deleted = client.execute_sql(f"DELETE FROM {qualified} WHERE _dlt_parent_id = ANY(%s) RETURNING _dlt_id",
                                         list(parents))
    return {row[0] for row in deleted or []}


def _by_table(searches: list[_JobSearch]) -> dict[tuple[str, str], list[_JobSearch]]:
    tables: dict[tuple[str, str], list[_JobSearch]] = {}
    for search in searches:
        tables.setdefault((search.load_id, search.job.table_name), []).append(search)
    return tables


def _quarantine(pipeline, packages, load_id: str, table: str, searches: list[_JobSearch],
                loader_file_format: str, protection: RecordProtection = NO_PROTECTION) -> SetAside:
    """Write the refused rows of ``table`` as a new load package of its quarantine table."""
    source = pipeline.pipeline_name.removeprefix("headwater_")
    entries, reasons, whole, shown = [], Counter(), {}, {}
    for search in searches:
        refused = search.refused_rows
        picked = search.rows.take(refused) if refused else search.rows.slice(0, 0)
        protected = protection.protect_loaded(
            [{name: value for name, value in row.items() if not name.startswith("_dlt_")} for row in _rows(picked)])
        by_index = dict(zip(refused, protected, strict=True))
        for row in protected:
            shown.update(row.shown)
        refused_whole = _files_refused_whole(search.rows, refused)
        for refusal in search.refusals:
            files = sorted(_files_of(search.rows, refusal.rows))
            whole_files = files if files and (refusal.together or set(files) <= refused_whole) else []
            reason = redacted(_reason(refusal, files, whole_files, source, table), shown)
            for index in refusal.rows:
                entries.append(_entry(by_index[index], table, search.key, reason))
            if whole_files and not refusal.exhausted:
                for name in whole_files:
                    whole.setdefault(name, refusal)
            else:
                reasons[reason] += len(refusal.rows)
    if entries:
        key = searches[0].key
        rows = records.build_rows(table, entries, {name: None for name in key})

        def refused_rows():
            yield records.mark(rows, table)

        schema = pipeline.schemas[packages.load_schema(load_id).name]
        pipeline.extract(dlt.resource(refused_rows, name=table), schema=schema, loader_file_format=loader_file_format)
        pipeline.normalize()
    summary = redacted(_summary(whole, reasons, source, table), shown)
    return SetAside(table, len(entries), summary, [load_id], [], sorted(whole))


def _reason(refusal: Refusal, files: list[str], whole_files: list[str], source: str, table: str) -> str:
    """The refusal's reason; for rows of a file none of whose rows load, or rows that could not be told
    apart, what that means and what to do."""
    if refusal.exhausted:
        return (f"{refusal.reason}. The refused rows of {', '.join(files) or 'this load'} could not be told "
                f"apart from the others, so these rows are set aside together; fix the refused values and "
                f"replay them (headwater quarantine replay {source}.{table})")
    if whole_files:
        return _whole_files_reason(whole_files, refusal, source, table)
    return refusal.reason


def _whole_files_reason(files: list[str], refusal: Refusal, source: str, table: str) -> str:
    why = (f"a column's type does not fit the table's whatever the values: {refusal.detail}" if refusal.together
           else f"this row: {refusal.detail}")
    return (f"Postgres refuses every row of {', '.join(files)} for {refusal.where} ({why}), so the file's rows are "
            f"set aside: {_file_fix(source, table)}")


def _file_fix(source: str, table: str) -> str:
    return (f"correct the file (a changed file is read again) or reload the table with the file's types "
            f"(headwater run --full-refresh {source}.{table})")


def _files_refused_whole(rows: pa.Table, refused: list[int]) -> set[str]:
    """Landing files every row of which is refused."""
    if FILE_COLUMN not in rows.column_names or not refused:
        return set()
    names = rows.column(FILE_COLUMN).to_pylist()
    counts, refused_counts = Counter(names), Counter(names[index] for index in refused)
    return {name for name, count in refused_counts.items() if name is not None and count == counts[name]}


def _files_of(rows: pa.Table, indexes: list[int]) -> set[str]:
    if FILE_COLUMN not in rows.column_names or not indexes:
        return set()
    return set(rows.column(FILE_COLUMN).take(indexes).to_pylist()) - {None}


def _summary(whole: dict[str, Refusal], reasons: Counter, source: str, table: str) -> str:
    """One line for the run's summary: files refused whole, by name, then the commonest reason of the rest."""
    parts = []
    if whole:
        names, first = sorted(whole), next(iter(whole.values()))
        why = "a column's type does not fit the table's" if first.together else f"the first: {first.detail}"
        parts.append(f"Postgres refuses every row of {', '.join(names)} for {first.where} ({why}): "
                     f"{_file_fix(source, table)}")
    if reasons:
        [(common, _)] = reasons.most_common(1)
        others = len(reasons) - 1
        parts.append(common if not others else
                     f"{common} (and {others} other reason{'s' if others > 1 else ''}: "
                     f"headwater quarantine show {source}.{table})")
    return "; ".join(parts) or "refused by Postgres"


def _replace_rows(packages, load_id: str, path: str, kept: pa.Table, keep_empty: bool = False) -> None:
    """The job file at ``path`` now holds ``kept``; deleted when that is no row (unless ``keep_empty``). An atomic
    rename: a crash leaves the old file or the new one, never half of either."""
    full = packages.storage.make_full_path(path)
    if not kept.num_rows and not keep_empty:
        if os.path.exists(full):
            os.remove(full)
        return
    staged = os.path.join(packages.storage.make_full_path(packages.get_package_path(load_id)), REWRITE_FILE)
    pq.write_table(kept, staged)
    os.replace(staged, full)


def _forget_failure(packages, load_id: str, state: str, job: ParsedLoadJobFileName) -> None:
    """Remove the job's recorded failure, and bring a failed job back among the jobs to load."""
    path = packages.get_job_file_path(load_id, state, job.file_name())
    recorded = [path + EXCEPTION_SUFFIX,
                os.path.join(packages.get_package_path(load_id), packages.EXCEPTIONS_FOLDER,
                             job._replace(retry_count=job.retry_count - 1).to_exception_file_name())]
    if state == "failed_jobs" and packages.storage.has_file(path):
        packages.storage.atomic_rename(path, packages.get_job_file_path(load_id, "new_jobs", job.file_name()))
    for leftover in recorded:
        if packages.storage.has_file(leftover):
            packages.storage.delete(leftover)


def _refused_jobs(packages, load_id: str):
    """(state, job) of the jobs whose last attempt failed terminally: dlt puts them back among the new jobs
    (to try again) with a terminal exception recorded, or, configured so, among the failed jobs."""
    for job_file in packages.list_failed_jobs(load_id):
        yield "failed_jobs", ParsedLoadJobFileName.parse(job_file)
    for job_file in packages.list_new_jobs(load_id):
        job = ParsedLoadJobFileName.parse(job_file)
        if job.retry_count and packages.get_last_job_exception(load_id, job)[0] == "terminal":
            yield "new_jobs", job


def failure_of(packages, load_id: str, state: str, job: ParsedLoadJobFileName) -> str | None:
    """The message of the job's last failure, as people read it; None when it has not failed."""
    if state == "failed_jobs":
        message = packages.get_job_failed_message(load_id, job)
    elif state == "new_jobs" and job.retry_count:
        message = packages.get_last_job_exception(load_id, job)[1]
    else:
        return None
    # dlt records the traceback: its last line is the exception, "<module.Class>: <message>".
    lines = [line for line in (message or "").strip().splitlines() if line.strip()]
    if not lines:
        return None
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


def _entry(row: Protected, table: str, key: list[str], reason: str) -> dict:
    """The quarantine entry of one refused row: its record as loaded, personal columns treated."""
    record = row.record
    if record.get(FILE_COLUMN) is not None and record.get(LINE_COLUMN) is not None:
        location = f"{record[FILE_COLUMN]}:{record[LINE_COLUMN]}"
    else:
        values = [f"{name}={record[name]}" for name in key if record.get(name) is not None]
        location = f"{table}[{', '.join(values)}]" if values else table
    return {"record": records.record_json(record), "rule": RULE, "reason": row.reason(reason), "location": location,
            "keys": {name: record.get(name) for name in key}, records.PII_TREATMENT: row.marks_json}


def refusal_of(error: BaseException) -> bool:
    """The load step failed because a job failed terminally (not a connection or a crash)."""
    while error is not None:
        if type(error).__name__ in ("LoadClientJobFailed", "LoadClientJobTerminalRetry"):
            return True
        error = error.__cause__ or error.__context__
    return False


def run_setting_aside(pipeline: dlt.Pipeline, loader_file_format: str, run: Callable,
                      protection: ProtectionOf | None = None):
    """``run()`` (a pipeline run); when Postgres refuses rows of a job, set them aside and load the rest.

    ``protection``: how each table's quarantine records keep personal data out. Returns the runs' load infos,
    what was set aside, and the rows the runs normalized per table.
    """
    set_aside: list[SetAside] = []
    counts: dict[str, int] = {}
    for _ in range(MAX_ROUNDS):
        try:
            info = run()
        except Exception as error:
            if not refusal_of(error):
                raise
            for name, count in normalized_counts(pipeline).items():  # the failed run's trace: what it normalized
                counts[name] = counts.get(name, 0) + count
            found = set_aside_refused_jobs(pipeline, loader_file_format, protection)
            if found is None:
                raise
            set_aside += found
            run = functools.partial(pipeline.run, loader_file_format=loader_file_format)  # what is pending
            continue
        for name, count in normalized_counts(pipeline).items():
            counts[name] = counts.get(name, 0) + count
        # None: a run of what is pending found nothing to load (an empty package a killed run extracted, which
        # normalizing dropped).
        return [info] if info is not None else [], set_aside, counts
    raise RuntimeError(f"{pipeline.pipeline_name}: Postgres still refused rows after setting rows aside "
                       f"{MAX_ROUNDS} times; the pending load stays for the next run")


def normalized_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows per table the pipeline's last run normalized."""
    normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    return dict(normalized.row_counts) if normalized else {}

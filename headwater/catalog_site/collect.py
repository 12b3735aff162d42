"""Everything the catalog site shows, gathered once: lineage, PII tags, run history, row counts.

Nothing here renders. ``collect_site`` returns a ``SiteData`` the page modules read. When the lineage
cannot be built (no dbt project, dbt fails, ...), the tables come from the raw schemas of the
destination instead and ``lineage_error`` says why; the site is still written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from headwater.lineage.build import build_lineage
from headwater.lineage.model import ColumnInfo, ColumnRef, Lineage, TableInfo
from headwater.lineage.pii import PiiExposure, pii_exposures, pii_tags
from headwater.row_counts import RowCount, count_rows

if TYPE_CHECKING:
    from headwater.config import ProjectConfig
    from headwater.destination import PostgresAddress

MAX_RUNS = 30  # the dashboard covers this many recent runs
OPS = "headwater_ops"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    status: str  # running | succeeded | failed
    started_at: datetime
    ended_at: datetime | None
    seconds: float | None
    rows_loaded: int | None
    started_by: str
    failures: list[str]
    parameters: dict[str, Any]


@dataclass(frozen=True)
class LoadRecord:
    run_id: str
    source: str
    table: str | None
    rows_read: int | None
    rows_loaded: int | None
    rows_quarantined: int | None
    error: str | None


@dataclass(frozen=True)
class CheckRecord:
    run_id: str
    contract: str  # schema.table
    check: str
    column: str | None
    outcome: str  # passed | failed | warned | error
    measured: Any
    threshold: str | None
    severity: str | None
    message: str | None


@dataclass(frozen=True)
class FreshnessRecord:
    run_id: str
    source: str
    table: str
    basis: str
    last_value: datetime | None
    age_seconds: float | None
    warn_after_seconds: float | None
    error_after_seconds: float | None
    status: str  # pass | warn | error
    breached: bool
    checked_at: datetime

    @property
    def table_key(self) -> str:
        return f"raw_{self.source}.{self.table}"


@dataclass(frozen=True)
class DbtNodeRecord:
    run_id: str
    unique_id: str
    name: str
    resource_type: str
    status: str
    seconds: float | None
    rows_affected: int | None


@dataclass(frozen=True)
class ExposureRecord:
    """A row of headwater_ops.pii_exposures: a published column a run found carrying PII."""

    run_id: str
    mart_column: str
    sources: str
    path: str
    action: str  # warn | fail (catalog.pii_exposure at the time)
    fix: str = ""


@dataclass
class History:
    """The last MAX_RUNS runs (oldest first) and what each recorded."""

    recorded: bool = False  # headwater_ops exists
    runs: list[RunRecord] = field(default_factory=list)
    loads: list[LoadRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    freshness: list[FreshnessRecord] = field(default_factory=list)
    dbt_nodes: list[DbtNodeRecord] = field(default_factory=list)
    exposures: list[ExposureRecord] = field(default_factory=list)
    exposures_recorded: bool = False  # headwater_ops.pii_exposures exists

    @property
    def finished_runs(self) -> list[RunRecord]:
        return [run for run in self.runs if run.status != "running"]

    @property
    def last_run(self) -> RunRecord | None:
        finished = self.finished_runs
        return finished[-1] if finished else None

    def of_run(self, rows: list, run_id: str) -> list:
        return [row for row in rows if row.run_id == run_id]

    def latest_checks(self, contract: str) -> list[CheckRecord]:
        """The checks of the newest run that verified this contract (schema.table)."""
        for run in reversed(self.runs):
            rows = [check for check in self.checks if check.run_id == run.run_id and check.contract == contract]
            if rows:
                return rows
        return []

    def latest_freshness(self) -> dict[str, FreshnessRecord]:
        """Newest freshness record per raw table (schema.table)."""
        latest: dict[str, FreshnessRecord] = {}
        for record in sorted(self.freshness, key=lambda r: r.checked_at):
            latest[record.table_key] = record
        return latest

    def last_load(self, source: str, table: str) -> tuple[RunRecord, LoadRecord] | None:
        """The newest run that loaded rows into raw_<source>.<table>."""
        runs = {run.run_id: run for run in self.runs}
        found = [(runs[load.run_id], load) for load in self.loads
                 if load.source == source and load.table == table and (load.rows_loaded or 0) > 0
                 and load.run_id in runs]
        return max(found, key=lambda pair: pair[0].started_at) if found else None

    def last_build(self, model: str) -> tuple[RunRecord, DbtNodeRecord] | None:
        """The newest run that built the dbt model of this name successfully."""
        runs = {run.run_id: run for run in self.runs}
        found = [(runs[node.run_id], node) for node in self.dbt_nodes
                 if node.name == model and node.resource_type == "model" and node.status == "success"
                 and node.run_id in runs]
        return max(found, key=lambda pair: pair[0].started_at) if found else None

    def last_exposures(self) -> list[ExposureRecord]:
        """What the last finished run recorded in headwater_ops.pii_exposures."""
        last = self.last_run
        return [row for row in self.exposures if last and row.run_id == last.run_id]


@dataclass
class SiteData:
    project: "ProjectConfig"
    lineage: Lineage  # without dbt lineage: the raw tables of the destination, no edges
    lineage_error: str | None
    history: History
    row_counts: dict[str, RowCount]
    tags: dict[ColumnRef, str]  # pii | derived | masked
    exposures: list[PiiExposure]  # published columns carrying unmasked PII, from the lineage
    generated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def exposed(self) -> set[ColumnRef]:
        return {exposure.column for exposure in self.exposures}


Progress = Callable[[str], None]


def collect_site(
    project: "ProjectConfig",
    address: "PostgresAddress",
    lineage: Lineage | None = None,
    *,
    refresh: bool = True,
    progress: Progress | None = None,
) -> SiteData:
    say = progress or (lambda message: None)
    error = None
    if lineage is None:
        say("Building column lineage" + (" (dbt docs generate)" if refresh and project.transform_dir else ""))
        try:
            lineage = build_lineage(project, address, refresh=refresh)
        except Exception as failure:  # the site still shows what the destination holds
            error = f"{type(failure).__name__}: {str(failure).strip() or 'no message'}"
    if lineage is None or (not lineage.tables and error is None):
        error = error or "the lineage builder found no tables"
        say("Reading the raw schemas instead")
        lineage = raw_tables(project, address)
    elif project.transform_dir is None:
        error = "no dbt project (`transform:` in headwater.yaml): lineage stops at the raw tables"
    say("Reading run history from headwater_ops")
    history = read_history(address)
    say("Counting rows")
    counts = row_counts(address, [table for table in lineage.tables.values() if table.layer != "resource"])
    from headwater.publish import PUBLISHED_SCHEMAS  # what the run publishes, as the flow checks it

    return SiteData(project, lineage, error, history, counts, pii_tags(lineage),
                    pii_exposures(lineage, PUBLISHED_SCHEMAS))


def raw_tables(project: "ProjectConfig", address: "PostgresAddress") -> Lineage:
    """The loaded tables of every source, from information_schema (no dbt, no lineage edges)."""
    schemas = {source.dataset: source for source in project.sources}
    lineage = Lineage()
    if not schemas:
        return lineage
    with address.connect(autocommit=True, connect_timeout=10) as connection:
        rows = connection.execute(
            "select table_schema, table_name, column_name, data_type from information_schema.columns "
            "where table_schema = any(%s) and table_name not like '\\_dlt%%' "
            "and table_name not like '%%\\_\\_quarantine' "
            "order by table_schema, table_name, ordinal_position",
            (sorted(schemas),),
        ).fetchall()
    for schema, table, column, data_type in rows:
        source = schemas[schema]
        configured = next((t for t in source.tables if t.name == table), None)
        info = lineage.add_table(TableInfo(schema, table, "raw", materialized="table", source=source.name,
                                           resource=table if configured else None))
        ref = ColumnRef(schema, table, column)
        info.columns[column] = ColumnInfo(ref, data_type, pii=bool(configured and column in configured.pii))
    return lineage


def read_history(address: "PostgresAddress", max_runs: int = MAX_RUNS) -> History:
    history = History()
    with address.connect(autocommit=True, connect_timeout=10) as connection:
        if connection.execute(f"select to_regclass('{OPS}.runs')").fetchone()[0] is None:
            return history
        history.recorded = True
        rows = connection.execute(
            "select run_id, status, started_at, ended_at, "
            "coalesce(seconds, extract(epoch from ended_at - started_at)), rows_loaded, started_by, failures, "
            f"parameters from {OPS}.runs order by started_at desc, run_id limit %s",
            (max_runs,),
        ).fetchall()
        history.runs = [RunRecord(*row[:7], list(row[7] or []), dict(row[8] or {})) for row in reversed(rows)]
        ids = [run.run_id for run in history.runs]
        if not ids:
            return history
        history.loads = [LoadRecord(*row) for row in connection.execute(
            f"select run_id, source, table_name, rows_read, rows_loaded, rows_quarantined, error "
            f"from {OPS}.table_loads where run_id = any(%s) order by source, table_name", (ids,))]
        history.checks = [CheckRecord(*row) for row in connection.execute(
            f"select run_id, contract, check_name, column_name, outcome, measured, threshold, severity, message "
            f"from {OPS}.check_results where run_id = any(%s) order by contract, check_name, column_name", (ids,))]
        history.freshness = [FreshnessRecord(*row) for row in connection.execute(
            f"select run_id, source, table_name, basis, last_value, age_seconds, warn_after_seconds, "
            f"error_after_seconds, status, breached, checked_at from {OPS}.freshness where run_id = any(%s) "
            "order by source, table_name", (ids,))]
        history.dbt_nodes = [DbtNodeRecord(*row) for row in connection.execute(
            f"select run_id, unique_id, name, resource_type, status, seconds, rows_affected from {OPS}.dbt_nodes "
            "where run_id = any(%s) order by unique_id", (ids,))]
        if connection.execute(f"select to_regclass('{OPS}.pii_exposures')").fetchone()[0] is not None:
            history.exposures_recorded = True
            with connection.cursor(row_factory=dict_row) as cursor:
                cursor.execute(f"select * from {OPS}.pii_exposures where run_id = any(%s) order by mart_column",
                               (ids,))
                history.exposures = [
                    ExposureRecord(row["run_id"], str(row["mart_column"]), _plain(row.get("sources")),
                                   _plain(row.get("path"), " → "), str(row.get("action") or ""),
                                   str(row.get("fix") or ""))
                    for row in cursor.fetchall()
                ]
    return history


def row_counts(address: "PostgresAddress", tables: list[TableInfo]) -> dict[str, RowCount]:
    """Rows per relation (headwater.row_counts); a table the lineage builder counted already keeps its count."""
    counts = {table.key: RowCount(table.row_count, table.row_count_estimated)
              for table in tables if table.row_count is not None}
    wanted = [(table.schema, table.name) for table in tables if table.key not in counts]
    if wanted:
        with address.connect(autocommit=True, connect_timeout=10) as connection:
            found = count_rows(connection, wanted)
        counts.update({f"{schema}.{name}": count for (schema, name), count in found.items()})
    return counts



def _plain(value: Any, separator: str = ", ") -> str:
    """A list or JSON value from the database as one line of text."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return separator.join(_plain(item, separator) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_plain(item)}" for key, item in value.items())
    return str(value)

"""What runs recorded in headwater_ops, read back: the one reader behind `headwater status` and the catalog site.

headwater.ops.history writes these tables; this module only reads them, newest runs first from the
database and oldest first in the History it returns (the order charts draw them in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

if TYPE_CHECKING:
    from headwater.postgres.address import PostgresAddress

MAX_RUNS = 30  # the catalog dashboard covers this many recent runs
OPS = "headwater_ops"


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    status: str  # running | succeeded | failed | crashed
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


def _plain(value: Any, separator: str = ", ") -> str:
    """A list or JSON value from the database as one line of text."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return separator.join(_plain(item, separator) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_plain(item)}" for key, item in value.items())
    return str(value)

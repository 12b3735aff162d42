"""`headwater status` on an empty database and after recorded runs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from headwater.cli import main
from headwater.load.pipeline import SourceLoad, TableLoad
from headwater.marts.quality import CheckResult, ContractResult
from headwater.marts.transform import DbtNodeResult, DbtRunResult
from headwater.ops.freshness import FreshnessResult
from headwater.ops.history import RunInfo, record_run, start_run
from headwater.ops.summary import RunSummary
from headwater.postgres.address import PostgresAddress

CHECKED = datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc)


def summary_of(run: RunInfo, rows: int, failing: bool) -> RunSummary:
    products = [CheckResult("row_count", None, "failed" if failing else "passed", 20, "> 1000" if failing else "> 0")]
    return RunSummary(
        run_id=run.run_id,
        seconds=12.5,
        loads=[SourceLoad("shop_db", "raw_shop_db", 2.0, [TableLoad("customers", rows, 3)], ["1764226800.1"])],
        dbt=DbtRunResult(True, [DbtNodeResult("model.shop.customers", "customers", "model", "success", 0.4, 60, None)]),
        contracts=[ContractResult("raw_shop_db", "products", not failing, products)],
        freshness=[FreshnessResult("shop_db", "customers", "cursor:updated_at", CHECKED - timedelta(days=3),
                                   3 * 86400.0, 26 * 3600.0, 48 * 3600.0, "error" if failing else "pass",
                                   run.started_at)],
    )


def test_status_on_a_new_database(shop_project, database_url, monkeypatch, capsys):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    assert main(["status"]) == 0
    assert "No runs recorded yet" in capsys.readouterr().out


def test_status_shows_runs_freshness_and_failing_checks(shop_project, database_url, monkeypatch, capsys):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    address = PostgresAddress.from_url(database_url)
    earlier = RunInfo(run_id="aaaaaaaa-run-1", flow_name="daily", started_at=CHECKED - timedelta(days=1))
    record_run(address, summary_of(earlier, rows=60, failing=False), earlier)
    last = RunInfo(run_id="bbbbbbbb-run-2", flow_name="daily", started_at=CHECKED)
    start_run(address, last)
    record_run(address, summary_of(last, rows=7, failing=True), last)
    crashed = RunInfo(run_id="cccccccc-run-3", flow_name="daily", started_at=CHECKED + timedelta(hours=1))
    start_run(address, crashed)  # never finished: stays 'running'

    assert main(["status"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    run_lines = [line for line in lines if "-run-" not in line and ("aaaaaaaa" in line or "bbbbbbbb" in line
                                                                     or "cccccccc" in line)]
    assert [line.split()[1] for line in run_lines[:3]] == ["cccccccc", "bbbbbbbb", "aaaaaaaa"]
    assert "running" in run_lines[0] and "failed" in run_lines[1] and "succeeded" in run_lines[2]
    assert "2026-11-27 06:00:00" in run_lines[1] and "12.5s" in run_lines[1] and " 7 " in run_lines[1]
    assert " 60 " in run_lines[2]
    freshness = next(line for line in lines if "raw_shop_db.customers" in line)
    assert "3.0d" in freshness and "error" in freshness and "warn 26.0h, error 2.0d" in freshness
    assert "Failing checks of the last run (bbbbbbbb)" in out
    check = next(line for line in lines if "raw_shop_db.products" in line)
    assert "row_count" in check and "failed" in check and "20" in check and "> 1000" in check

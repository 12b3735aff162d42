"""`headwater status`: recent runs, freshness per table and the last run's failing checks, from headwater_ops."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.commands import read_project_or_report
from headwater.project.freshness import format_age

if TYPE_CHECKING:
    from headwater.ops.run_records import History

STATUS_STYLE = {"succeeded": "green", "failed": "red", "crashed": "red", "running": "yellow", "pass": "green",
                "warn": "yellow", "error": "red"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="Recent runs, freshness per table and failing checks, from the run history.",
        description="Reads the run history every run writes to schema headwater_ops of the destination.",
    )
    parser.add_argument("--runs", type=int, default=10, metavar="N", help="how many recent runs to show (10)")
    parser.set_defaults(run=run_status)


def run_status(args: argparse.Namespace) -> int:
    from headwater.local.destination import resolve_destination
    from headwater.ops.run_records import MAX_RUNS, read_history

    project = read_project_or_report()
    if project is None:
        return 2
    address = resolve_destination(project.state_dir)
    console = Console(width=None if sys.stdout.isatty() else 140)
    history = read_history(address, max_runs=max(args.runs, MAX_RUNS))
    if not history.runs:
        console.print(f"No runs recorded yet in {address.safe_url}. Run the pipeline "
                      "(`python -m flows.daily`); every run records itself in schema headwater_ops.",
                      highlight=False)
        return 0
    console.print(_runs_table(history, args.runs))
    console.print(_freshness_table(history))
    console.print(_checks_table(history))
    return 0


def _styled(value: str) -> str:
    style = STATUS_STYLE.get(value)
    return f"[{style}]{value}[/{style}]" if style else escape(value)


def _runs_table(history: History, limit: int) -> Table:
    table = Table(title="Recent runs", title_justify="left")
    for column, justify in (("run", "left"), ("status", "left"), ("started (UTC)", "left"), ("duration", "right"),
                            ("rows loaded", "right"), ("started by", "left")):
        table.add_column(column, justify=justify)
    for run in list(reversed(history.runs))[:limit]:
        table.add_row(
            run.run_id[:8], _styled(run.status), run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            "-" if run.seconds is None else f"{run.seconds:.1f}s",
            "-" if run.rows_loaded is None else f"{run.rows_loaded:,}", escape(run.started_by),
        )
    return table


def _freshness_table(history: History) -> Table:
    table = Table(title="Freshness (latest check per table)", title_justify="left")
    for column in ("table", "newest data", "age", "SLA", "status", "checked (UTC)"):
        table.add_column(column)
    latest = history.latest_freshness()
    for key in sorted(latest):
        record = latest[key]
        limits = (("warn", record.warn_after_seconds), ("error", record.error_after_seconds))
        sla = ", ".join(f"{label} {format_age(value)}" for label, value in limits if value)
        newest = ("never loaded" if record.last_value is None
                  else f"{record.last_value:%Y-%m-%d %H:%M} ({record.basis})")
        table.add_row(key, newest, "-" if record.age_seconds is None else format_age(record.age_seconds), sla,
                      _styled(record.status), f"{record.checked_at:%Y-%m-%d %H:%M}")
    if not latest:
        table.caption = "no table has a freshness SLA: add `freshness:` to a source or table in headwater.yaml"
    return table


def _checks_table(history: History) -> Table:
    last = history.last_run
    table = Table(title="Failing checks of the last run" + (f" ({last.run_id[:8]})" if last else ""),
                  title_justify="left")
    for column in ("contract", "check", "column", "outcome", "measured", "threshold"):
        table.add_column(column)
    checks = history.of_run(history.checks, last.run_id) if last else []
    failing = [check for check in checks if check.outcome != "passed"]
    for check in failing:
        shown = check.threshold or ""
        if check.outcome == "error" and check.message:
            shown = check.message
        measured = "" if check.measured is None else str(check.measured)
        table.add_row(check.contract, check.check, check.column or "", _styled(check.outcome), measured,
                      escape(shown))
    if not failing:
        table.caption = "every check passed"
    return table

"""`headwater status`: recent runs, freshness per table and the last run's failing checks, from headwater_ops."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.commands import read_project_or_report

STATUS_STYLE = {"succeeded": "green", "failed": "red", "running": "yellow", "pass": "green", "warn": "yellow",
                "error": "red"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="Recent runs, freshness per table and failing checks, from the run history.",
        description="Reads the run history every run writes to schema headwater_ops of the destination.",
    )
    parser.add_argument("--runs", type=int, default=10, metavar="N", help="how many recent runs to show (10)")
    parser.set_defaults(run=run_status)


def run_status(args: argparse.Namespace) -> int:
    from headwater.destination import resolve_destination

    project = read_project_or_report()
    if project is None:
        return 2
    address = resolve_destination(project.state_dir)
    console = Console(width=None if sys.stdout.isatty() else 140)
    with address.connect(autocommit=True) as connection:
        exists = connection.execute("select to_regclass('headwater_ops.runs')").fetchone()[0]
        if exists is None or not connection.execute("select 1 from headwater_ops.runs limit 1").fetchone():
            console.print(f"No runs recorded yet in {address.safe_url}. Run the pipeline "
                          "(`python -m flows.daily`); every run records itself in schema headwater_ops.",
                          highlight=False)
            return 0
        console.print(_runs_table(connection, args.runs))
        console.print(_freshness_table(connection))
        console.print(_checks_table(connection))
    return 0


def _styled(value: str) -> str:
    style = STATUS_STYLE.get(value)
    return f"[{style}]{value}[/{style}]" if style else escape(value)


def _runs_table(connection, limit: int) -> Table:
    table = Table(title="Recent runs", title_justify="left")
    for column, justify in (("run", "left"), ("status", "left"), ("started (UTC)", "left"), ("duration", "right"),
                            ("rows loaded", "right"), ("started by", "left")):
        table.add_column(column, justify=justify)
    rows = connection.execute(
        "select run_id, status, started_at, coalesce(seconds, extract(epoch from ended_at - started_at)), "
        "rows_loaded, started_by from headwater_ops.runs order by started_at desc limit %s",
        (limit,),
    ).fetchall()
    for run_id, status, started_at, seconds, rows_loaded, started_by in rows:
        table.add_row(
            run_id[:8], _styled(status), started_at.strftime("%Y-%m-%d %H:%M:%S"),
            "-" if seconds is None else f"{seconds:.1f}s", "-" if rows_loaded is None else f"{rows_loaded:,}",
            escape(started_by),
        )
    return table


def _freshness_table(connection) -> Table:
    from headwater.freshness import format_age

    table = Table(title="Freshness (latest check per table)", title_justify="left")
    for column in ("table", "newest data", "age", "SLA", "status", "checked (UTC)"):
        table.add_column(column)
    rows = connection.execute(
        "select distinct on (source, table_name) source, table_name, basis, last_value, age_seconds, "
        "warn_after_seconds, error_after_seconds, status, checked_at from headwater_ops.freshness "
        "order by source, table_name, checked_at desc"
    ).fetchall()
    for source, name, basis, last_value, age, warn, error, status, checked_at in rows:
        sla = ", ".join(f"{label} {format_age(value)}" for label, value in (("warn", warn), ("error", error)) if value)
        newest = "never loaded" if last_value is None else f"{last_value:%Y-%m-%d %H:%M} ({basis})"
        table.add_row(f"raw_{source}.{name}", newest, "-" if age is None else format_age(age), sla,
                      _styled(status), f"{checked_at:%Y-%m-%d %H:%M}")
    if not rows:
        table.caption = "no table has a freshness SLA: add `freshness:` to a source or table in headwater.yaml"
    return table


def _checks_table(connection) -> Table:
    last = connection.execute(
        "select run_id from headwater_ops.runs where status <> 'running' order by started_at desc limit 1"
    ).fetchone()
    table = Table(title="Failing checks of the last run" + (f" ({last[0][:8]})" if last else ""), title_justify="left")
    for column in ("contract", "check", "column", "outcome", "measured", "threshold"):
        table.add_column(column)
    rows = connection.execute(
        "select contract, check_name, column_name, outcome, measured::text, threshold, message "
        "from headwater_ops.check_results where run_id = %s and outcome <> 'passed' order by contract, check_name",
        (last[0] if last else None,),
    ).fetchall()
    for contract, check, column, outcome, measured, threshold, message in rows:
        shown = threshold or ""
        if outcome == "error" and message:
            shown = message
        table.add_row(contract, check, column or "", _styled(outcome), measured or "", escape(shown))
    if not rows:
        table.caption = "every check passed"
    return table

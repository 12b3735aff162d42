"""`headwater status`: recent runs, freshness per table and the last run's failing checks, from headwater_ops;
`headwater audit`: the audit trail of who ran, replayed, recovered or changed what, listed and verified."""

from __future__ import annotations

import argparse
import sys
from datetime import timezone
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.commands import read_project_or_report
from headwater.project.freshness import format_age

if TYPE_CHECKING:
    from headwater.ops.audit import AuditRecord, ChainReport
    from headwater.ops.run_records import History
    from headwater.postgres.address import PostgresAddress

STATUS_STYLE = {"succeeded": "green", "failed": "red", "crashed": "red", "running": "yellow", "pass": "green",
                "warn": "yellow", "error": "red"}
AUDIT_LIMIT = 20
HIDDEN_DETAILS = ("sections",)  # config: a digest per section, kept to tell the next change apart; long, not news


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="Recent runs, freshness per table and failing checks, from the run history.",
        description="Reads the run history every run writes to schema headwater_ops of the destination.",
    )
    parser.add_argument("--runs", type=int, default=10, metavar="N", help="how many recent runs to show (10)")
    parser.set_defaults(run=run_status)

    audit = subparsers.add_parser(
        "audit",
        help="The audit trail: who ran, replayed, recovered or changed what, when and from where; verify it.",
        description="Every run (start and end), full refresh, backfill, quarantine replay, recover, grant change "
        "and change of headwater.yaml is one record in headwater_ops.audit_log, chained to the one before by "
        "hash. Only the table's owner can change records, and `verify` shows where one was.",
    )
    actions = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = actions.add_parser(
        "verify", help="Check every record's hash and its link to the one before; exit 1 on any break.",
        description="Walks the chain in order: an edited record (its hash no longer matches), a deleted one (a "
        "gap in the numbers, or a link to a record that is gone) and reordered or inserted ones are each named.")
    verify.add_argument("--expect", type=_expected_record, metavar="SEQ:HASH",
                        help="a record's number and hash as an earlier verify printed them: a chain rewritten "
                        "with fresh hashes since then shows as a break")
    verify.set_defaults(run=run_audit_verify)
    listing = actions.add_parser("list", help="Audit records, newest first: when, kind, who, from where, details.")
    listing.add_argument("--kind", metavar="KIND", help="only records of this kind (run.start, run.end, config, "
                         "full_refresh, backfill, quarantine.replay, recover, grants)")
    listing.add_argument("--limit", type=_positive, default=AUDIT_LIMIT, metavar="N",
                         help=f"the newest N records ({AUDIT_LIMIT})")
    listing.set_defaults(run=run_audit_list)


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
    streams = _streams_table(address)
    if streams is not None:
        console.print(streams)
    console.print(_freshness_table(history))
    console.print(_checks_table(history))
    return 0


def _streams_table(address: PostgresAddress) -> Table | None:
    """Each streamed source's newest batch and how far its feed trailed then; None when nothing was streamed."""
    from headwater.ops.stream_batches import latest_batches

    batches = latest_batches(address)
    if not batches:
        return None
    table = Table(title="Streams (newest batch per source)", title_justify="left")
    for column, justify in (("source", "left"), ("batch", "right"), ("at (UTC)", "left"), ("rows", "right"),
                            ("quarantined", "right"), ("behind", "right"), ("unread", "right"),
                            ("WAL kept", "right"), ("error", "left")):
        table.add_column(column, justify=justify)
    for batch in batches:
        lag = batch.lag or {}
        behind = lag.get("behind_seconds")
        table.add_row(
            escape(batch.source), f"{batch.batch:,}", f"{batch.started_at.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S}",
            f"{batch.rows_loaded:,}", f"{batch.rows_quarantined:,}", "-" if behind is None else f"{behind:.1f}s",
            _bytes(lag.get("lag_bytes")), _bytes(lag.get("retained_wal_bytes")), escape(batch.error or ""))
    return table


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return "-"


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


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more; got {text!r}")
    return int(text)


def _expected_record(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise argparse.ArgumentTypeError(f"expected SEQ:HASH as `headwater audit verify` prints it (42:3f2a…, "
                                         f"64 hex digits); got {text!r}")
    return int(seq), digest


def _audit_records(kind: str | None = None, limit: int | None = None
                   ) -> tuple[PostgresAddress, list[AuditRecord] | None] | int:
    """The project's destination and its audit records, or the exit code after saying why they cannot be read."""
    import psycopg

    from headwater.local.destination import resolve_destination
    from headwater.ops.audit import read_records

    project = read_project_or_report()
    if project is None:
        return 2
    address = resolve_destination(project.state_dir)
    try:
        return address, read_records(address, kind=kind, limit=limit)
    except psycopg.errors.InsufficientPrivilege as error:
        print(f"error: {address.user} may not read headwater_ops.audit_log in {address.safe_url}: "
              f"{str(error).strip()}; connect as a role granted SELECT on it", file=sys.stderr)
        return 1


def run_audit_verify(args: argparse.Namespace) -> int:
    from headwater.ops.audit import verify_chain

    found = _audit_records()
    if isinstance(found, int):
        return found
    address, records = found
    report = verify_chain(records or [], expect=args.expect)
    for line in _verify_lines(address, report):
        print(line)
    return 0 if report.ok else 1


def _verify_lines(address: PostgresAddress, report: ChainReport) -> list[str]:
    if report.ok and not report.count:
        return [f"No audit records yet in {address.safe_url}: runs, replays, recovers and grant changes record "
                "themselves in headwater_ops.audit_log."]
    span = f"{report.first.label} to {report.last.label}" if report.count else "none left"
    if not report.ok:
        problems = f"{len(report.breaks)} problem{'s' if len(report.breaks) > 1 else ''}"
        return [f"Audit log BROKEN: {problems} in {report.count} records ({span}):",
                *(f"  {line}" for line in report.breaks)]
    last = report.last
    return [f"Audit log intact: {report.count} records, {span}.",
            f"Last record: #{last.seq} hash {last.hash}. Kept elsewhere, it lets a later "
            f"`headwater audit verify --expect {last.seq}:{last.hash}` show a chain rewritten since."]


def run_audit_list(args: argparse.Namespace) -> int:
    found = _audit_records(kind=args.kind, limit=args.limit)
    if isinstance(found, int):
        return found
    address, records = found
    console = Console(width=None if sys.stdout.isatty() else 140)
    if not records:
        which = f" of kind {args.kind!r}" if args.kind else ""
        console.print(escape(f"No audit records{which} in {address.safe_url}."), highlight=False)
        return 0
    table = Table(title=f"Audit log, newest first ({len(records)} shown)", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("at (UTC)", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("who", ratio=1, overflow="fold")
    table.add_column("from", overflow="fold")
    table.add_column("details", ratio=2, overflow="fold")
    for record in reversed(records):
        at = record.at.astimezone(timezone.utc).strftime("%Y-%m-%d\n%H:%M:%S")
        table.add_row(str(record.seq), at, escape(record.kind), escape(record.who), escape(record.where),
                      escape(_details_text(record.details)))
    console.print(table)
    return 0


def _details_text(details: dict) -> str:
    import json

    return "\n".join(f"{key}: {json.dumps(value, ensure_ascii=False, separators=(', ', ': '))}"
                     for key, value in sorted(details.items()) if key not in HIDDEN_DETAILS)

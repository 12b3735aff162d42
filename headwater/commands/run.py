"""`headwater run`: the daily pipeline now, the same as `python -m flows.daily`; `headwater recover`: what a
source's failed or interrupted runs left pending, loaded now or discarded; `headwater deploy`: its deployments
(prefect.yaml) on a Prefect server, optionally one run now and a worker for the schedule."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.commands import holding_source, read_project_or_report
from headwater.load.reload import add_reload_arguments

if TYPE_CHECKING:
    from headwater.load.recovery import Discarded, PendingLoads, Recovery
    from headwater.postgres.address import PostgresAddress
    from headwater.project.config import ProjectConfig, SourceConfig


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the daily pipeline (python -m flows.daily)")
    parser.add_argument("--advance-example", type=int, default=0, metavar="DAYS",
                        help="simulate DAYS days of the bundled shop before loading")
    add_reload_arguments(parser)
    parser.add_argument("--full-build", action="store_true",
                        help="rebuild every dbt model, not only those downstream of tables that received rows")
    parser.set_defaults(run=run)

    stream = subparsers.add_parser(
        "stream",
        help="load one source continuously in micro-batches until Ctrl-C or SIGTERM (python -m flows.stream)",
        description="Each batch is a load of SOURCE, recorded in headwater_ops.stream_batches when it commits, "
        "which is when the source's feed is acknowledged (a replication slot advanced, broker messages acked). "
        "The tables it changed stay pending until a build publishes their marts: with --build-every or "
        "--build-every-seconds here, else by the `build` deployment or the next `headwater run`. Ctrl-C or "
        "SIGTERM stops after the batch under way.",
    )
    add_stream_arguments(stream)
    stream.set_defaults(run=run_stream)

    recover = subparsers.add_parser(
        "recover",
        help="show what a source's failed or interrupted runs left pending, and load it or discard it",
        description="A run that fails or is interrupted while loading keeps its load pending, and the next run "
        "loads it first. This shows, per table, what is pending for SOURCE (load ids, jobs, rows, failures, "
        "since when), then loads it now without reading the source (rows Postgres refuses are quarantined), "
        "or with --discard-pending drops it.",
    )
    recover.add_argument("source", metavar="SOURCE", help="a source of headwater.yaml")
    recover.add_argument("--discard-pending", action="store_true",
                         help="drop the pending loads instead of loading them; the next run reads their rows again "
                         "from the source (asks first)")
    recover.add_argument("--yes", action="store_true", help="discard without asking")
    recover.set_defaults(run=run_recover)

    deploy = subparsers.add_parser(
        "deploy",
        help="register the deployments of prefect.yaml on the Prefect server; run one now, start a worker",
        description="Register the deployments of prefect.yaml (work pools created when missing) on the Prefect "
        "server of PREFECT_API_URL, else on the local server of `headwater up`, started if it is not running.",
    )
    deploy.add_argument(
        "--run", dest="run_once", nargs="?", const="", default=None, metavar="DEPLOYMENT",
        help="then run a deployment once now and wait for its final state (exit code 1 unless Completed); "
        "DEPLOYMENT is its name in prefect.yaml, needed only when the file defines several",
    )
    deploy.add_argument(
        "--worker", action="store_true",
        help="then run a process worker for the work pool in the foreground until Ctrl-C or SIGTERM: "
        "it runs the scheduled runs",
    )
    deploy.add_argument(
        "--per-source", action="store_true",
        help="register one deployment per enabled source (load-SOURCE) and a `build` deployment instead of "
        "prefect.yaml's, with the destination's global concurrency limit (the deploy: block of headwater.yaml)",
    )
    deploy.set_defaults(run=run_deploy)


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", help="a source of headwater.yaml")
    parser.add_argument("--max-batches", type=int, metavar="N", help="stop after N batches (default: until stopped)")
    parser.add_argument("--build-every", type=int, metavar="N",
                        help="build and publish the marts after every N batches that loaded rows")
    parser.add_argument("--build-every-seconds", type=float, metavar="T",
                        help="build and publish the marts when T seconds passed since the last build and rows wait")
    parser.add_argument("--alert-lag-seconds", type=float, metavar="T",
                        help="warn, and alert the notifiers of headwater.yaml, when the feed trails by more than T s")



def run(args: argparse.Namespace) -> int:
    from headwater.local.stack import use_local_stack

    use_local_stack()
    from flows.daily import main

    argv = ["--advance-example", str(args.advance_example)]
    for item in args.full_refresh or []:
        argv += ["--full-refresh", item]
    for name in ("since", "until"):
        if getattr(args, name):
            argv += [f"--{name}", getattr(args, name)]
    if args.full_build:
        argv.append("--full-build")
    return main(argv)


def run_stream(args: argparse.Namespace) -> int:
    from headwater.local.stack import use_local_stack

    use_local_stack()
    from flows.stream import main

    argv = [args.source]
    for name in ("max_batches", "build_every", "build_every_seconds", "alert_lag_seconds"):
        if getattr(args, name) is not None:
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return main(argv)


def run_deploy(args: argparse.Namespace) -> int:
    from headwater.common.runtime import config_path, project_root, state_dir
    from headwater.deployments.deploy import deploy

    return deploy(project_root(), state_dir(), config_path(), run=args.run_once, worker=args.worker,
                  per_source=args.per_source)


def run_recover(args: argparse.Namespace) -> int:
    from headwater.access.run_roles import run_roles
    from headwater.local.destination import resolve_destination

    project = read_project_or_report()
    if project is None:
        return 2
    try:
        source = project.source(args.source)
    except KeyError:
        names = ", ".join(source.name for source in project.sources)
        print(f"error: no source {args.source!r}; sources: {names}", file=sys.stderr)
        return 2
    # Pending loads write raw_<source>: as the loader role when `grants:` allows (headwater.access.run_roles).
    address = run_roles(resolve_destination(project.state_dir), project.grants).loader
    console = Console(width=None if sys.stdout.isatty() else 100)
    return holding_source(project, address, source, "recover", "nothing was changed",
                          lambda: _recover(console, project, source, address, args))


def _recover(console: Console, project: ProjectConfig, source: SourceConfig, address: PostgresAddress,
             args: argparse.Namespace) -> int:
    from headwater.load.pipeline import LOADER_FILE_FORMAT, open_pipeline
    from headwater.load.recovery import discard_pending, pending_loads, recover, settle_open_refreshes
    from headwater.load.table_processor import protection_lookup
    from headwater.ops.audit import audit_recover

    pipeline = open_pipeline(project, source, address)
    pending = pending_loads(pipeline)
    if pending.empty:
        emptied = settle_open_refreshes(pipeline)
        if emptied:
            _say(console, f"Nothing is pending for {source.name}, but {_refresh_again(emptied)}")
        else:
            _say(console, f"Nothing is pending for {source.name}: its runs loaded everything they read.")
        return 0
    console.print(_pending_table(source, pending))
    if args.discard_pending:
        if not args.yes and not _confirmed(console, source, pending):
            _say(console, "Nothing was discarded.")
            return 1
        discarded = discard_pending(pipeline)
        audit_recover(address, source.name, pending, discarded=discarded)
        for line in _discarded_lines(source, discarded):
            _say(console, line)
        return 0
    try:
        # Rows Postgres refuses go to quarantine with their personal fields treated, as in a run.
        recovered = recover(pipeline, LOADER_FILE_FORMAT, protection=protection_lookup(project, source, pipeline))
    except Exception as error:  # the load fails as a run would: said in one line, the load stays pending
        audit_recover(address, source.name, pending, failed=error)
        _say(console, f"The pending load of {source.name} failed again and stays pending: {_failure(error)}")
        return 1
    audit_recover(address, source.name, pending, recovered=recovered)
    for line in _recovered_lines(source, recovered):
        _say(console, line)
    return 0


def _failure(error: BaseException) -> str:
    while error.__cause__ is not None and type(error).__module__.startswith("dlt."):  # dlt's step wrappers
        error = error.__cause__
    return str(error) if type(error).__module__.startswith("dlt.") else f"{type(error).__name__}: {error}"


def _say(console: Console, message: str) -> None:
    """One line of plain text, not wrapped: a terminal wraps it, and a log or grep keeps it whole."""
    console.print(escape(message), highlight=False, soft_wrap=True)


def _pending_table(source: SourceConfig, pending: PendingLoads) -> Table:
    table = Table(title=escape(f"Pending for {source.name} ({source.dataset})"), title_justify="left")
    table.add_column("table", overflow="fold")
    table.add_column("load ids", overflow="fold")
    table.add_column("jobs", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    table.add_column("since (UTC)", no_wrap=True)
    table.add_column("last failure", ratio=1, overflow="fold")
    for entry in pending.tables:
        jobs = [f"{entry.jobs} to {'load' if entry.state == 'normalized' else 'normalize'}"] if entry.jobs else []
        jobs += [f"{entry.loaded_jobs} loaded"] if entry.loaded_jobs else []
        table.add_row(
            escape(entry.table), escape("\n".join(entry.load_ids)), "\n".join(jobs),
            "?" if entry.rows is None else f"{entry.rows:,}",
            entry.since.strftime("%Y-%m-%d\n%H:%M:%S") if entry.since else "",
            escape("\n".join(entry.failures) or "-"),
        )
    return table


def _confirmed(console: Console, source: SourceConfig, pending: PendingLoads) -> bool:
    rows = sum(entry.rows or 0 for entry in pending.tables)
    console.print(escape(f"Discard the pending loads of {source.name} ({rows:,} rows not loaded)? [y/N] "),
                  end="", highlight=False)
    try:
        answer = input()
    except EOFError:  # no one to answer: no
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def _discarded_lines(source: SourceConfig, discarded: Discarded) -> list[str]:
    lines = []
    deleted: dict[str, int] = {}
    for _, table, rows in discarded.deleted:
        deleted[table] = deleted.get(table, 0) + rows
    for entry in discarded.pending.tables:
        if not entry.jobs:
            continue
        rows = "rows not counted" if entry.rows is None else _count(entry.rows, "row")
        lines.append(f"{source.name}.{entry.table}: discarded {rows} in {_count(entry.jobs, 'job')} of load "
                     f"{', '.join(entry.load_ids)}, pending since {entry.since:%Y-%m-%d %H:%M:%S} UTC.")
    for table, rows in sorted(deleted.items()):
        lines.append(f"{source.name}.{table}: deleted the {_count(rows, 'row')} these loads had already written to "
                     f"{source.dataset}.{table}, so that reading them again adds them once.")
    if discarded.state_restored:
        lines.append("These rows are read again by the next run: the cursors and the list of files read that the "
                     "discarded loads carried were to commit with them, and are discarded too. Rows no longer at "
                     "the source (a landing file deleted since, say) are not read again.")
    else:
        lines.append(f"The cursors stay where the discarded loads left them: only a full refresh reads these rows "
                     f"again (headwater run --full-refresh {source.name}[.TABLE]).")
    for table in discarded.pending.refreshed:
        lines.append(f"{source.name}.{table}: a discarded load had emptied it for a full refresh; run "
                     f"headwater run --full-refresh {source.name}.{table} to read it whole again.")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _refresh_again(entries: list[tuple[str, str]]) -> str:
    """``entries``: (table, resource) a full refresh emptied and never filled (headwater.load.recovery)."""
    return (f"a full refresh emptied {', '.join(table for table, _ in entries)} and never completed: the next run "
            f"refreshes {'them' if len(entries) > 1 else 'it'} again.")


def _recovered_lines(source: SourceConfig, recovered: Recovery) -> list[str]:
    from headwater.load.pipeline import table_loads
    from headwater.quarantine.naming import quarantine_table_name

    counts = dict(recovered.row_counts)
    for refused in recovered.set_aside:
        counts[refused.table] = counts.get(refused.table, 0) - refused.rows
        quarantine = quarantine_table_name(refused.table)
        counts[quarantine] = counts.get(quarantine, 0) + refused.rows
    reasons = {refused.table: refused.reason for refused in recovered.set_aside}
    lines = []
    for load in table_loads(counts):
        line = f"{source.name}.{load.table}: {_count(load.loaded, 'row')} loaded"
        if load.quarantined:
            line += f", {load.quarantined:,} quarantined"
            if load.table in reasons:
                line += f" (Postgres refused them: {reasons[load.table]})"
        lines.append(line + ".")
    if recovered.discarded_because:
        lines.append(f"{source.name}'s pending loads were discarded, not loaded: {recovered.discarded_because}.")
    elif recovered.abandoned:
        lines.append(f"A discard of {source.name}'s pending loads that had been interrupted was finished first.")
    lines.append(f"Nothing is pending for {source.name} now; the next run reads the source from where these "
                 f"loads left it.")
    if recovered.refresh_again:
        said = _refresh_again(recovered.refresh_again)
        lines.append(said[0].upper() + said[1:])
    return lines

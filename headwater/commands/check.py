"""`headwater check`: validate headwater.yaml and test every connection, without loading anything."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Seconds per check. headwater.load.checks is imported only when the command runs: it pulls in dlt.
DEFAULT_TIMEOUT = 30.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="Validate headwater.yaml and test the connection to every source and the destination.",
        description="Validate headwater.yaml, then read one item from every source and run `select 1` on the "
        "destination; a table the source cannot find (a file glob that matches no file) fails too. Nothing is "
        "loaded and no pipeline state changes. Exit code 2: the config is invalid; 1: a check failed.",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"Seconds to wait for each source and the destination (default {DEFAULT_TIMEOUT:g}).",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from headwater.common.runtime import config_path
    from headwater.example.session import running_example
    from headwater.load.checks import CheckResult, check_destination, check_secret_blocks, check_sources, reason
    from headwater.local.destination import resolve_destination
    from headwater.plugins.manager import connector_registry
    from headwater.project.config import ConfigError, load_project

    registry = connector_registry()
    try:
        project = load_project(config_path(), registry)
    except ConfigError as error:
        # Plain text, never re-wrapped: each problem stays on one line with its file:line.
        print(error, file=sys.stderr)
        return 2

    console = Console()
    for problem in registry.problems:
        console.print(f"[yellow]warning:[/yellow] {escape(problem)}", soft_wrap=True)

    try:
        address = resolve_destination(project.state_dir)
    except Exception as error:  # a bad URL or an embedded server that cannot start
        results = [CheckResult("destination", "destination", False, reason(error))]
    else:
        results = [check_destination(address, args.timeout)]
    with _prefect_server_of_runs(project, console) as server_problem:
        if server_problem:
            results += [CheckResult(f"prefect:{name}", "secret block", False, server_problem)
                        for name in sorted(project.secret_blocks())]
        else:
            results += check_secret_blocks(project, args.timeout)
        with running_example(project):
            results += [_with_preflight(project, registry, result, args.timeout)
                        for result in check_sources(project, registry, args.timeout)]

    console.print(_table(project.path, results))
    failed = [result for result in results if not result.ok]
    if failed:
        # One line per failure, never wrapped: easy to read in CI logs and to grep.
        for result in failed:
            console.print(f"[red]{escape(result.name)}: {escape(result.detail)}[/red]", soft_wrap=True)
        console.print(f"[red]{len(failed)} of {len(results)} checks failed.[/red]")
        return 1
    console.print("[green]All connections OK.[/green] Nothing was loaded.")
    return 0


@contextmanager
def _prefect_server_of_runs(project, console: Console) -> Iterator[str | None]:
    """Talk to the Prefect server a run would, when the config reads Secret blocks (`${prefect:name}`).

    That is PREFECT_API_URL's (environment or profile), else the project's own, started if it is not
    running, as `python -m flows.daily` does. Yields why that server cannot be used, or None.
    """
    if not project.secret_blocks():
        yield None
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from headwater.local.stack import StackError, prefect_server_for_runs

    try:
        api_url = prefect_server_for_runs(project.state_dir, progress=lambda line: console.print(escape(line)))
    except StackError as error:
        yield f"the project's Prefect server, which holds its Secret blocks, could not start: {error}"
        return
    with temporary_settings(updates={PREFECT_API_URL: api_url}) if api_url else nullcontext():
        yield None


def _with_preflight(project, registry, result, timeout: float):
    """A source that reads may still miss a table (a glob matching no file): its connector's preflight says which."""
    from headwater.load.checks import CheckResult, reason

    connector = registry.get(result.kind)
    if not result.ok or result.skipped or connector is None or connector.preflight is None:
        return result
    source = project.source(result.name)
    settings, tables = project.resolved_settings(source), [table.name for table in source.tables] or None
    outcome: dict = {}

    def preflight() -> None:
        try:
            outcome["problems"] = connector.preflight(settings, tables)
        except Exception as error:  # reported as the source's failure, like any error of reading it
            outcome["error"] = error

    # A daemon thread, as for the connection checks: a listing that hangs is left behind, not waited for.
    worker = threading.Thread(target=preflight, name="headwater-preflight", daemon=True)
    worker.start()
    worker.join(timeout)
    if "problems" not in outcome:
        failure = reason(outcome["error"]) if "error" in outcome else f"no answer within {timeout:g} s"
        return CheckResult(result.name, result.kind, False, f"{failure} while looking for each table's data")
    if not outcome["problems"]:
        return result
    detail = "; ".join(f"table {table}: {problem}" for table, problem in outcome["problems"].items())
    return CheckResult(result.name, result.kind, False, detail)


def _table(path, results: list) -> Table:
    table = Table(title=f"headwater check: {path}")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("connector", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold")
    colours = {"OK": "green", "FAILED": "red", "skipped": "dim"}
    for result in results:
        colour = colours[result.status]
        table.add_row(
            result.name,
            "" if result.kind == "destination" else result.kind,
            f"[{colour}]{result.status}[/{colour}]",
            escape(result.detail),
        )
    return table

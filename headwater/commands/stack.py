"""`headwater up` / `headwater down` / `headwater ps`: the local Prefect server and database."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.common.runtime import state_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser(
        "up",
        help="Start a Prefect server (with UI) and the database in the background.",
        description="Start a local Prefect server with its UI, the embedded PostgreSQL unless "
        "HEADWATER_DATABASE_URL is set, and a warm runner that runs `headwater run` with Prefect and dlt "
        "imported already. Flow runs then report to the server and start faster.",
    )
    up.add_argument(
        "--port", type=int, help="Port for the Prefect server and UI (default 4200, or a free one)."
    )
    up.add_argument("--timeout", type=float, default=60, help="Seconds to wait for the server (default 60).")
    up.set_defaults(run=run_up)

    down = subparsers.add_parser("down", help="Stop what `headwater up` started (runs in progress finish).")
    down.set_defaults(run=run_down)

    ps = subparsers.add_parser("ps", help="Show whether the local Prefect server and database are running.")
    ps.add_argument("--api-url", action="store_true",
                    help="Print only the Prefect API URL of the running server: "
                    'export PREFECT_API_URL="$(headwater ps --api-url)" points Prefect\'s own CLI at it.')
    ps.set_defaults(run=run_ps)


def destination_problem() -> bool:
    """Say what is wrong with $HEADWATER_DATABASE_URL, if anything, before any command here touches it."""
    from headwater.local.destination import destination_url_problem

    problem = destination_url_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
    return problem is not None


def run_up(args: argparse.Namespace) -> int:
    from headwater.local import stack
    from headwater.local.embedded_postgres import LocalPostgresError

    if destination_problem():
        return 2
    console = Console(stderr=True)
    try:
        with console.status("Starting the local stack…") as spinner:
            current = stack.up(state_dir(), port=args.port, timeout=args.timeout, progress=spinner.update)
    except (stack.StackError, LocalPostgresError) as exc:
        # Escaped: the message quotes log lines, which may contain [brackets].
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return 1
    out = Console()
    out.print(_table(current))
    out.print(
        "Run [bold]python -m flows.daily[/bold] — runs now show in the UI. "
        "Stop with [bold]headwater down[/bold]."
    )
    return 0


def run_down(args: argparse.Namespace) -> int:
    from headwater.local import stack

    if destination_problem():
        return 2
    before = stack.status(state_dir())
    after = stack.down(state_dir())
    stopped = []
    if before.runner_pid:
        stopped.append("warm runner")
    if before.prefect_pid:
        stopped.append("Prefect server")
    if before.embedded and before.database_url and not after.database_url:
        stopped.append("embedded PostgreSQL")
    print(f"Stopped: {', '.join(stopped)}." if stopped else "Nothing was running.")
    if after.embedded and after.database_url:
        print("The embedded PostgreSQL is still running (it was not started by `headwater up`); "
              "stop it with `headwater db stop`.")
    return 0


def run_ps(args: argparse.Namespace) -> int:
    from headwater.local import stack

    if destination_problem():
        return 2
    current = stack.status(state_dir())
    if args.api_url:
        if not current.prefect_api_url:
            print("The local Prefect server is not running; start it with `headwater up`.", file=sys.stderr)
            return 1
        print(current.prefect_api_url)  # alone on stdout, to be substituted into other commands
        return 0
    Console().print(_table(current))
    return 0


def _table(status) -> Table:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    stopped = "[dim]not running[/dim]"
    table.add_row("Prefect UI", status.prefect_ui_url or stopped)
    table.add_row("Prefect API", status.prefect_api_url or stopped)
    if status.prefect_pid:
        table.add_row("Server pid", str(status.prefect_pid))
    table.add_row("Warm runner", f"pid {status.runner_pid}" if status.runner_pid else stopped)
    source = "embedded" if status.embedded else "HEADWATER_DATABASE_URL"
    table.add_row("Database", f"{status.database_url or stopped}  [dim]({source})[/dim]")
    return table

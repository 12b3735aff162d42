"""`headwater example`: drive the bundled offline shop (init, advance, serve its API, status)."""

from __future__ import annotations

import argparse
from datetime import timedelta

from rich.console import Console
from rich.table import Table

from headwater.common import runtime
from headwater.common.interpolation import SECRETS_FILE
from headwater.example import Shop, run_api
from headwater.example.credentials import TOKEN_ENV, ensure_token, token_source
from headwater.example.simulator import START

DEFAULT_PORT = 8765

console = Console()


def shop() -> Shop:
    """The shop of the current project, kept under <project>/.headwater/example."""
    state = runtime.state_dir()
    return Shop(state / "example", secrets_file=state / SECRETS_FILE)


def simulated_date(day: int) -> str:
    return (START + timedelta(days=day)).date().isoformat()


def run_init(args: argparse.Namespace) -> int:
    example = shop()
    changes = example.init()
    if changes.empty:
        console.print(f"The example shop already exists (day {example.day}); nothing to do.")
    else:
        console.print(changes.to_table())
    console.print(f"State: {example.state_dir}")
    return 0


def run_advance(args: argparse.Namespace) -> int:
    if args.days < 1:
        console.print("[red]--days must be at least 1[/red]")
        return 2
    example = shop()
    changes = example.advance(args.days)
    console.print(changes.to_table())
    console.print(f"The shop is now at day {example.day} ({simulated_date(example.day)}).")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    example = shop()
    if example.day < 0:
        console.print("[yellow]The shop is not initialised yet; run `headwater example init`.[/yellow]")
    ensure_token(example.secrets_file)  # a token exists before clients ask for one
    source = token_source(example.secrets_file)

    def announce(url: str) -> None:
        # Say where the token is, never what it is.
        console.print(f"Payments API at {url}/payments (bearer token: {TOKEN_ENV} from {source})")
        console.print("Press Ctrl+C to stop.")

    run_api(example.state_dir, host=args.host, port=args.port, on_ready=announce)
    return 0


def run_status(args: argparse.Namespace) -> int:
    example = shop()
    day = example.day
    if day < 0:
        console.print("The example shop is not initialised; run `headwater example init`.")
        return 0
    truth = example.truth()
    table = Table(title=f"Example shop: day {day} ({simulated_date(day)})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("where")
    where = {
        "customers": str(example.shop_db),
        "products": str(example.shop_db),
        "orders": f"{example.landing_dir} ({len(list(example.landing_dir.glob('orders_day*')))} files)",
        "payments": "payments API (`headwater example serve`)",
    }
    for name, rows in truth.items():
        table.add_row(name, str(len(rows)), where[name])
    console.print(table)
    console.print(f"API token: {TOKEN_ENV} from {token_source(example.secrets_file) or 'not set yet'}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "example",
        help="run the bundled example shop",
        description="Simulate a small shop whose database, landing files and API feed the example project.",
    )
    commands = parser.add_subparsers(dest="example_command", required=True, metavar="ACTION")

    init = commands.add_parser("init", help="create the shop (day 0) if it does not exist")
    init.set_defaults(run=run_init)

    advance = commands.add_parser("advance", help="simulate the next day(s)")
    advance.add_argument("--days", type=int, default=1, help="how many days to simulate (default 1)")
    advance.set_defaults(run=run_advance)

    serve = commands.add_parser("serve", help="serve the payments API in the foreground")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.set_defaults(run=run_serve)

    status = commands.add_parser("status", help="show the shop's day and row counts")
    status.set_defaults(run=run_status)

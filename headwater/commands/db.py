"""`headwater db`: the project's database — where it is, and the embedded server's lifecycle."""

from __future__ import annotations

import argparse
import os
import sys

from headwater.common.runtime import state_dir
from headwater.postgres.address import DATABASE_URL_ENV, PostgresAddress


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "db", help="Show, start or stop the project's database.", description=__doc__
    )
    actions = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")

    url = actions.add_parser(
        "url",
        help="Print the database URL (starts the embedded server if needed).",
        description="Print the connection URL, and only that, on stdout: psql \"$(headwater db url)\".",
    )
    url.add_argument(
        "--show-password",
        action="store_true",
        help=f"Print the password of {DATABASE_URL_ENV} instead of ***.",
    )
    url.set_defaults(run=run_url)

    stop = actions.add_parser("stop", help="Stop the embedded PostgreSQL server.")
    stop.set_defaults(run=run_stop)

    status = actions.add_parser("status", help="Show which database is used and whether it is running.")
    status.set_defaults(run=run_status)


def _local():
    from headwater.local.embedded_postgres import LocalPostgres

    return LocalPostgres(state_dir() / "postgres")


def run_url(args: argparse.Namespace) -> int:
    external = os.environ.get(DATABASE_URL_ENV)
    if external:
        address = PostgresAddress.from_url(external)
        print(address.url if args.show_password else address.safe_url)
        if address.password and not args.show_password:
            print("(password hidden; add --show-password to print it)", file=sys.stderr)
        return 0

    from headwater.local.embedded_postgres import LocalPostgresError

    try:
        url = _local().start()
    except LocalPostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # stdout carries the URL alone so that it can be substituted into other commands.
    print(url)
    if sys.stdout.isatty():  # run by hand, not inside $(...)
        print(f'Connect with: psql "{url}"', file=sys.stderr)
    return 0


def run_stop(args: argparse.Namespace) -> int:
    from headwater.local.embedded_postgres import LocalPostgresError

    local = _local()
    try:
        stopped = local.stop()
    except LocalPostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("Embedded PostgreSQL stopped." if stopped else "Embedded PostgreSQL is not running.")
    if os.environ.get(DATABASE_URL_ENV):
        print(f"{DATABASE_URL_ENV} is set; Headwater does not start or stop that server.", file=sys.stderr)
    return 0


def run_status(args: argparse.Namespace) -> int:
    local = _local()
    external = os.environ.get(DATABASE_URL_ENV)
    if external:
        print(f"Database: {PostgresAddress.from_url(external).safe_url} (from {DATABASE_URL_ENV})")
    embedded_url = local.url()
    if embedded_url:
        print(f"Embedded PostgreSQL: running at {embedded_url}")
    else:
        hint = "" if external else " (starts on the next run or `headwater db url`)"
        print(f"Embedded PostgreSQL: not running{hint}")
    print(f"Data directory: {local.data_dir}")
    return 0

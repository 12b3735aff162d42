"""`headwater run`: the daily pipeline, the same as `python -m flows.daily`."""

from __future__ import annotations

import argparse

from headwater.load.reload import add_reload_arguments


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the daily pipeline (python -m flows.daily)")
    parser.add_argument("--advance-example", type=int, default=0, metavar="DAYS",
                        help="simulate DAYS days of the bundled shop before loading")
    add_reload_arguments(parser)
    parser.add_argument("--full-build", action="store_true",
                        help="rebuild every dbt model, not only those downstream of tables that received rows")
    parser.set_defaults(run=run)


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

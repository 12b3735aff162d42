"""The `headwater` command: one subcommand module per area under headwater.commands."""

from __future__ import annotations

import argparse
import importlib
import sys

from headwater.common.runtime import quiet_telemetry

# Each module exposes add_parser(subparsers); the parser it adds sets `run(args) -> int`.
COMMAND_MODULES = ("scaffold", "db", "stack", "example", "run", "connectors", "check", "quarantine", "dbt", "status",
                   "lineage", "docs", "inspect")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headwater",
        description="Incremental ELT into Postgres: dlt connectors, dbt models, Soda contracts, Prefect flows.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"headwater.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    quiet_telemetry()
    if argv is None and sys.argv[1:2] == ["run"]:
        # Before anything heavy is imported: `headwater up`'s warm runner has it imported already.
        from headwater.common.runtime import state_dir
        from headwater.local.warm_client import run_in_warm_runner

        code = run_in_warm_runner("headwater.cli", state_dir())
        if code is not None:
            return code
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

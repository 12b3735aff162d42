"""`headwater quarantine`: what was set aside per table and why, and loading it once it is fixed."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quarantine",
        help="List quarantined rows, or replay them after the config or data is fixed.",
        description="Rows that fail a rule or cannot be read are kept in raw_<source>.<table>__quarantine "
        "with the rule, the reason and where they came from.",
    )
    actions = parser.add_subparsers(dest="quarantine_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="Quarantined rows per table: counts by rule, latest reasons.")
    listing.add_argument("source", nargs="?", help="Only this source.")
    listing.set_defaults(run=run_list)

    replay = actions.add_parser(
        "replay",
        help="Send quarantined rows through the table's current steps and rules; load the ones that pass.",
    )
    replay.add_argument("target", metavar="SOURCE[.TABLE]", help="A source, or one table of it.")
    replay.set_defaults(run=run_replay)


def _project():
    from headwater.common.runtime import config_path
    from headwater.local.destination import resolve_destination
    from headwater.plugins.manager import connector_registry
    from headwater.project.config import load_project

    project = load_project(config_path(), connector_registry())
    return project, resolve_destination(project.state_dir)


def run_list(args: argparse.Namespace) -> int:
    from headwater.project.config import ConfigError
    from headwater.quarantine.report import quarantine_report

    try:
        project, address = _project()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    sources = [source for source in project.sources if args.source in (None, source.name)]
    if not sources:
        names = ", ".join(source.name for source in project.sources)
        print(f"error: no source {args.source!r}; sources: {names}", file=sys.stderr)
        return 2
    entries = quarantine_report(address, [source.dataset for source in sources])
    console = Console()
    if not entries:
        console.print("Nothing is quarantined.")
        return 0
    table = Table(title="Quarantined rows")
    table.add_column("table", no_wrap=True)
    table.add_column("quarantined", justify="right")
    table.add_column("replayed", justify="right")
    table.add_column("by rule")
    table.add_column("latest reasons (location)")
    for entry in entries:
        table.add_row(
            f"{entry.source}.{entry.table}",
            f"{entry.quarantined:,}",
            f"{entry.replayed:,}",
            escape(", ".join(f"{rule} {count:,}" for rule, count in entry.by_rule.items())),
            escape("\n".join(f"{reason} ({location})" for reason, location in entry.latest)),
        )
    console.print(table)
    console.print("Replay once fixed: headwater quarantine replay SOURCE[.TABLE]", highlight=False)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    from headwater.load.replay import ReplayError, replay
    from headwater.project.config import ConfigError

    source_name, _, table_name = args.target.partition(".")
    try:
        project, address = _project()
        source = project.source(source_name)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyError:
        names = ", ".join(source.name for source in project.sources)
        print(f"error: no source {source_name!r}; sources: {names}", file=sys.stderr)
        return 2
    try:
        results = replay(project, source, address, [table_name] if table_name else None)
    except ReplayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    console = Console()
    if not results:
        console.print(f"Nothing is quarantined in {source.name}.")
    for result in results:
        where = f"{source.name}.{result.table}"
        if result.skipped:
            console.print(f"{where}: {result.skipped}", highlight=False)
            continue
        line = f"{where}: {result.replayed:,} loaded, {result.still_quarantined:,} still quarantined"
        if result.reasons:
            line += " (" + ", ".join(f"{rule} {count:,}" for rule, count in result.reasons.items()) + ")"
        console.print(escape(line), highlight=False)
    return 0

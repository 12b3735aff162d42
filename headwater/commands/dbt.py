"""`headwater dbt sources`: write the dbt source definitions of the raw schemas dlt created."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.commands import read_project_or_report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dbt", help="Helpers for the project's dbt models.", description=__doc__)
    actions = parser.add_subparsers(dest="dbt_command", required=True, metavar="ACTION")

    sources = actions.add_parser(
        "sources",
        help="Add the tables and columns of raw_<source> to the dbt sources file; keep what is written by hand.",
        description="Read the tables and columns of each source's raw_<source> schema and merge them into "
        "models/staging/__sources.yml of the dbt project: missing sources, tables and columns are added; "
        "descriptions, tests, config and comments are kept; tables and columns no longer in the database "
        "are marked with `config: {meta: {headwater_missing: true}}`, never deleted.",
    )
    sources.add_argument("sources", nargs="*", metavar="SOURCE", help="Only these sources (default: all enabled).")
    sources.add_argument("--dry-run", action="store_true", help="Print the change as a diff; write nothing.")
    sources.set_defaults(run=run_sources)


def run_sources(args: argparse.Namespace) -> int:
    # Imported here: the config pulls in dlt through the connector plugins, which other commands need not pay for.
    from headwater.local.destination import resolve_destination
    from headwater.marts.source_definitions import (
        SourceChanges,
        merged_text,
        read_raw_tables,
        sources_file,
        unified_diff,
    )

    project = read_project_or_report()
    if project is None:
        return 2
    if project.transform_dir is None:
        print("error: no dbt project (`transform:` is disabled or its folder is missing)", file=sys.stderr)
        return 2
    known = {source.name: source for source in project.sources}
    unknown = [name for name in args.sources if name not in known]
    if unknown:
        print(f"error: no source {', '.join(unknown)}; sources: {', '.join(known)}", file=sys.stderr)
        return 2
    selected = [known[name] for name in args.sources] or [source for source in project.sources if source.enabled]

    address = resolve_destination(project.state_dir)
    merges, not_loaded = [], []
    with address.connect(autocommit=True) as connection:
        for source in selected:
            tables = read_raw_tables(connection, source.dataset)
            if tables:
                merges.append((source, tables))
            else:  # nothing to describe yet; its existing entry, if any, is left alone
                not_loaded.append(SourceChanges(source.name, loaded=False))

    path = sources_file(project.transform_dir)
    old = path.read_text() if path.exists() else ""
    new, changes = merged_text(old, merges)

    console = Console()
    console.print(_summary(changes + not_loaded))
    if new == old:
        console.print(f"{path} is up to date.", highlight=False, soft_wrap=True)
    elif args.dry_run:
        # Plain print: a diff must reach the terminal or a pipe exactly, without rich markup or wrapping.
        print(unified_diff(old, new, path), end="")
        console.print("Dry run: nothing was written.")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new)
        console.print(f"Wrote {path}.", highlight=False, soft_wrap=True)
    return 0


def _summary(changes: list) -> Table:
    table = Table(title="dbt source definitions")
    table.add_column("source", style="bold", no_wrap=True)
    table.add_column("added", overflow="fold")
    table.add_column("marked missing", overflow="fold")
    table.add_column("other", overflow="fold")
    for change in changes:
        if not change.loaded:
            table.add_row(change.source, "[dim]not loaded yet: no raw schema, skipped[/dim]", "", "")
            continue
        other = [f"restored {item}" for item in change.restored] + [f"retyped {item}" for item in change.retyped]
        table.add_row(
            change.source,
            escape("\n".join(change.added)) or "[dim]nothing new[/dim]",
            escape("\n".join(change.marked)),
            escape("\n".join(other)),
        )
    return table

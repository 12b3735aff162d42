"""`headwater docs`: write the static catalog site (tables, columns, lineage diagrams, quality dashboard)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from headwater.commands import read_project_or_report


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "docs",
        help="Write the catalog site: every table with columns, PII, lineage diagram; a quality dashboard.",
        description="Builds the column lineage (dbt docs generate), reads the run history in headwater_ops and "
        "writes static HTML pages with inline SVG diagrams to a folder: open index.html in a browser, no server "
        "needed. Default folder: catalog.site_dir of headwater.yaml, else .headwater/site.",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="write the site here instead")
    parser.add_argument("--no-refresh", action="store_true",
                        help="build lineage from the dbt artifacts already in .headwater/dbt/target; "
                        "do not run dbt docs generate")
    parser.set_defaults(run=run_docs)


def run_docs(args: argparse.Namespace) -> int:
    # Imported here: the config pulls in dlt through the connector plugins, which other commands need not pay for.
    from headwater.catalog_site import build_site
    from headwater.local.destination import resolve_destination

    console = Console(width=None if sys.stdout.isatty() else 140, highlight=False)
    project = read_project_or_report()
    if project is None:
        return 2
    started = time.perf_counter()
    with console.status("Connecting to the destination") as status:
        step = {"name": "", "at": time.perf_counter()}

        def progress(message: str) -> None:
            """Tick off the step that just ended (with its time) and show the next one on the status line."""
            now = time.perf_counter()
            if step["name"]:
                console.print(f"[green]✓[/green] {escape(step['name'])} [dim]({now - step['at']:.1f}s)[/dim]")
            step.update(name=message, at=now)
            status.update(escape(message) + " ...")

        try:
            address = resolve_destination(project.state_dir)
            progress(f"Destination {address.safe_url}")
            result = build_site(project, address, args.out, refresh=not args.no_refresh, progress=progress)
        except Exception as error:  # the database is unreachable, the folder not writable, ...
            console.print(f"[red]error:[/red] could not write the catalog site: {escape(str(error))}")
            return 1
        progress("")
    if result.lineage_error:
        console.print(f"[yellow]Lineage is missing from the site:[/yellow] {escape(result.lineage_error)}")
    console.print(f"Wrote {len(result.pages)} pages ({result.tables} tables, {result.sources} sources, index and "
                  f"dashboard) in {time.perf_counter() - started:.1f}s:")
    print(result.index.as_uri())
    return 0

"""`headwater inspect SOURCE[.TABLE]`: how each table's landing files would be read, so a user can pin it."""

from __future__ import annotations

import argparse
import sys

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.commands import secrets_from_the_server_of_runs


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="Show the CSV dialect, header and column types detected in a source's landing files.",
        description="Read the newest files of each table of a filesystem source as a run would (dialect, "
        "header, null tokens, column types) and print what was detected, with the `csv:` settings that pin it "
        "in headwater.yaml. Nothing is loaded.",
    )
    parser.add_argument("target", metavar="SOURCE[.TABLE]", help="A filesystem source, or one of its tables.")
    parser.add_argument("--files", type=int, default=3, help="Files per table, newest first (default 3).")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from headwater.common.interpolation import SecretBlockError
    from headwater.common.runtime import config_path
    from headwater.plugins.manager import connector_registry
    from headwater.project.config import ConfigError, load_project

    try:
        project = load_project(config_path(), connector_registry())
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    source_name, _, table = args.target.partition(".")
    source = next((s for s in project.sources if s.name == source_name), None)
    if source is None:
        names = ", ".join(s.name for s in project.sources)
        print(f"error: no source {source_name!r}; sources: {names}", file=sys.stderr)
        return 2
    if source.connector != "filesystem":
        print(f"error: {source_name} uses connector {source.connector!r}; inspect reads landing files of "
              "filesystem sources", file=sys.stderr)
        return 2
    secrets_from_the_server_of_runs(project)
    try:
        settings = project.resolved_settings(source)
    except SecretBlockError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    tables = [table] if table else list(settings["files"])
    if table and table not in settings["files"]:
        print(f"error: source {source_name!r} has no table {table!r}; tables: {', '.join(settings['files'])}",
              file=sys.stderr)
        return 2
    from connectors.filesystem.inspect import inspect_table

    console = Console(width=None if sys.stdout.isatty() else 120)
    for name in tables:
        spec = settings["files"][name]
        glob = spec if isinstance(spec, str) else spec["glob"]
        _print_table(console, source_name, name, glob, inspect_table(settings, name, limit=args.files,
                                                                        naming=source.naming))
    return 0


def _print_table(console: Console, source: str, table: str, glob: str, files) -> None:
    if not files:
        console.print(f"[bold]{source}.{table}[/bold]: no file matches the glob yet")
        return
    for inspection in files:
        console.print(f"[bold]{source}.{table}[/bold] {escape(inspection.file)} ({inspection.format})",
                      highlight=False)
        if inspection.problem:
            console.print(f"  [yellow]{escape(inspection.problem)}[/yellow]", highlight=False)
            continue
        if inspection.dialect:
            console.print(f"  dialect: {escape(inspection.dialect)}", highlight=False)
        for note in inspection.notes:
            console.print(f"  note: {escape(note)}", highlight=False)
        if inspection.columns:
            columns = Table(show_edge=False, pad_edge=False)
            columns.add_column("column")
            columns.add_column("lands as")
            for column, kind in inspection.columns.items():
                columns.add_row(escape(column), kind)
            console.print(columns)
        if inspection.settings:
            pinned = yaml.safe_dump({"files": {table: {"glob": glob, "csv": inspection.settings}}},
                                    sort_keys=False, allow_unicode=True)
            console.print("  to pin it, under the source's settings:", highlight=False)
            console.print(escape("    " + pinned.replace("\n", "\n    ").rstrip()), highlight=False)

"""`headwater connectors`: which connectors are installed, where they come from, and what they take;
`headwater cdc drop-slot`: a postgres_cdc source's replication slots removed from its database."""

from __future__ import annotations

import argparse
import difflib
import inspect
import re
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "connectors",
        help="List the installed connectors, or show one connector's settings.",
        description="Connectors come from Headwater itself and from plugin packages (entry-point group "
        "`headwater`); HEADWATER_PLUGINS=a,b restricts which plugins load.",
    )
    actions = parser.add_subparsers(dest="connectors_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="Every connector with its package, version and description.")
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="One connector: settings, defaults, secrets, known keys and cursors.")
    show.add_argument("name", help="Connector name, as in `connector:` of headwater.yaml.")
    show.set_defaults(run=run_show)


    cdc = subparsers.add_parser(
        "cdc", help="Change data capture sources (postgres_cdc): remove a source's replication slot.")
    cdc_actions = cdc.add_subparsers(dest="cdc_command", required=True, metavar="ACTION")
    drop = cdc_actions.add_parser(
        "drop-slot",
        help="Drop the replication slot of a postgres_cdc source, so its database stops keeping WAL for it.",
        description="A slot keeps every WAL segment its reader has not confirmed: a source that no longer streams "
        "must have its slot dropped, or the source database's disk fills. Raw keeps what it holds; loading the "
        "source again needs a new snapshot (`headwater run --full-refresh SOURCE`).")
    drop.add_argument("source", metavar="SOURCE", help="a postgres_cdc source of headwater.yaml")
    drop.add_argument("--drop-publication", action="store_true", help="drop the source's publication too")
    drop.add_argument("--yes", action="store_true", help="do not ask first")
    drop.set_defaults(run=run_drop_slot)


def run_drop_slot(args: argparse.Namespace) -> int:
    from headwater.commands import read_project_or_report

    project = read_project_or_report()
    if project is None:
        return 2
    names = [source.name for source in project.sources]
    if args.source not in names:
        print(f"error: no source {args.source!r}; sources: {', '.join(names)}", file=sys.stderr)
        return 2
    source = project.source(args.source)
    if source.connector != "postgres_cdc":
        print(f"error: {source.name} uses connector {source.connector}, not postgres_cdc: it has no slot",
              file=sys.stderr)
        return 2
    if not args.yes and not _confirm(f"Drop the replication slot of {source.name}? Loading it again then needs "
                                     f"`headwater run --full-refresh {source.name}` [y/N] "):
        print("Nothing was dropped.")
        return 1
    from connectors.postgres_cdc import drop_source_slots

    try:
        dropped = drop_source_slots(project.resolved_settings(source), source.name, args.drop_publication)
    except Exception as error:
        print(f"error: {source.name}: {error}", file=sys.stderr)
        return 1
    if not dropped:
        print(f"{source.name} has no replication slot in its database: nothing to drop.")
        return 0
    for name, kept in dropped:
        print(f"Dropped replication slot {name} of {source.name} (it kept {kept:,} bytes of WAL).")
    print(f"Raw keeps what it holds. To stream {source.name} again: `headwater run --full-refresh {source.name}` "
          "(a new snapshot); to stop for good, remove or disable it in headwater.yaml.")
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        print(question + "(not a terminal: answer no; give --yes)")
        return False
    return input(question).strip().lower() in ("y", "yes")


def _registry():
    # Imported here, not at module level: loading plugins imports dlt, which every other command would pay for.
    from headwater.plugins.manager import connector_registry

    return connector_registry()


def run_list(args: argparse.Namespace) -> int:
    registry = _registry()
    console = Console()
    table = Table(title="Installed connectors")
    table.add_column("connector", style="bold", no_wrap=True)
    table.add_column("package", no_wrap=True)
    table.add_column("description")
    for connector in registry:
        table.add_row(connector.name, _package(connector.plugin), escape(connector.description))
    console.print(table)
    _print_problems(console, registry.problems)
    # Still 0: the connectors that did load are usable; the problems are printed above.
    return 0


def run_show(args: argparse.Namespace) -> int:
    registry = _registry()
    connector = registry.get(args.name)
    if connector is None:
        close = difflib.get_close_matches(args.name, registry.names(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        print(
            f"error: unknown connector {args.name!r}; {hint}installed: {', '.join(registry.names())}",
            file=sys.stderr,
        )
        for problem in registry.problems:  # the connector may belong to a plugin that failed to load
            print(f"note: {problem}", file=sys.stderr)
        return 2

    console = Console()
    console.print(f"[bold]{connector.name}[/bold]: {escape(connector.description)}", soft_wrap=True)
    console.print(f"plugin: {escape(connector.plugin.name)}  package: {_package(connector.plugin)}", soft_wrap=True)
    if connector.docs_url:
        console.print(f"docs: {escape(connector.docs_url)}", soft_wrap=True)
    _print_settings(console, connector)
    resources = _resources_table(connector)
    if resources is not None:
        console.print(resources)
    return 0


def _package(plugin) -> str:
    return escape(f"{plugin.package} {plugin.version}".strip())


def _print_problems(console: Console, problems: list[str]) -> None:
    if not problems:
        return
    console.print(
        f"[red bold]{len(problems)} plugin problem(s); the connectors of these plugins are not available:[/red bold]"
    )
    for problem in problems:
        console.print(f"[red]  {escape(problem)}[/red]", soft_wrap=True)


def _print_settings(console: Console, connector) -> None:
    settings = connector.settings()
    table = Table(title=f"Settings of {connector.name} (the `settings:` keys of a source)")
    table.add_column("setting", style="bold", no_wrap=True)
    table.add_column("type", overflow="fold")
    table.add_column("default", overflow="fold")
    table.add_column("required", no_wrap=True)
    table.add_column("secret", no_wrap=True)
    for setting in settings:
        table.add_row(
            setting.name,
            escape(setting.type_name),
            "" if setting.required else escape(repr(setting.default)),
            "yes" if setting.required else "no",
            "yes" if setting.secret else "no",
        )
    console.print(table)
    if any(setting.secret for setting in settings):
        console.print("Secret settings must be ${NAME} references (environment or .headwater/secrets.env).")
    # Descriptions below the table rather than in a column: they stay readable in an 80-column terminal.
    described = setting_descriptions(connector.source)
    for setting in settings:
        if described.get(setting.name):
            console.print(f"  [bold]{setting.name}[/bold]: {escape(described[setting.name])}")


def _resources_table(connector) -> Table | None:
    resources = sorted(set(connector.primary_keys) | set(connector.cursors) | set(connector.pii))
    if not resources:
        return None
    table = Table(title="Known keys and cursors per resource (suggested `tables:` options)")
    table.add_column("resource", style="bold", no_wrap=True)
    table.add_column("primary key")
    table.add_column("cursor")
    table.add_column("PII columns")
    for resource in resources:
        key = connector.primary_keys.get(resource, "")
        table.add_row(
            resource,
            escape(", ".join(key) if isinstance(key, (list, tuple)) else str(key)),
            escape(connector.cursors.get(resource, "")),
            escape(", ".join(connector.pii.get(resource, []))),
        )
    return table


# `    name: text` in the Args: section of a Google-style docstring.
ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def setting_descriptions(source) -> dict[str, str]:
    """Per parameter, its description from the `Args:` section of the source function's docstring."""
    doc = inspect.getdoc(source) or ""
    descriptions: dict[str, str] = {}
    in_args = False
    current = None
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:", "Parameters:"):
            in_args, current = True, None
            continue
        if not in_args:
            continue
        if line and not line[0].isspace():  # the next section starts
            break
        match = ARG_LINE.match(line)
        if match and len(line) - len(line.lstrip()) <= 4:
            current = match.group(1)
            descriptions[current] = match.group(2).strip()
        elif current and line.strip():  # a continuation line
            descriptions[current] += " " + line.strip()
    return descriptions

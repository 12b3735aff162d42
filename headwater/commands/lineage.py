"""`headwater lineage`: where a column comes from, what it feeds, and the OpenLineage export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from headwater.commands import read_project_or_report

DESCRIPTION = """\
Column-level lineage from connector resource fields (source:<source>.<resource>.<field>) through the
raw tables dlt loaded (raw_<source>) to the dbt models (staging, marts). Runs `dbt docs generate`
first, which needs the database (--no-refresh reuses the last artifacts).

Direct inputs carry the value (perhaps transformed, masked or hashed); indirect inputs decide which
rows or groups it comes from (join keys, filters, group by). Anything that could not be traced on
the way is printed as a warning.

examples:
  headwater lineage marts.customers.lifetime_revenue      where it comes from
  headwater lineage raw_shop_db.customers.email --downstream   everything it feeds
  headwater lineage --openlineage lineage.jsonl            OpenLineage RunEvent(s), one JSON object per line
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lineage",
        help="Column lineage: where a column comes from (or what it feeds), and an OpenLineage export.",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("column", nargs="?", metavar="SCHEMA.TABLE.COLUMN",
                        help="e.g. marts.customers.email; a connector field is source:SOURCE.RESOURCE.FIELD")
    parser.add_argument("--downstream", action="store_true",
                        help="print everything the column feeds (impact analysis) instead of its inputs")
    parser.add_argument("--direct-only", action="store_true",
                        help="follow direct edges only (the value), hide indirect ones (join keys, filters)")
    parser.add_argument("--json", action="store_true", help="print the tree as JSON instead")
    parser.add_argument("--no-refresh", action="store_true",
                        help="reuse the dbt artifacts of the last run instead of running `dbt docs generate`")
    parser.add_argument("--openlineage", metavar="FILE", type=Path,
                        help="write the whole project's lineage as OpenLineage RunEvents to FILE ('-': stdout), "
                             "JSONL: one JSON object per line, one COMPLETE event per run; no column needed")
    parser.set_defaults(run=run_lineage)


def run_lineage(args: argparse.Namespace) -> int:
    from headwater.lineage.build import LineageError, build_lineage
    from headwater.lineage.model import ColumnRef
    from headwater.local.destination import resolve_destination

    if args.column is None and args.openlineage is None:
        print("error: name a column (SCHEMA.TABLE.COLUMN) or give --openlineage FILE", file=sys.stderr)
        return 2
    project = read_project_or_report()
    if project is None:
        return 2
    import psycopg

    address = resolve_destination(project.state_dir)
    try:
        lineage = build_lineage(project, address, refresh=not args.no_refresh)
    except LineageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as error:
        # A connection failure names the destination itself (PostgresAddress.connect).
        text = str(error).strip()
        print(f"error: {text}" if address.safe_url in text else f"error: cannot read {address.safe_url}: {text}",
              file=sys.stderr)
        return 1

    if args.openlineage is not None:
        _write_openlineage(lineage, project, address, args.openlineage)
        if args.column is None:
            return 0

    try:
        ref = ColumnRef.parse(args.column)
    except ValueError as error:
        return _unknown(lineage, args.column, str(error))
    if lineage.column(ref) is None:
        table = lineage.tables.get(ref.table_key)
        if table is None:
            return _unknown(lineage, args.column, f"no column {args.column} in the lineage")
        why = "; ".join(item.reason for item in lineage.unresolved_for(table.key) if item.column is None)
        return _unknown(lineage, args.column, f"{table.key} has no column {ref.column}"
                        + (f" (its columns could not be read: {why})" if why else ""))
    return _print_tree(lineage, ref, args)


def _write_openlineage(lineage, project, address, path: Path) -> None:
    from headwater.lineage.openlineage import openlineage_event

    line = json.dumps(openlineage_event(lineage, project, address), separators=(",", ":")) + "\n"
    if str(path) == "-":
        sys.stdout.write(line)
        return
    path.write_text(line)
    print(f"Wrote 1 OpenLineage event to {path}", file=sys.stderr)


def _unknown(lineage, text: str, message: str) -> int:
    from headwater.lineage.report import close_matches

    matches = close_matches(lineage, text)
    hint = f"; did you mean: {', '.join(matches)}?" if matches else \
        "; columns are named SCHEMA.TABLE.COLUMN, e.g. marts.customers.email"
    print(f"error: {message}{hint}", file=sys.stderr)
    return 2


def _print_tree(lineage, ref, args: argparse.Namespace) -> int:
    from headwater.lineage.report import DOWNSTREAM, UPSTREAM, column_tree, tree_columns, tree_dict, unresolved_on

    direction = DOWNSTREAM if args.downstream else UPSTREAM
    root = column_tree(lineage, ref, direction, direct_only=args.direct_only)
    problems = unresolved_on(lineage, tree_columns(root))
    if args.json:
        document = {
            "column": str(ref),
            "direction": direction,
            "direct_only": args.direct_only,
            "tree": tree_dict(lineage, root, direction),
            "unresolved": [{"table": item.table, "column": item.column, "reason": item.reason} for item in problems],
        }
        print(json.dumps(document, indent=2))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 160)
    tree = Tree(_label(lineage, root, direction))
    _add_children(lineage, tree, root, direction)
    console.print(tree, soft_wrap=False)
    if not root.children and problems:
        console.print(f"[dim]No {'inputs' if direction == UPSTREAM else 'outputs'} could be traced.[/dim]")
    elif not root.children:
        console.print(f"[dim]{'No inputs' if direction == UPSTREAM else 'Nothing reads it'}: "
                      f"{escape(str(ref))} is where the lineage "
                      f"{'starts' if direction == UPSTREAM else 'ends'}.[/dim]")
    for item in problems:
        console.print(f"[yellow]warning:[/yellow] unresolved {escape(str(item))}", highlight=False, soft_wrap=True)
    return 0


def _add_children(lineage, branch: Tree, step, direction: str) -> None:
    for child in step.children:
        _add_children(lineage, branch.add(_label(lineage, child, direction)), child, direction)


def _label(lineage, step, direction: str) -> str:
    info = lineage.column(step.ref)
    table = lineage.tables.get(step.ref.table_key)
    name = f"[bold]{escape(str(step.ref))}[/bold]"
    if step.indirect_only:
        name = f"[yellow]indirect[/yellow] {escape(str(step.ref))}"
    facts = [table.layer if table else "?"]
    if info is not None and info.data_type:
        facts.append(escape(info.data_type))
    if info is not None and info.pii:
        facts.append("[red]PII[/red]")
    if info is not None and info.masked:
        facts.append("[green]masked at load[/green]")
    if info is not None and info.checks:
        facts.append("checks: " + escape(", ".join(info.checks)))
    lines = [f"{name}  [dim]{' · '.join(facts)}[/dim]"]
    for edge in _merged(step.edges):
        lines.append(edge)
    if step.repeated:
        lines.append(f"[dim](its {'inputs' if direction == 'upstream' else 'outputs'} are shown above)[/dim]")
    return "\n".join(lines)


def _merged(edges) -> list[str]:
    """One line per edge kind: `direct (aggregation, masking): <sql>` / `indirect (join, filter): <clauses>`."""
    lines = []
    for kind in ("direct", "indirect"):
        chosen = [edge for edge in edges if edge.kind == kind]
        if not chosen:
            continue
        subtypes = [edge.subtype.lower().replace("_", " ") for edge in chosen if edge.subtype]
        if any(edge.masking for edge in chosen):
            subtypes.append("[green]masking[/green]")
        details = []
        for edge in chosen:
            for part in edge.transformation.split("; ") if kind == "indirect" else [edge.transformation]:
                if part and part not in details:
                    details.append(part)
        style = "cyan" if kind == "direct" else "yellow"
        label = f"[{style}]{kind}[/{style}]" + (f" ({', '.join(dict.fromkeys(subtypes))})" if subtypes else "")
        lines.append(f"  {label}" + (f": [dim]{escape('; '.join(details))}[/dim]" if details else ""))
    return lines

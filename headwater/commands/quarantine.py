"""`headwater quarantine`: what was set aside per table and why, row by row, and loading it once it is fixed."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.commands import holding_source, secrets_from_the_server_of_runs

if TYPE_CHECKING:
    from headwater.load.replay import TableReplay
    from headwater.project.config import ProjectConfig, SourceConfig
    from headwater.quarantine.report import QuarantinedRows
    from headwater.quarantine.selection import Selection

SHOW_LIMIT = 20
REASON_CHARACTERS = 100  # per reason in `list`, a summary; `show` prints reasons whole


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

    show = actions.add_parser(
        "show", help="The quarantined rows of one table, newest first: where from, rule, reason, values."
    )
    show.add_argument("target", metavar="SOURCE.TABLE", help="One table of a source.")
    show.add_argument("--rule", help="Only rows this rule rejected.")
    show.add_argument("--limit", type=_positive, default=SHOW_LIMIT, metavar="N",
                      help=f"Show at most N rows ({SHOW_LIMIT}).")
    show.set_defaults(run=run_show)

    replay = actions.add_parser(
        "replay",
        help="Send quarantined rows through the table's current steps and rules; load the ones that pass.",
        description="Without options every quarantined row of the source or table is replayed. --rule, "
        "--location and --where pick rows of one table (all must match); --set changes fields of the "
        "picked rows' records before they are replayed. Values are compared and set as `quarantine show` "
        "prints them.",
    )
    replay.add_argument("target", metavar="SOURCE[.TABLE]", help="A source, or one table of it.")
    replay.add_argument("--rule", help="Only rows this rule rejected.")
    replay.add_argument("--location", action="append", default=[], metavar="LOCATION",
                        help="Only the row from here, as `show` prints it (file:line or resource[key=...]); "
                        "repeat for more rows.")
    replay.add_argument("--where", action="append", default=[], type=_assignment, metavar="FIELD=VALUE",
                        help="Only rows whose record has this value; repeat to require more fields.")
    replay.add_argument("--set", action="append", default=[], type=_assignment, metavar="FIELD=VALUE",
                        dest="edits", help="Set this field of the picked records first (needs --rule, --location "
                        "or --where); repeat for more fields.")
    replay.set_defaults(run=run_replay)
    add_purge_parser(actions)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of rows, 1 or more; got {text!r}")
    return int(text)


def _assignment(text: str) -> tuple[str, str]:
    from headwater.quarantine.selection import parse_assignment

    try:
        return parse_assignment(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _project():
    from headwater.access.run_roles import run_roles
    from headwater.common.runtime import config_path
    from headwater.local.destination import resolve_destination
    from headwater.plugins.manager import connector_registry
    from headwater.project.config import load_project

    project = load_project(config_path(), connector_registry())
    secrets_from_the_server_of_runs(project)
    # Quarantine tables are the loader's, and a replay loads: as the loader role when `grants:` allows.
    return project, run_roles(resolve_destination(project.state_dir), project.grants).loader


def _say(console: Console, message: str) -> None:
    """One line of plain text, not wrapped: a terminal wraps it, and a log or grep keeps it whole."""
    console.print(escape(message), highlight=False, soft_wrap=True)


def _source(project: ProjectConfig, name: str) -> SourceConfig | None:
    try:
        return project.source(name)
    except KeyError:
        names = ", ".join(source.name for source in project.sources)
        print(f"error: no source {name!r}; sources: {names}", file=sys.stderr)
        return None


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
        _say(console, "Nothing is quarantined.")
        return 0
    # Built for 80 columns: one rule and one reason per line, so the reasons get the width and wrap at words.
    table = Table(title="Quarantined rows", title_justify="left")
    table.add_column("table", overflow="fold")
    table.add_column("rows", no_wrap=True)
    table.add_column("by rule", no_wrap=True)
    table.add_column("latest reasons (location)", ratio=1, overflow="fold")
    for entry in entries:
        table.add_row(
            escape(f"{entry.source}.{entry.table}"),
            f"{entry.quarantined:,} quarantined\n{entry.replayed:,} replayed"
            + (f"\n{entry.superseded:,} superseded" if entry.superseded else ""),
            escape("\n".join(f"{rule} {count:,}" for rule, count in entry.by_rule.items())),
            escape("\n".join(f"{_abbreviated(reason)} ({location})" for reason, location in entry.latest)),
        )
    console.print(table)
    console.print("Rows of a table: headwater quarantine show SOURCE.TABLE\n"
                  "Replay once fixed: headwater quarantine replay SOURCE[.TABLE]", highlight=False)
    return 0


def _abbreviated(reason: str) -> str:
    return reason if len(reason) <= REASON_CHARACTERS else reason[: REASON_CHARACTERS - 1].rstrip() + "…"


def run_show(args: argparse.Namespace) -> int:
    from headwater.project.config import ConfigError
    from headwater.quarantine.report import quarantined_rows, table_names

    try:
        project, address = _project()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    source_name, _, table_name = args.target.partition(".")
    source = _source(project, source_name)
    if source is None:
        return 2
    tables = table_names(address, source.dataset)
    if table_name not in tables:
        problem = f"no table {table_name!r} in {source.name}" if table_name else (
            f"expected SOURCE.TABLE, got {args.target!r}")
        known = f"tables: {', '.join(f'{source.name}.{name}' for name in tables)}" if tables else (
            f"{source.name} has not been loaded yet")
        print(f"error: {problem}; {known}", file=sys.stderr)
        return 2
    found = quarantined_rows(address, source.dataset, table_name, rule=args.rule, limit=args.limit)
    console = Console()
    where = f"{source.name}.{table_name}"
    if not found.rows:
        if args.rule is not None and found.by_rule:
            rules = ", ".join(f"{rule} {count:,}" for rule, count in found.by_rule.items())
            _say(console, f"No row of {where} is quarantined by rule {args.rule!r}; by rule: {rules}")
        else:
            _say(console, f"Nothing is quarantined in {where}.")
        return 0
    console.print(_rows_table(where, args.rule, found))
    if found.not_shown:
        console.print(f"{found.not_shown:,} more not shown: --limit {found.total} shows them all.", highlight=False)
    console.print(escape(f"Fix a row's values and replay it:\n  headwater quarantine replay {where} "
                         "--location LOCATION --set FIELD=VALUE"), highlight=False)
    return 0


def _rows_table(where: str, rule: str | None, found: QuarantinedRows) -> Table:
    from headwater.quarantine.selection import shown_fields

    which = f" by rule {rule}" if rule is not None else ""
    plural = "" if found.total == 1 else "s"
    table = Table(title=escape(f"{where}: {found.total:,} row{plural} quarantined{which}, newest first"),
                  title_justify="left")
    # Built for 80 columns like `list`; values fold rather than end in an ellipsis, since they are what gets fixed.
    table.add_column("location", overflow="fold")
    table.add_column("rule", no_wrap=True)
    table.add_column("reason", ratio=1, overflow="fold")
    table.add_column("record", ratio=1, overflow="fold")
    table.add_column("when (UTC)", no_wrap=True)
    for row in found.rows:
        table.add_row(
            escape(row.location),
            escape(row.rule),
            escape(row.reason),
            escape(", ".join(f"{name}={value}" for name, value in shown_fields(row.record))),
            row.quarantined_at.strftime("%Y-%m-%d\n%H:%M:%S"),
        )
    return table


def run_replay(args: argparse.Namespace) -> int:
    from headwater.quarantine.selection import Selection

    target = _target(args.target)
    if target is None:
        return 2
    project, address, source, table_name = target
    selection = Selection(rule=args.rule, locations=tuple(args.location), fields=tuple(args.where))
    problem = _replay_options_problem(args.target, table_name, selection, args.edits)
    edits = dict(args.edits)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # A replay writes the raw schema and uses the source's dlt working folder: never beside a run's load.
    return holding_source(project, address, source, "quarantine replay", "nothing was replayed",
                   lambda: _replay(project, source, address, table_name, selection, edits))


def _target(target: str):
    """(project, address, source, table name or "") of a SOURCE[.TABLE] argument; None after saying what is wrong."""
    from headwater.project.config import ConfigError

    source_name, _, table_name = target.partition(".")
    try:
        project, address = _project()
    except ConfigError as error:
        print(error, file=sys.stderr)
        return None
    source = _source(project, source_name)
    return None if source is None else (project, address, source, table_name)


def _replay(project, source, address, table_name: str, selection, edits: dict[str, str]) -> int:
    from headwater.load.replay import ReplayError, prepare_replay
    from headwater.ops.audit import audit_replay

    try:
        prepared = prepare_replay(project, source, address, [table_name] if table_name else None, selection, edits)
    except ReplayError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    console = Console()
    if not selection.everything:
        [result] = prepared.results
        where = f"{source.name}.{table_name}"
        if not result.skipped and not result.matched:
            print(_nothing_matches(where, selection, result.pending), file=sys.stderr)
            return 1
        if not result.skipped:
            _say(console, _announcement(where, selection, edits, result.matched))
    results = prepared.load()
    audit_replay(address, source.name, table_name, selection, edits, results)
    if not results:
        _say(console, f"Nothing is quarantined in {source.name}.")
    for result in results:
        _say(console, _outcome(f"{source.name}.{result.table}", result))
    return 0


def _replay_options_problem(
    target: str, table_name: str, selection: Selection, edits: list[tuple[str, str]]
) -> str | None:
    if (not selection.everything or edits) and not table_name:
        return "--rule, --location, --where and --set work on one table: give SOURCE.TABLE"
    if edits and selection.everything:
        return ("--set changes the rows a filter picks: add --rule, --location or --where "
                f"(the rows: headwater quarantine show {target})")
    names = [name for name, _ in edits]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return f"--set {', '.join(repeated)} given more than once"
    return None


def _announcement(where: str, selection: Selection, edits: dict[str, str], matched: int) -> str:
    rows = "1 quarantined row matches" if matched == 1 else f"{matched:,} quarantined rows match"
    action = "replaying it" if matched == 1 else "replaying them"
    if edits:
        action = f"setting {', '.join(f'{name}={value}' for name, value in edits.items())} and {action}"
    return f"{where}: {rows} {selection.describe()}; {action}."


def _nothing_matches(where: str, selection: Selection, pending: int) -> str:
    if not pending:
        return f"error: nothing is quarantined in {where}; nothing was replayed"
    rows = "1 row is" if pending == 1 else f"{pending:,} rows are"
    return (f"error: no quarantined row of {where} matches {selection.describe()}; nothing was replayed. "
            f"{rows} quarantined: headwater quarantine show {where}")


def _outcome(where: str, result: TableReplay) -> str:
    if result.skipped:
        return f"{where}: {result.skipped}"
    superseded = f"{result.superseded:,} superseded by newer versions (not loaded), " if result.superseded else ""
    line = f"{where}: {result.replayed:,} loaded, {superseded}{result.still_quarantined:,} still quarantined"
    if result.reasons:
        line += " (" + ", ".join(f"{rule} {count:,}" for rule, count in result.reasons.items()) + ")"
    return line


def add_purge_parser(actions: argparse._SubParsersAction) -> None:
    purge = actions.add_parser(
        "purge",
        help="Delete quarantined rows: those replayed or superseded (the default), open ones only with --open.",
        description="Deletes rows of raw_<source>.<table>__quarantine and prints how many per table. Without "
        "options: the rows a replay loaded or found superseded. --open deletes rows still quarantined too "
        "(their data is gone for good: asks first, or give --yes); with --open alone only those. "
        "--older-than keeps the newer rows.",
    )
    purge.add_argument("target", metavar="SOURCE[.TABLE]", help="A source, or one table of it.")
    purge.add_argument("--resolved", action="store_true",
                       help="Rows replayed or superseded (the default; with --open, both kinds).")
    purge.add_argument("--open", action="store_true", dest="open_rows",
                       help="Rows still quarantined, never replayed: deleted for good.")
    purge.add_argument("--older-than", type=_age, metavar="AGE",
                       help="Only rows resolved (or, open ones, quarantined) longer ago than AGE: 30d, 12h, 2w.")
    purge.add_argument("--yes", action="store_true", help="Delete open rows without asking.")
    purge.set_defaults(run=run_purge)


def _age(text: str):
    from headwater.project.freshness import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_purge(args: argparse.Namespace) -> int:
    from headwater.quarantine.purge import PurgeRequest

    target = _target(args.target)
    if target is None:
        return 2
    project, address, source, table_name = target
    request = PurgeRequest(resolved=args.resolved or not args.open_rows, open=args.open_rows,
                           older_than=args.older_than)
    # Deleting rows of the raw schema: never beside a run or replay writing the same quarantine tables.
    return holding_source(project, address, source, "quarantine purge", "nothing was deleted",
                   lambda: _purge(address, source, table_name, request, args.yes))


def _purge(address, source, table_name: str, request, confirmed: bool) -> int:
    from headwater.quarantine.purge import purge_quarantine
    from headwater.quarantine.report import table_names

    if table_name and table_name not in table_names(address, source.dataset):
        known = ", ".join(f"{source.name}.{name}" for name in table_names(address, source.dataset))
        print(f"error: no table {table_name!r} in {source.name}; tables: {known or 'none loaded yet'}",
              file=sys.stderr)
        return 2
    tables = [table_name] if table_name else None
    keys = _primary_keys(address, source.dataset)
    console = Console()
    if request.open and not confirmed:
        counted = purge_quarantine(address, source.dataset, request, tables, keys, count_only=True)
        waiting = sum(purged.open for purged in counted)
        if waiting and not _confirmed(source.name, table_name, counted, waiting):
            return 1
    purged = purge_quarantine(address, source.dataset, request, tables, keys)
    where = f"{source.name}.{table_name}" if table_name else source.name
    if not purged:
        _say(console, f"Nothing to delete in {where}: no {_kinds(request)}.")
        return 0
    for entry in purged:
        _say(console, f"{source.name}.{entry.table}: {entry.rows:,} deleted ({entry.resolved:,} replayed or "
                      f"superseded, {entry.open:,} open)")
    return 0


def _confirmed(source: str, table: str, counted, waiting: int) -> bool:
    """Whether the user agrees to delete ``waiting`` open rows; a session without a terminal needs --yes."""
    tables = ", ".join(f"{source}.{entry.table} {entry.open:,}" for entry in counted if entry.open)
    question = (f"{waiting:,} quarantined rows were never loaded ({tables}); deleted, they are gone for good. "
                "Delete them? [y/N] ")
    if not sys.stdin.isatty():
        print(f"error: {waiting:,} open rows would be deleted ({tables}); nothing was deleted. "
              f"Add --yes to delete them (headwater quarantine purge {source}{'.' + table if table else ''} "
              "--open --yes)", file=sys.stderr)
        return False
    answer = input(question).strip().lower()
    if answer not in ("y", "yes"):
        print("Nothing was deleted.", file=sys.stderr)
        return False
    return True


def _kinds(request) -> str:
    """`resolved`, `resolved or open`, `open row older than 30d`...: what the request picks, in words."""
    from headwater.project.quarantine_settings import describe_retention

    kinds = " or ".join(kind for kind, wanted in (("resolved", request.resolved), ("open", request.open)) if wanted)
    return f"{kinds} row older than {describe_retention(request.older_than)}" if request.older_than else f"{kinds} row"


def _primary_keys(address, dataset: str) -> dict[str, list[str]]:
    """Each table's primary key, as dlt stored it: purge keeps resolved rows of keys still quarantined."""
    from headwater.load.stored_schemas import stored_schemas

    keys: dict[str, list[str]] = {}
    with address.connect() as connection:
        for schema in stored_schemas(connection, dataset):
            for name, table in (schema.get("tables") or {}).items():
                key = [column for column, hints in (table.get("columns") or {}).items() if hints.get("primary_key")]
                if key:
                    keys[name] = key
    return keys

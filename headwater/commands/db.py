"""`headwater db`: the project's database — where it is, the embedded server's lifecycle, and its roles."""

from __future__ import annotations

import argparse
import os
import sys

from headwater.commands import read_project_or_report
from headwater.common.runtime import state_dir
from headwater.postgres.address import DATABASE_URL_ENV, PostgresAddress

GRANTS_DESCRIPTION = """\
Create or update the loader, transformer and reader roles of `grants:` in headwater.yaml, in one
transaction, and print what changed (nothing, when the database already was so):

  loader       creates raw_<source> schemas; owns raw_* and headwater_ops and writes them
  transformer  reads raw_*; owns and writes the dbt schemas (staging, ...), marts__audit and marts
  reader       reads the published marts, every column but those carrying unmasked PII (from the lineage)

The roles are NOLOGIN group roles; `members:` are existing login users made members. Schemas and
tables of raw_* and headwater_ops that another user owns (made before the roles existed) are given to
the loader, those of the dbt schemas and marts to the transformer, so that runs taking these roles can
alter and replace them. Run it as a superuser, or a user with CREATEROLE that owns the database:
HEADWATER_DATABASE_URL=postgresql://admin@host/db headwater db grants. See docs/security.md.
"""


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

    grants = actions.add_parser(
        "grants", help="Create or update the loader, transformer and reader roles (grants: in headwater.yaml).",
        description=GRANTS_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    grants.add_argument("--dry-run", action="store_true", help="print what would change, and change nothing")
    grants.set_defaults(run=run_grants)


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


def _audit_grants(address, project, result) -> None:
    """A grant change is a record of the audit trail: who changed which role's privileges on what."""
    from headwater.ops.audit import record_event

    record_event(address, "grants", {
        "roles": {kind: role.name for kind, role in project.grants.by_kind().items()},
        "changes": [{"object": change.object, "role": change.role, "change": change.change}
                    for change in result.changes],
    })


def run_grants(args: argparse.Namespace) -> int:
    from rich.console import Console

    from headwater.access.roles import GrantsError, apply_grants
    from headwater.local.destination import resolve_destination

    project = read_project_or_report()
    if project is None:
        return 2
    if project.grants is None:
        print(f"error: {project.path} has no `grants:` block. Add `grants: {{}}` for the roles headwater_loader, "
              "headwater_transformer and headwater_reader, or name them and their members (see docs/security.md); "
              "runs use the roles and set the reader's mart columns only with it. Nothing was changed.",
              file=sys.stderr)
        return 2
    import psycopg

    address = resolve_destination(project.state_dir)
    try:
        findings, lineage_problem = _pii_findings(project, address)
        result = apply_grants(address, project.grants, findings, dry_run=args.dry_run)
    except GrantsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except psycopg.Error as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        print(f"error: {address.safe_url}: {first}; nothing was changed", file=sys.stderr)
        return 1
    console = Console(width=None if sys.stdout.isatty() else 120)
    if result.changes and not args.dry_run:
        _audit_grants(address, project, result)
    if result.changes:
        console.print(_changes_table(result, address.database))
    else:
        console.print(f"No change: the roles and grants in {address.database} already are as "
                      f"{project.path.name} says.", highlight=False)
    if result.reader is not None and result.reader.withheld:
        for relation, columns in sorted(result.reader.withheld.items()):
            for column, why in sorted(columns.items()):
                console.print(f"Withheld from {result.reader.reader}: {relation}.{column} ({why})", highlight=False,
                              soft_wrap=True)
    if lineage_problem:
        print(f"warning: the reader's columns of the marts were left as they were: {lineage_problem}",
              file=sys.stderr)
        return 1
    return 0


def _pii_findings(project, address: PostgresAddress):
    """What the lineage says of the published marts' columns, (findings, None); (None, why) when it cannot say.

    The lineage is built only when there are published relations to grant on.
    """
    from headwater.access.mart_grants import PiiFindings, pii_findings
    from headwater.marts.publish import PUBLISHED_SCHEMAS

    if not address.relations(set(PUBLISHED_SCHEMAS)):
        return PiiFindings(frozenset()), None
    if project.transform_dir is None:
        return None, "the project has no dbt project to trace the marts' columns with"
    from headwater.lineage.build import build_lineage

    try:
        return pii_findings(build_lineage(project, address), PUBLISHED_SCHEMAS), None
    except Exception as error:  # dbt could not produce its artifacts, or the database could not be read
        return None, f"the lineage could not be built ({type(error).__name__}: {str(error).strip()}); " \
                     "fix it (`headwater lineage --openlineage -` shows why) and run again"


def _changes_table(result, database: str):
    from rich.table import Table

    title = f"Roles and grants in {database}" + (" (dry run: nothing was changed)" if not result.applied else "")
    table = Table(title=title, title_justify="left")
    for name in ("object", "role", "change"):
        table.add_column(name)
    for change in result.changes:
        table.add_row(change.object, change.role, change.change)
    return table

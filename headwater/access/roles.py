"""`headwater db grants`: the loader, transformer and reader roles created or brought up to date, in one transaction.

- loader: connects, creates schemas (`raw_<source>`) and temporary tables; owns `raw_*` and
  `headwater_ops` and all in them.
- transformer: connects, creates schemas and temporary tables; reads `raw_*` and `headwater_ops`, adds
  to the audit log; owns the dbt schemas (`staging`, ...), `marts__audit` and `marts` and all in them.
- reader: connects; reads the published marts' columns that carry no unmasked PII; owns nothing.

Objects another user created earlier (tables a run made before the roles existed) are given to the
role that owns their schema, so that later loads can alter them (dlt adds columns) and publishing can
replace them. Default privileges give the transformer what the loader creates later; the reader's
columns are set after each publish instead (headwater.access.mart_grants). Whatever else these roles
hold in those schemas is revoked: the reader never reads `raw_*`, staging, audit schemas or
`headwater_ops`, and neither the loader nor the reader writes the marts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from headwater.access.mart_grants import PiiFindings, ReaderGrants, grant_reader
from headwater.access.privileges import Change, changes, snapshot
from headwater.ops.history import ensure_schema
from headwater.postgres.address import PostgresAddress
from headwater.project.grants import GrantsConfig

OPS_SCHEMA = "headwater_ops"
AUDIT_LOG = "audit_log"  # headwater_ops.audit_log: loader and transformer may add records and read them, no more
# pg_class.relkind -> the ALTER that changes the owner of such a relation
_ALTER = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table", "S": "sequence"}


class GrantsError(Exception):
    """The grants cannot be applied as configured; nothing was changed. str() says what to do."""


@dataclass
class GrantsResult:
    changes: list[Change] = field(default_factory=list)
    reader: ReaderGrants | None = None  # None: the reader's mart columns were left as they were
    applied: bool = True  # False for a dry run: the changes are what would happen


def apply_grants(address: PostgresAddress, grants: GrantsConfig, findings: PiiFindings | None,
                 dry_run: bool = False) -> GrantsResult:
    """Create or update the three roles in ``address``'s database; return what changed.

    ``findings`` (from the lineage) decide the reader's columns of the published marts; None leaves
    them as they are. Runs in one transaction, rolled back on any error or with ``dry_run``.
    """
    import psycopg

    from headwater.marts.publish import PUBLISHED_SCHEMAS, audit_schemas

    published = PUBLISHED_SCHEMAS
    built = tuple(dict.fromkeys((*grants.transform_schemas, *audit_schemas(published).values())))
    names = [role.name for role in grants.roles]
    result = GrantsResult(applied=not dry_run)
    with address.connect(connect_timeout=10) as connection:
        try:
            with connection.transaction():
                _check_members(connection, grants)
                # headwater_ops, the audit log included, is created here by this (admin) user: it keeps owning
                # the schema and the audit log, so no role a run connects as can drop or rewrite them.
                ensure_schema(connection)
                loaded = _loader_schemas(connection)
                schemas = [*loaded, *built, *published]
                before = snapshot(connection, names, schemas)
                _create_roles(connection, grants)
                _database(connection, grants)
                _own(connection, grants.loader.name, loaded, keep=(OPS_SCHEMA, f"{OPS_SCHEMA}.{AUDIT_LOG}"))
                _own(connection, grants.transformer.name, [*built, *published])
                _loader_schema_privileges(connection, grants, loaded)
                _kept_from(connection, [grants.loader.name, grants.reader.name], built)
                _kept_from(connection, [grants.loader.name], published)
                _default_privileges(connection, grants)
                if findings is not None:
                    result.reader = grant_reader(connection, grants.reader.name, published, findings)
                result.changes = changes(before, snapshot(connection, names, schemas))
                if dry_run:
                    raise psycopg.Rollback()
        except psycopg.errors.InsufficientPrivilege as error:
            raise GrantsError(f"{_first_line(error)}: run `headwater db grants` as a superuser (or a user with "
                              "CREATEROLE that owns the database and the objects in it), e.g. "
                              "HEADWATER_DATABASE_URL=postgresql://postgres@host/db headwater db grants; "
                              "nothing was changed") from None
    return result


def _check_members(connection, grants: GrantsConfig) -> None:
    wanted = {member: kind for kind, role in grants.by_kind().items() for member in role.members}
    found = {row[0] for row in connection.execute("select rolname from pg_roles where rolname = any(%s)",
                                                  (list(wanted),)).fetchall()}
    missing = [f"grants.{wanted[name]}.members: no user {name!r}" for name in wanted if name not in found]
    if missing:
        raise GrantsError("; ".join(missing) + ". Create each login user first (CREATE ROLE <name> LOGIN "
                          "PASSWORD '...'), then run `headwater db grants` again; nothing was changed")


def _loader_schemas(connection) -> list[str]:
    """Every raw_<source> schema of the database (sources removed from headwater.yaml included) and headwater_ops."""
    rows = connection.execute(r"select nspname from pg_namespace where nspname like 'raw\_%' order by 1").fetchall()
    return [row[0] for row in rows] + [OPS_SCHEMA]


def _create_roles(connection, grants: GrantsConfig) -> None:
    existing = {row[0] for row in connection.execute("select rolname from pg_roles").fetchall()}
    for role in grants.roles:
        if role.name not in existing:
            connection.execute(sql.SQL("create role {} nologin").format(sql.Identifier(role.name)))
        for member in role.members:
            connection.execute(sql.SQL("grant {} to {}").format(sql.Identifier(role.name), sql.Identifier(member)))


def _database(connection, grants: GrantsConfig) -> None:
    database = sql.Identifier(connection.info.dbname)
    for role in (grants.loader, grants.transformer):
        connection.execute(sql.SQL("grant connect, create, temporary on database {} to {}").format(
            database, sql.Identifier(role.name)))
    reader = sql.Identifier(grants.reader.name)
    connection.execute(sql.SQL("grant connect on database {} to {}").format(database, reader))
    connection.execute(sql.SQL("revoke create, temporary on database {} from {}").format(database, reader))


def _own(connection, owner: str, schemas: list[str], keep: tuple[str, ...] = ()) -> None:
    """Make ``owner`` the owner of each existing schema and of every relation in it, but those ``keep`` names
    (a schema, or schema.relation), which stay with their owner."""
    role = sql.Identifier(owner)
    rows = connection.execute("select nspname from pg_namespace where nspname = any(%s) and "
                              "pg_get_userbyid(nspowner) <> %s", (schemas, owner)).fetchall()
    for (schema,) in rows:
        if schema in keep:
            # The owner of a schema may drop any table in it: the loader only uses and creates in this one.
            connection.execute(sql.SQL("grant usage, create on schema {} to {}").format(sql.Identifier(schema), role))
            continue
        connection.execute(sql.SQL("alter schema {} owner to {}").format(sql.Identifier(schema), role))
    # Indexes, TOAST and the sequences of identity and serial columns follow their table.
    rows = connection.execute(
        "select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') and pg_get_userbyid(c.relowner) "
        "<> %s and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid "
        "and d.deptype in ('a', 'i') and c.relkind = 'S')",
        (schemas, owner),
    ).fetchall()
    for schema, name, kind in rows:
        if f"{schema}.{name}" in keep:
            continue
        connection.execute(sql.SQL("alter {} {} owner to {}").format(
            sql.SQL(_ALTER[kind]), sql.Identifier(schema, name), role))


def _existing(connection, schemas: list[str] | tuple[str, ...]) -> list[str]:
    rows = connection.execute("select nspname from pg_namespace where nspname = any(%s) order by 1",
                              (list(schemas),)).fetchall()
    return [row[0] for row in rows]


def _loader_schema_privileges(connection, grants: GrantsConfig, schemas: list[str]) -> None:
    """The transformer reads raw_* and headwater_ops (and adds to the audit log); the reader gets nothing there."""
    transformer, reader = sql.Identifier(grants.transformer.name), sql.Identifier(grants.reader.name)
    for schema in _existing(connection, schemas):
        name = sql.Identifier(schema)
        for statement in ("revoke all on schema {s} from {r}", "revoke all on all tables in schema {s} from {r}",
                          "revoke all on all sequences in schema {s} from {r}"):
            connection.execute(sql.SQL(statement).format(s=name, r=reader))
            connection.execute(sql.SQL(statement).format(s=name, r=transformer))
        connection.execute(sql.SQL("grant usage on schema {} to {}").format(name, transformer))
        connection.execute(sql.SQL("grant select on all tables in schema {} to {}").format(name, transformer))
    audit_log = connection.execute("select to_regclass(%s) is not null", (f"{OPS_SCHEMA}.{AUDIT_LOG}",)).fetchone()[0]
    if audit_log:
        for role in (grants.loader.name, grants.transformer.name):
            connection.execute(sql.SQL("grant insert, select on {} to {}").format(
                sql.Identifier(OPS_SCHEMA, AUDIT_LOG), sql.Identifier(role)))


def _kept_from(connection, roles: list[str], schemas: list[str] | tuple[str, ...]) -> None:
    """Revoke whatever ``roles`` hold on each schema and on everything in it."""
    for schema in _existing(connection, schemas):
        for role in roles:
            for statement in ("revoke all on schema {s} from {r}", "revoke all on all tables in schema {s} from {r}",
                              "revoke all on all sequences in schema {s} from {r}"):
                connection.execute(sql.SQL(statement).format(s=sql.Identifier(schema), r=sql.Identifier(role)))


def _default_privileges(connection, grants: GrantsConfig) -> None:
    """What the loader creates later (a new source's schema, a table dlt adds) the transformer may read at once;
    nothing anyone of the three creates later is readable by the reader until it is granted by name."""
    loader, transformer, reader = (sql.Identifier(role.name) for role in grants.roles)
    statements = [
        ("grant usage on schemas to {to}", loader, transformer),
        ("grant select on tables to {to}", loader, transformer),
    ]
    for creator in (loader, transformer):
        statements += [("revoke all on schemas from {to}", creator, reader),
                       ("revoke all on tables from {to}", creator, reader)]
    for statement, creator, grantee in statements:
        connection.execute(sql.SQL("alter default privileges for role {creator} " + statement).format(
            creator=creator, to=grantee))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]

"""Write-audit-publish for the marts: build aside, verify there, then swap in all at once.

dbt builds the models of a published schema (``marts``) into its audit schema (``marts__audit``):
the ``generate_schema_name`` macro reads the ``headwater_audit_schemas`` var this module passes.
The mart contracts are verified against the audit relations. Only when dbt had no failed node and
no contract has a failing fail-severity check is every relation built this run moved into the
published schema, in one transaction: readers see all the new marts or none of them. Otherwise
the published marts stay exactly as they were and the result says which checks failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from headwater.marts.quality import ContractResult, verify_contracts
from headwater.marts.rebuild import describe_failure
from headwater.marts.transform import DbtRunResult
from headwater.postgres.address import PostgresAddress

PUBLISHED_SCHEMAS = ("marts",)
AUDIT_SUFFIX = "__audit"

# pg_class.relkind → the object type DROP needs (ALTER TABLE ... SET SCHEMA accepts all three).
_RELATION_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}


@dataclass
class PublishResult:
    """What the audit found and what was published; ``reason`` says why nothing was."""

    audited: list[ContractResult] = field(default_factory=list)  # mart contracts, verified in audit
    published: list[str] = field(default_factory=list)  # e.g. ["marts.orders"]
    withheld: list[str] = field(default_factory=list)  # built and audited, left unpublished
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


def audit_schemas(published: tuple[str, ...] = PUBLISHED_SCHEMAS) -> dict[str, str]:
    """Published schema → the schema its models are built and audited in."""
    return {schema: schema + AUDIT_SUFFIX for schema in published}


def dbt_audit_args(audit: dict[str, str]) -> list[str]:
    """The dbt arguments that make ``generate_schema_name`` build into the audit schemas."""
    return ["--vars", json.dumps({"headwater_audit_schemas": audit})]


def built_candidates(dbt: DbtRunResult, in_audit: set[tuple[str, str]], audit: dict[str, str]) -> list[tuple[str, str]]:
    """(published schema, name) of every model this dbt run built successfully into an audit schema.

    Relations left in an audit schema by an earlier, unpublished run are not candidates: only what
    this run built is published.
    """
    built = {node.name for node in dbt.nodes if node.resource_type == "model" and node.status == "success"}
    return sorted(
        (published, name)
        for published, audit_schema in audit.items()
        for schema, name in in_audit
        if schema == audit_schema and name in built
    )


def audit_and_publish(
    quality_dir: Path | None,
    address: PostgresAddress,
    dbt: DbtRunResult | None,
    audit: dict[str, str] | None = None,
) -> PublishResult:
    """Verify the contracts of the marts this run built, then publish them all or none."""
    audit = audit or audit_schemas()
    if dbt is None:
        return PublishResult()  # dbt did not run: nothing was built, the published marts stay
    candidates = built_candidates(dbt, address.relations(set(audit.values())), audit)
    result = PublishResult()
    if quality_dir is not None and candidates:
        result.audited = verify_contracts(quality_dir, address, tables=set(candidates), relocate=audit)

    blocking = [describe_failure(contract) for contract in result.audited if not contract.passed]
    if not dbt.success:
        failed = ", ".join(node.name for node in dbt.failed_nodes) or dbt.error or "see dbt log"
        blocking.insert(0, f"dbt build failed: {failed}")
    names = [f"{schema}.{name}" for schema, name in candidates]
    if blocking:
        result.withheld = names
        result.reason = "; ".join(blocking)
        return result
    if candidates:
        try:
            swap_into_published(address, candidates, audit)
        except Exception as exc:  # psycopg raises several types; the transaction has rolled back
            result.withheld = names
            result.reason = f"publish rolled back: {str(exc).strip() or type(exc).__name__}"
            return result
    result.published = names
    return result


def swap_into_published(address: PostgresAddress, candidates: list[tuple[str, str]], audit: dict[str, str]) -> None:
    """Replace each published relation with its audited copy, in one transaction.

    The old relation's grants are given to the new one, those on its columns too where the new one
    has the column (a column it adds gets none: the reader's columns are set after the run's lineage,
    headwater.access.mart_grants). It is dropped without CASCADE: a view someone built on a mart makes
    the swap fail (and roll back) rather than vanish silently.
    """
    from psycopg import sql

    with address.connect(connect_timeout=10) as connection, connection.transaction():
        for schema in sorted({schema for schema, _ in candidates}):
            connection.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        for schema, name in candidates:
            old = sql.Identifier(schema, name)
            kind = _relation_kind(connection, schema, name)
            grants = _grants(connection, schema, name) if kind else []
            column_grants = _column_grants(connection, schema, name) if kind else []
            if kind:
                connection.execute(sql.SQL("drop {} {}").format(sql.SQL(kind), old))
            connection.execute(
                sql.SQL("alter table {} set schema {}").format(
                    sql.Identifier(audit[schema], name), sql.Identifier(schema)
                )
            )
            for grantee, privilege in grants:
                # PUBLIC is a keyword, not a role name that could be quoted.
                role = sql.SQL("public") if grantee == "PUBLIC" else sql.Identifier(grantee)
                connection.execute(sql.SQL("grant {} on {} to {}").format(sql.SQL(privilege), old, role))
            columns = set(_columns(connection, schema, name))
            for grantee, privilege, column in column_grants:
                if column in columns:
                    role = sql.SQL("public") if grantee == "PUBLIC" else sql.Identifier(grantee)
                    connection.execute(sql.SQL("grant {} ({}) on {} to {}").format(
                        sql.SQL(privilege), sql.Identifier(column), old, role))


def _relation_kind(connection, schema: str, name: str) -> str | None:
    row = connection.execute(
        "select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s",
        (schema, name),
    ).fetchone()
    return _RELATION_KINDS.get(row[0], "TABLE") if row else None


def _grants(connection, schema: str, name: str) -> list[tuple[str, str]]:
    """Privileges other roles hold on a relation (the owner's own are implicit)."""
    rows = connection.execute(
        "select grantee, privilege_type from information_schema.role_table_grants g "
        "join pg_class c on c.relname = g.table_name "
        "join pg_namespace n on n.oid = c.relnamespace and n.nspname = g.table_schema "
        "where g.table_schema = %s and g.table_name = %s and g.grantee <> pg_get_userbyid(c.relowner)",
        (schema, name),
    ).fetchall()
    return [(grantee, privilege) for grantee, privilege in rows]


def _column_grants(connection, schema: str, name: str) -> list[tuple[str, str, str]]:
    """(grantee, privilege, column) of the privileges other roles hold on single columns of a relation."""
    rows = connection.execute(
        "select case when e.grantee = 0 then 'PUBLIC' else pg_get_userbyid(e.grantee) end, e.privilege_type, "
        "a.attname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid cross join lateral aclexplode(a.attacl) e "
        "where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped and e.grantee <> c.relowner",
        (schema, name),
    ).fetchall()
    return [(grantee, privilege, column) for grantee, privilege, column in rows]


def _columns(connection, schema: str, name: str) -> list[str]:
    rows = connection.execute(
        "select a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped",
        (schema, name),
    ).fetchall()
    return [row[0] for row in rows]

"""Change the type of a raw table's column in Postgres when dlt's schema has widened it.

dlt creates tables and adds columns but never changes a column's type; Headwater's columns widen
(headwater.common.widening), so the destination must follow. The change runs in the load's schema-update
transaction: ``ALTER COLUMN ... TYPE ... USING`` keeps every value (the new type holds them all).
Postgres refuses to change a column that a view reads (dbt's staging models are views on the raw
tables), so the views that depend on the table, directly or through other views, are dropped and
created again from their own definitions, with their owner, grants and comments, in the same
transaction: readers never see the table without its views.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnChange:
    column: str  # quoted identifier
    db_type: str
    from_nulls: bool = False  # the column held only nulls: no value needs converting

    def clause(self) -> str:
        using = f"NULL::{self.db_type}" if self.from_nulls else f"{self.column}::{self.db_type}"
        return f"ALTER COLUMN {self.column} TYPE {self.db_type} USING {using}"


# Views that read a relation, directly or through other views; deepest last.
DEPENDENT_VIEWS = """
WITH RECURSIVE dependents(oid, depth) AS (
    SELECT DISTINCT rewrite.ev_class, 1
    FROM pg_depend AS dependency
    JOIN pg_rewrite AS rewrite ON dependency.objid = rewrite.oid
    WHERE dependency.refobjid = %s::regclass AND rewrite.ev_class <> dependency.refobjid
  UNION
    SELECT DISTINCT rewrite.ev_class, dependents.depth + 1
    FROM dependents
    JOIN pg_depend AS dependency ON dependency.refobjid = dependents.oid
    JOIN pg_rewrite AS rewrite ON dependency.objid = rewrite.oid
    WHERE rewrite.ev_class <> dependency.refobjid AND dependents.depth < 50
)
SELECT view.oid, quote_ident(namespace.nspname) || '.' || quote_ident(view.relname), view.relkind,
       pg_get_viewdef(view.oid), pg_get_userbyid(view.relowner), obj_description(view.oid, 'pg_class'),
       max(dependents.depth) AS depth
FROM dependents
JOIN pg_class AS view ON view.oid = dependents.oid
JOIN pg_namespace AS namespace ON namespace.oid = view.relnamespace
WHERE view.relkind IN ('v', 'm')
GROUP BY view.oid, namespace.nspname, view.relname, view.relkind, view.relowner
ORDER BY depth
"""
GRANTS = """
SELECT CASE WHEN grant_entry.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(grant_entry.grantee)) END,
       grant_entry.privilege_type, grant_entry.is_grantable
FROM pg_class AS view, aclexplode(view.relacl) AS grant_entry
WHERE view.oid = %s AND grant_entry.grantee <> view.relowner
"""
COLUMN_COMMENTS = """
SELECT quote_ident(attribute.attname), col_description(attribute.attrelid, attribute.attnum)
FROM pg_attribute AS attribute
WHERE attribute.attrelid = %s AND attribute.attnum > 0
  AND col_description(attribute.attrelid, attribute.attnum) IS NOT NULL
"""


def holds_only_nulls(sql_client, qualified_table: str, column: str) -> bool:
    rows = sql_client.execute_sql(f"SELECT NOT EXISTS (SELECT 1 FROM {qualified_table} WHERE {column} IS NOT NULL)")
    return bool(rows and rows[0][0])


def change_column_types(sql_client, qualified_table: str, changes: list[ColumnChange]) -> None:
    """Apply ``changes`` to one table, taking the views that read it down and up around them.

    Runs inside the caller's transaction (dlt's schema update): all or nothing.
    """
    if not changes:
        return
    views = _dependent_views(sql_client, qualified_table)
    for view in reversed(views):
        sql_client.execute_sql(f"DROP {view.kind} IF EXISTS {view.name}")
    clauses = ",\n".join(change.clause() for change in changes)
    sql_client.execute_sql(f"ALTER TABLE {qualified_table}\n{clauses}")
    for view in views:
        for statement in view.statements():
            sql_client.execute_sql(statement)
    log.info("widened %s: %s%s", qualified_table, ", ".join(f"{c.column} -> {c.db_type}" for c in changes),
             f" (views recreated: {', '.join(v.name for v in views)})" if views else "")


@dataclass
class _View:
    name: str
    kind: str  # VIEW or MATERIALIZED VIEW
    definition: str
    owner: str
    comment: str | None
    grants: list[tuple[str, str, bool]]
    column_comments: list[tuple[str, str]]

    def statements(self) -> list[str]:
        body = self.definition.rstrip().rstrip(";")
        statements = [f"CREATE {self.kind} {self.name} AS {body}",
                      f"ALTER {self.kind} {self.name} OWNER TO {_ident(self.owner)}"]
        for grantee, privilege, grantable in self.grants:
            option = " WITH GRANT OPTION" if grantable else ""
            statements.append(f"GRANT {privilege} ON {self.name} TO {grantee}{option}")
        if self.comment is not None:
            statements.append(f"COMMENT ON {self.kind} {self.name} IS {_literal(self.comment)}")
        for column, comment in self.column_comments:
            statements.append(f"COMMENT ON COLUMN {self.name}.{column} IS {_literal(comment)}")
        return statements


def _dependent_views(sql_client, qualified_table: str) -> list[_View]:
    views = []
    for oid, name, kind, definition, owner, comment, _ in sql_client.execute_sql(DEPENDENT_VIEWS, qualified_table):
        views.append(_View(
            name=name, kind="MATERIALIZED VIEW" if kind == "m" else "VIEW", definition=definition, owner=owner,
            comment=comment, grants=[tuple(row) for row in sql_client.execute_sql(GRANTS, oid) or []],
            column_comments=[tuple(row) for row in sql_client.execute_sql(COLUMN_COMMENTS, oid) or []],
        ))
    return views


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

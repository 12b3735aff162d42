"""What the reader role may read of the published marts: every column but those that carry unmasked PII.

Column grants cannot be default privileges, and publishing swaps newly built relations in
(headwater.marts.publish carries the old relation's grants over, those of columns that still exist
included). So after each run's lineage the reader's grants on every published relation are set again:
SELECT on the columns the lineage traced and found free of unmasked PII (headwater.lineage.pii),
nothing on the others. A column or relation the lineage does not know stays hidden until a lineage
that knows it; so does a new relation when the lineage could not be built at all.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:
    from headwater.lineage.model import Lineage

Column = tuple[str, str, str]  # (schema, relation, column)
UNTRACED = "not in the lineage"


@dataclass(frozen=True)
class PiiFindings:
    """What the lineage says of the published relations' columns."""

    traced: frozenset[Column]  # every published column the lineage knows
    exposed: dict[Column, str] = field(default_factory=dict)  # column -> the declared PII it carries unmasked


@dataclass
class ReaderGrants:
    """The reader's SELECT on the published relations, as set: per relation, the columns granted and withheld."""

    reader: str
    granted: dict[str, list[str]] = field(default_factory=dict)  # "marts.customers" -> columns
    withheld: dict[str, dict[str, str]] = field(default_factory=dict)  # "marts.customers" -> {column: why}

    def describe(self) -> str:
        """One line for the run summary: what the reader may read, and which columns it may not and why."""
        readable = f"{self.reader} may read {len(self.granted)} published relation(s)"
        hidden = [f"{relation}.{column} ({why})" for relation, columns in sorted(self.withheld.items())
                  for column, why in sorted(columns.items())]
        return readable + (f"; withheld: {', '.join(hidden)}" if hidden else "")


def pii_findings(lineage: "Lineage", published: tuple[str, ...]) -> PiiFindings:
    from headwater.lineage.pii import pii_exposures

    traced = frozenset((table.schema, table.name, column) for table in lineage.tables.values()
                       if table.schema in published for column in table.columns)
    exposed = {(e.column.schema, e.column.table, e.column.column): "PII: " + ", ".join(map(str, e.sources))
               for e in pii_exposures(lineage, published)}
    return PiiFindings(traced, exposed)


def grant_reader(connection, reader: str, published: tuple[str, ...], findings: PiiFindings) -> ReaderGrants:
    """Set the reader's grants on every relation of the published schemas, in the connection's transaction.

    The connection's role must own them (the transformer that publishes them, or an admin).
    """
    result = ReaderGrants(reader)
    role = sql.Identifier(reader)
    for schema, columns in _published_columns(connection, published).items():
        connection.execute(sql.SQL("grant usage on schema {} to {}").format(sql.Identifier(schema), role))
        for relation, names in sorted(columns.items()):
            target = sql.Identifier(schema, relation)
            # Revoking the relation's privileges revokes its column privileges too: start from nothing.
            connection.execute(sql.SQL("revoke all on {} from {}").format(target, role))
            allowed = [name for name in names if (schema, relation, name) in findings.traced
                       and (schema, relation, name) not in findings.exposed]
            withheld = {name: findings.exposed.get((schema, relation, name), UNTRACED)
                        for name in names if name not in allowed}
            key = f"{schema}.{relation}"
            if allowed:
                connection.execute(sql.SQL("grant select ({}) on {} to {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, allowed)), target, role))
                result.granted[key] = allowed
            if withheld:
                result.withheld[key] = withheld
    return result


def _published_columns(connection, published: tuple[str, ...]) -> dict[str, dict[str, list[str]]]:
    """schema -> relation -> its columns in order, for every table and view of the published schemas."""
    found: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for schema in connection.execute("select nspname from pg_namespace where nspname = any(%s)",
                                     (list(published),)).fetchall():
        found[schema[0]] = {}
    rows = connection.execute(
        "select n.nspname, c.relname, a.attname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm') "
        "and a.attnum > 0 and not a.attisdropped order by n.nspname, c.relname, a.attnum",
        (list(published),),
    ).fetchall()
    for schema, relation, column in rows:
        found[schema].setdefault(relation, []).append(column)
    return found

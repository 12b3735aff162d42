"""What the roles of `grants:` hold in the database, read before and after a change, and the difference to print.

A snapshot is a set of facts: a role exists, a user is its member, a role holds a privilege on the
database, a schema, a relation or a column, someone owns a schema or relation, a default privilege
applies to what a role creates later. GRANT and REVOKE are idempotent in Postgres, so `headwater db
grants` applies everything every time and reports what one snapshot has that the other has not:
nothing, when the database already was as headwater.yaml says.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

# pg_default_acl.defaclobjtype -> what a default privilege applies to
_DEFAULT_OBJECTS = {"r": "tables", "S": "sequences", "f": "functions", "T": "types", "n": "schemas"}
_RELATION_KINDS = ("r", "p", "v", "m", "f")  # tables, partitioned tables, views, materialized views, foreign tables
_RELATIONS = "from pg_class c join pg_namespace n on n.oid = c.relnamespace"
_IN_SCHEMAS = "n.nspname = any(%(schemas)s) and c.relkind::text = any(%(kinds)s)"
_ORDER = ("role", "member", "database", "schema", "relation", "column", "default")


@dataclass(frozen=True, order=True)
class Fact:
    kind: str  # role | member | database | schema | relation | column | default
    object: str  # the role, database, schema, schema.relation; for defaults "creator|schema|object type"
    holder: str  # the grantee, owner or member the fact is about ('' for a role's own facts)
    item: str  # a privilege, "owner", "member", or LOGIN / NOLOGIN for a role
    column: str = ""


@dataclass(frozen=True)
class Change:
    """One line of the table `headwater db grants` prints."""

    object: str  # "role headwater_reader", "schema raw_shop", "raw_shop: 6 relations", "marts.customers"
    role: str  # the role or user the change is about
    change: str  # "created (NOLOGIN)", "member added", "+ SELECT", "- SELECT (email)", "owner postgres -> ..."


def snapshot(connection, roles: list[str], schemas: list[str]) -> set[Fact]:
    """Every fact about ``roles`` in the current database, and the owners of ``schemas`` and their relations."""
    facts: set[Fact] = set()
    for name, login in connection.execute(
            "select rolname, rolcanlogin from pg_roles where rolname = any(%s)", (roles,)).fetchall():
        facts.add(Fact("role", name, "", "LOGIN" if login else "NOLOGIN"))
    for role, member in connection.execute(
            "select r.rolname, m.rolname from pg_auth_members a join pg_roles r on r.oid = a.roleid "
            "join pg_roles m on m.oid = a.member where r.rolname = any(%s)", (roles,)).fetchall():
        facts.add(Fact("member", role, member, "member"))
    grantees = "(select oid from pg_roles where rolname = any(%(roles)s))"
    arguments = {"roles": roles, "schemas": schemas}
    for database, grantee, privilege in connection.execute(
            "select d.datname, pg_get_userbyid(e.grantee), e.privilege_type from pg_database d, "
            "aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) e where d.datname = current_database() "
            f"and e.grantee in {grantees} and e.grantee <> d.datdba", arguments).fetchall():
        facts.add(Fact("database", database, grantee, privilege))
    for schema, owner in connection.execute(
            "select nspname, pg_get_userbyid(nspowner) from pg_namespace where nspname = any(%(schemas)s)",
            arguments).fetchall():
        facts.add(Fact("schema", schema, owner, "owner"))
    for schema, grantee, privilege in connection.execute(
            "select n.nspname, pg_get_userbyid(e.grantee), e.privilege_type "
            "from pg_namespace n cross join lateral aclexplode(n.nspacl) e "
            f"where n.nspname = any(%(schemas)s) and e.grantee in {grantees} and e.grantee <> n.nspowner",
            arguments).fetchall():
        facts.add(Fact("schema", schema, grantee, privilege))
    arguments["kinds"] = list(_RELATION_KINDS)
    for schema, name, owner in connection.execute(
            f"select n.nspname, c.relname, pg_get_userbyid(c.relowner) {_RELATIONS} where {_IN_SCHEMAS}",
            arguments).fetchall():
        facts.add(Fact("relation", f"{schema}.{name}", owner, "owner"))
    for schema, name, grantee, privilege in connection.execute(
            f"select n.nspname, c.relname, pg_get_userbyid(e.grantee), e.privilege_type {_RELATIONS} "
            f"cross join lateral aclexplode(c.relacl) e where {_IN_SCHEMAS} "
            f"and e.grantee in {grantees} and e.grantee <> c.relowner", arguments).fetchall():
        facts.add(Fact("relation", f"{schema}.{name}", grantee, privilege))
    for schema, name, column, grantee, privilege in connection.execute(
            f"select n.nspname, c.relname, a.attname, pg_get_userbyid(e.grantee), e.privilege_type {_RELATIONS} "
            "join pg_attribute a on a.attrelid = c.oid cross join lateral aclexplode(a.attacl) e "
            f"where {_IN_SCHEMAS} and a.attnum > 0 and not a.attisdropped and e.grantee in {grantees}",
            arguments).fetchall():
        facts.add(Fact("column", f"{schema}.{name}", grantee, privilege, column))
    for creator, schema, kind, grantee, privilege in connection.execute(
            "select pg_get_userbyid(d.defaclrole), coalesce(n.nspname, ''), d.defaclobjtype, "
            "pg_get_userbyid(e.grantee), e.privilege_type from pg_default_acl d "
            "left join pg_namespace n on n.oid = d.defaclnamespace, aclexplode(d.defaclacl) e "
            f"where (d.defaclrole in {grantees} or e.grantee in {grantees}) and e.grantee <> d.defaclrole",
            arguments).fetchall():
        facts.add(Fact("default", f"{creator}|{schema}|{kind}", grantee, privilege))
    return facts


def changes(before: set[Fact], after: set[Fact]) -> list[Change]:
    """The difference of two snapshots as printable rows, relations with the same change grouped per schema."""
    added, removed = after - before, before - after
    rows: list[tuple[int, Change]] = []
    for kind in _ORDER:
        plus = sorted(fact for fact in added if fact.kind == kind)
        minus = sorted(fact for fact in removed if fact.kind == kind)
        rows += [(_ORDER.index(kind), change) for change in _describe(kind, plus, minus)]
    return [change for _, change in rows]


def _describe(kind: str, plus: list[Fact], minus: list[Fact]) -> list[Change]:
    if kind == "role":
        return [Change(f"role {f.object}", f.object, f"created ({f.item})") for f in plus] + \
               [Change(f"role {f.object}", f.object, "dropped") for f in minus]
    if kind == "member":
        return [Change(f"role {f.object}", f.holder, "member added") for f in plus] + \
               [Change(f"role {f.object}", f.holder, "member removed") for f in minus]
    if kind == "column":
        return _column_changes(plus, minus)
    if kind == "default":
        return _default_changes(plus, minus)
    owners = _owner_changes(plus, minus)
    per_object = _privilege_changes(plus, minus) + owners
    if kind != "relation":
        return [Change(f"{kind} {name}", role, change) for name, role, change in sorted(per_object)]
    return _grouped_by_schema(per_object)


def _owner_changes(plus: list[Fact], minus: list[Fact]) -> list[tuple[str, str, str]]:
    was = {fact.object: fact.holder for fact in minus if fact.item == "owner"}
    return [(fact.object, fact.holder, f"owner (was {was[fact.object]})" if fact.object in was else "owner")
            for fact in plus if fact.item == "owner"]


def _privilege_changes(plus: list[Fact], minus: list[Fact]) -> list[tuple[str, str, str]]:
    """(object, role, '+ SELECT, INSERT' or '- UPDATE') per object and role."""
    rows = []
    for sign, facts in (("+", plus), ("-", minus)):
        held: dict[tuple[str, str], list[str]] = defaultdict(list)
        for fact in facts:
            if fact.item != "owner":
                held[(fact.object, fact.holder)].append(fact.item)
        rows += [(name, role, f"{sign} {', '.join(sorted(items))}") for (name, role), items in sorted(held.items())]
    return rows


def _grouped_by_schema(rows: list[tuple[str, str, str]]) -> list[Change]:
    """The same change of many relations of one schema as one row: `raw_shop: 6 relations`."""
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for name, role, change in rows:
        groups[(name.partition(".")[0], role, change)].append(name)
    return [Change(names[0] if len(names) == 1 else f"{schema}: {len(names)} relations", role, change)
            for (schema, role, change), names in sorted(groups.items())]


def _column_changes(plus: list[Fact], minus: list[Fact]) -> list[Change]:
    rows = []
    for sign, facts in (("+", plus), ("-", minus)):
        columns: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for fact in facts:
            columns[(fact.object, fact.holder, fact.item)].append(fact.column)
        rows += [Change(name, role, f"{sign} {privilege} ({', '.join(sorted(names))})")
                 for (name, role, privilege), names in sorted(columns.items())]
    return rows


def _default_changes(plus: list[Fact], minus: list[Fact]) -> list[Change]:
    rows = []
    for sign, facts in (("+", plus), ("-", minus)):
        held: dict[tuple[str, str], list[str]] = defaultdict(list)
        for fact in facts:
            held[(fact.object, fact.holder)].append(fact.item)
        for (key, role), items in sorted(held.items()):
            creator, schema, kind = key.split("|")
            where = f" in {schema}" if schema else ""
            rows.append(Change(f"new {_DEFAULT_OBJECTS.get(kind, kind)}{where} of {creator}", role,
                               f"{sign} {', '.join(sorted(items))}"))
    return rows

"""Which role each step of a run connects as: the least one it needs, when the URL's user may take it.

With `grants:` in headwater.yaml, loads (with their recovery and deletes) and the run's records in
headwater_ops connect as the loader role; raw contracts, dbt, publishing and lineage as the
transformer role. Each connection takes its role at startup (PostgresAddress.role), as SET ROLE would,
so what a step creates belongs to its role: the loader owns the raw tables dlt later alters, the
transformer the marts it swaps in and grants on.

The roles are taken together or not at all: raw tables the user created could not be read by a
transformer, nor marts the transformer owns be replaced by the user. They are taken when the user
may SET ROLE to both (a member of each, or a superuser) and `headwater db grants` has given them their
privileges in this database; otherwise every step runs as the user, and the summary says why in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.postgres.address import PostgresAddress
from headwater.project.grants import GrantsConfig, RoleConfig

# From PostgreSQL 16 a membership may be granted without the right to SET ROLE to it.
SET_OPTION_VERSION = 160000


@dataclass(frozen=True)
class RunRoles:
    loader: PostgresAddress  # loads, recovery, replay, headwater_ops records
    transformer: PostgresAddress  # contracts, dbt, publishing, lineage, the reader's mart grants
    note: str | None = None  # one line for the summary: which roles the steps took, or why they could not


def run_roles(address: PostgresAddress, grants: GrantsConfig | None) -> RunRoles:
    """The addresses each step connects with; the user's own address for every step without `grants:`."""
    if grants is None:
        return RunRoles(address, address)
    with address.connect(autocommit=True, connect_timeout=10) as connection:
        user = connection.execute("select session_user").fetchone()[0]
        mode = "SET" if connection.info.server_version >= SET_OPTION_VERSION else "MEMBER"
        obstacles = [reason for kind, role in (("loader", grants.loader), ("transformer", grants.transformer))
                     if (reason := _obstacle(connection, user, role, kind, mode))]
    if obstacles:
        return RunRoles(address, address, f"Ran every step as {user}, not as the roles of grants: "
                                          f"{'; '.join(obstacles)}")
    loader, transformer = grants.loader.name, grants.transformer.name
    return RunRoles(
        address.as_role(None if loader == user else loader),
        address.as_role(None if transformer == user else transformer),
        f"Ran loads as {loader}, dbt and publishing as {transformer} (SET ROLE from {user})",
    )


def _obstacle(connection, user: str, role: RoleConfig, kind: str, mode: str) -> str | None:
    """Why ``user`` cannot work as ``role`` in this database; None when it can."""
    exists, may_set, granted = connection.execute(
        "select r.oid is not null, r.oid is not null and pg_has_role(session_user, r.oid, %s), "
        "r.oid is not null and has_database_privilege(r.oid, current_database(), 'CREATE') "
        "from (select 1) one left join pg_roles r on r.rolname = %s",
        (mode, role.name),
    ).fetchone()
    if not exists:
        return f"role {role.name} does not exist (run `headwater db grants`)"
    if not may_set:
        return (f"{user} may not SET ROLE {role.name} (add {user} to grants.{kind}.members and run "
                "`headwater db grants`)")
    if not granted:
        return f"{role.name} has no privileges in database {connection.info.dbname} yet (run `headwater db grants`)"
    return None

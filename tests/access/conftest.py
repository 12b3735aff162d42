"""Fixtures of the roles tests: role names of their own per test (roles are cluster-wide), dropped afterwards."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

import psycopg
import pytest

from headwater.postgres.address import PostgresAddress


@dataclass(frozen=True)
class Roles:
    """The three group roles of one test, and two login users: `etl` runs the pipeline, `analyst` reads."""

    database_url: str
    loader: str
    transformer: str
    reader: str
    etl: str
    analyst: str

    def grants_yaml(self, etl_member: bool = True) -> str:
        members = f", members: [{self.etl}]" if etl_member else ""
        return (f"grants:\n"
                f"  loader: {{role: {self.loader}{members}}}\n"
                f"  transformer: {{role: {self.transformer}{members}}}\n"
                f"  reader: {{role: {self.reader}, members: [{self.analyst}]}}\n")

    def url(self, user: str) -> str:
        """The test database's URL with ``user`` instead of the server's superuser."""
        return replace(PostgresAddress.from_url(self.database_url), user=user).url

    def address(self, user: str, role: str | None = None) -> PostgresAddress:
        return PostgresAddress.from_url(self.url(user)).as_role(role)


@pytest.fixture
def roles(database_url):
    """Unique names; the login users exist (trust authentication), the group roles are left to the test."""
    suffix = uuid.uuid4().hex[:8]
    names = Roles(database_url, f"hw_loader_{suffix}", f"hw_transformer_{suffix}", f"hw_reader_{suffix}",
                  f"hw_etl_{suffix}", f"hw_analyst_{suffix}")
    with psycopg.connect(database_url, autocommit=True) as admin:
        for user in (names.etl, names.analyst):
            admin.execute(f'create role "{user}" login')
    yield names
    # The database goes first (its fixture then finds it gone): with it, all the roles own or hold there.
    server, _, database = database_url.rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'drop database if exists "{database}" with (force)')
        for name in (names.loader, names.transformer, names.reader, names.etl, names.analyst):
            admin.execute(f'drop role if exists "{name}"')


def owners(url: str, schemas: list[str]) -> dict[str, set[str]]:
    """schema -> the owners of the schema and of every table and view in it."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "select nspname, pg_get_userbyid(nspowner) from pg_namespace where nspname = any(%s) union "
            "select n.nspname, pg_get_userbyid(c.relowner) from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace where n.nspname = any(%s) and c.relkind in ('r', 'v', 'm')",
            (schemas, schemas)).fetchall()
    found: dict[str, set[str]] = {}
    for schema, owner in rows:
        found.setdefault(schema, set()).add(owner)
    return found


def denied(address: PostgresAddress, statement: str) -> str:
    """The message Postgres refuses ``statement`` with, for ``address``'s user and role; fails if it is allowed."""
    with address.connect() as connection:
        try:
            connection.execute(statement)
        except psycopg.errors.InsufficientPrivilege as error:
            return error.diag.message_primary or str(error)
    pytest.fail(f"{address.user} as {address.role or 'itself'} was allowed: {statement}")

"""Publishing swaps an audited relation in and keeps what others were granted on the one it replaces."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from headwater.marts.publish import swap_into_published
from headwater.postgres.address import PostgresAddress
from tests.conftest import query


@pytest.fixture
def grantee(database_url):
    name = f"hw_grantee_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'create role "{name}" nologin')
    yield name
    server, _, database = database_url.rpartition("/")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'drop database if exists "{database}" with (force)')
        admin.execute(f'drop role if exists "{name}"')


def column_grants(url: str, relation: str, role: str) -> list[str]:
    return [row[0] for row in query(
        url, "select a.attname from pg_attribute a cross join lateral aclexplode(a.attacl) e "
             "where a.attrelid = %s::regclass and e.grantee = %s::regrole and e.privilege_type = 'SELECT' "
             "order by a.attnum", relation, role)]


def test_column_grants_follow_the_columns_the_new_relation_still_has(database_url, grantee):
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("create schema marts; create schema marts__audit")
        admin.execute("create table marts.customers (customer_id int, email text, country text)")
        admin.execute(f'grant select (customer_id, country) on marts.customers to "{grantee}"')
        admin.execute(f'grant insert on marts.customers to "{grantee}"')
        # The rebuilt mart drops country and adds city: a new column is granted to nobody.
        admin.execute("create table marts__audit.customers as select 1 as customer_id, 'a@b.c' as email, "
                      "'Lyon' as city")

    swap_into_published(PostgresAddress.from_url(database_url), [("marts", "customers")],
                        {"marts": "marts__audit"})

    assert column_grants(database_url, "marts.customers", grantee) == ["customer_id"]
    assert query(database_url, "select has_table_privilege(%s, 'marts.customers', 'INSERT'), "
                               "has_column_privilege(%s, 'marts.customers', 'city', 'SELECT'), "
                               "has_column_privilege(%s, 'marts.customers', 'email', 'SELECT')",
                 grantee, grantee, grantee) == [(True, False, False)]

"""Source databases of the connector tests: a fresh PostgreSQL or MariaDB database each, dropped afterwards."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import fresh_database

# Postgres trusts local connections whatever the password, so a URL can carry one that must never be logged.
PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def postgres_source():
    """A fresh source database on the test server; its SQLAlchemy URL carries a (trusted, ignored) password."""
    with fresh_database("hw_src") as url:
        yield sa.make_url(url).set(drivername="postgresql+psycopg", password=PASSWORD).render_as_string(False)


@pytest.fixture
def mariadb_source(mariadb):
    """A fresh database on the tests' MariaDB (skipped when none is reachable), dropped afterwards."""
    name = f"hw_src_{uuid.uuid4().hex[:10]}"
    with mariadb.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    yield mariadb.url(name)
    with mariadb.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

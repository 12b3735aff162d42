"""Source databases of the connector tests: a fresh PostgreSQL or MariaDB database each, dropped afterwards."""

from __future__ import annotations

import uuid

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from tests.conftest import TEST_SERVER_URL

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
# Postgres trusts local connections whatever the password, so a URL can carry one that must never be logged.
PASSWORD = "s3cret-Pa55word"


@pytest.fixture
def postgres_source():
    """A fresh source database on the test server; its SQLAlchemy URL carries a (trusted, ignored) password."""
    name = f"hw_src_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{TEST_SERVER_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    server = sa.make_url(TEST_SERVER_URL)
    yield str(server.set(drivername="postgresql+psycopg", password=PASSWORD, database=name).render_as_string(False))
    with psycopg.connect(f"{TEST_SERVER_URL}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mariadb_source():
    name = f"hw_src_{uuid.uuid4().hex[:10]}"
    with pymysql.connect(**MARIADB, connect_timeout=5) as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    yield f"mysql+pymysql://{MARIADB['user']}:@{MARIADB['host']}:{MARIADB['port']}/{name}"
    with pymysql.connect(**MARIADB, connect_timeout=5) as admin, admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

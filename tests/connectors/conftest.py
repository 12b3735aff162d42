"""Sources of the connector tests: a fresh PostgreSQL or MariaDB database each, dropped afterwards; a JSON API."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import fresh_database
from tests.connectors.rest_api_server import ApiServer

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


@pytest.fixture
def api():
    """A JSON API on 127.0.0.1 (tests/connectors/rest_api_server.py), stopped afterwards."""
    with ApiServer() as server:
        yield server


@pytest.fixture
def fast_retries(monkeypatch):
    """dlt's process-wide retry policy, small enough for tests (defaults: 5 attempts, factor 1, up to 300 s)."""
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.01")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "10")

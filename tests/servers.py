"""The database servers the tests run against, so that the suite runs on any machine.

PostgreSQL: the server named by $HEADWATER_TEST_SERVER_URL (default postgresql://postgres@127.0.0.1:5432,
a user allowed to CREATE DATABASE) when something listens at its address. When nothing does, Headwater's
embedded PostgreSQL is started on first use, once per test session, in a temporary folder, and stopped
and deleted when the session ends. Every fresh database of the tests is created on the server chosen here.

MariaDB: the server named by $HEADWATER_TEST_MARIADB_URL (default mysql+pymysql://root@127.0.0.1:3306).
When nothing listens there, the tests that need it are skipped and say why; with
HEADWATER_TEST_REQUIRE_MARIADB=1 (CI, whose machine has MariaDB) they fail instead.

Only "nothing listens" means absent: a server that answers but refuses the login fails the tests, so a
wrong password is reported instead of hidden behind a skip or another server.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from urllib.parse import quote

import pymysql
import pytest
import sqlalchemy as sa

from headwater.postgres.address import PostgresAddress
from headwater.testing.database import SERVER_URL_ENV, embedded_server_url, started_embedded_server_url

POSTGRES_URL_ENV = SERVER_URL_ENV  # the acceptance kit reads the same variable, so it uses the same server
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"
MARIADB_URL_ENV = "HEADWATER_TEST_MARIADB_URL"
REQUIRE_MARIADB_ENV = "HEADWATER_TEST_REQUIRE_MARIADB"
DEFAULT_MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306"
PROBE_TIMEOUT = 2


@functools.cache
def listening(host: str, port: int) -> bool:
    """Whether anything accepts a TCP connection at host:port (asked once per session)."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT):
            return True
    except OSError:
        return False


# -- PostgreSQL -----------------------------------------------------------------------------------------------

@functools.cache
def configured_postgres_url() -> str:
    """The shared server's URL, without a database: postgresql://user[:password]@host:port.

    Read once, at the start of the session: the variable is changed later to point at the server chosen.
    """
    return (os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL).rstrip("/")


@functools.cache
def shared_postgres_url() -> str | None:
    """The configured server's URL if something listens at its address, else None."""
    url = configured_postgres_url()
    address = PostgresAddress.from_url(url)
    return url if listening(address.host, address.port) else None


@functools.cache
def postgres_server_url() -> str:
    """The server every test database is created on, without a database: append "/<name>" to connect.

    The embedded server is started here, on first use, when the shared one is absent. Its URL is then
    exported as $HEADWATER_TEST_SERVER_URL so that pytest runs started by the tests use it too.
    """
    shared = shared_postgres_url()
    if shared is not None:
        return shared
    url = embedded_server_url().rsplit("/", 1)[0]
    os.environ[POSTGRES_URL_ENV] = url
    return url


def describe_embedded() -> str | None:
    """One line for the end of the session: the embedded server the tests ran against, if one was started."""
    import psycopg

    url = started_embedded_server_url()
    if url is None:
        return None
    with psycopg.connect(url, connect_timeout=5) as connection:
        version = connection.execute("show server_version").fetchone()[0]
    return f"PostgreSQL: the tests ran against the embedded PostgreSQL {version} at {url.rsplit('/', 1)[0]}"


def describe_postgres() -> str:
    """One line for pytest's header: which PostgreSQL the session uses."""
    if shared_postgres_url() is not None:
        return f"PostgreSQL: {PostgresAddress.from_url(configured_postgres_url()).safe_url.rsplit('/', 1)[0]}"
    address = PostgresAddress.from_url(configured_postgres_url())
    return (f"PostgreSQL: nothing listens at {address.host}:{address.port}; "
            f"the embedded PostgreSQL is started when a test needs a database (set {POSTGRES_URL_ENV} to use another)")


def prepare_postgres_environment() -> None:
    """Point the acceptance kit, which reads $HEADWATER_TEST_SERVER_URL itself, at the server chosen here.

    With the shared server present the variable names it. Without it the variable is removed, so that the
    kit starts the same embedded server (one per process) instead of connecting to a closed port.
    """
    shared = shared_postgres_url()
    if shared is not None:
        os.environ[POSTGRES_URL_ENV] = shared
    else:
        os.environ.pop(POSTGRES_URL_ENV, None)


# -- MariaDB --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MariaDB:
    host: str
    port: int
    user: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> MariaDB:
        parsed = sa.make_url(url)
        return cls(host=parsed.host or "127.0.0.1", port=parsed.port or 3306, user=parsed.username or "root",
                   password=parsed.password or "")

    def connect(self) -> pymysql.Connection:
        """A connection with no database selected, for creating and dropping the tests' databases."""
        return pymysql.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               connect_timeout=5)

    def url(self, database: str, query: str = "") -> str:
        """A SQLAlchemy URL of one database on this server (query: e.g. "charset=utf8mb4")."""
        auth = quote(self.user, safe="") + ":" + quote(self.password, safe="")
        return f"mysql+pymysql://{auth}@{self.host}:{self.port}/{database}" + (f"?{query}" if query else "")


def mariadb_server() -> MariaDB:
    """The tests' MariaDB; skips the calling test, saying why, when nothing listens at its address."""
    server = MariaDB.from_url(os.environ.get(MARIADB_URL_ENV) or DEFAULT_MARIADB_URL)
    if not listening(server.host, server.port):
        why = f"MariaDB not reachable at {server.host}:{server.port}: set {MARIADB_URL_ENV} or start MariaDB"
        if os.environ.get(REQUIRE_MARIADB_ENV) == "1":
            pytest.fail(f"{why} ({REQUIRE_MARIADB_ENV}=1: its tests must run here)")
        pytest.skip(why)
    return server


def describe_mariadb() -> str:
    """One line for pytest's header: which MariaDB the session uses."""
    server = MariaDB.from_url(os.environ.get(MARIADB_URL_ENV) or DEFAULT_MARIADB_URL)
    if listening(server.host, server.port):
        return f"MariaDB: {server.host}:{server.port}"
    return f"MariaDB: nothing listens at {server.host}:{server.port}; its tests are skipped"

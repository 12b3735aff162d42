"""Destination databases for acceptance tests: a fresh, empty database for every test.

The server is `$HEADWATER_TEST_SERVER_URL` when set (any PostgreSQL the tests may create databases on).
Otherwise Headwater's embedded PostgreSQL is started once per test process in a throw-away folder, so
a plugin author needs nothing but `pip install headwater pytest`; it is stopped and deleted when the
process exits.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from headwater.postgres.address import PostgresAddress

SERVER_URL_ENV = "HEADWATER_TEST_SERVER_URL"
DATABASE_PREFIX = "hw_acceptance_"

_embedded_lock = threading.Lock()
_embedded_url: str | None = None
# A server that failed to start fails every later test at once instead of retrying for a minute each.
_embedded_error: str | None = None


def server_address() -> PostgresAddress:
    """The server to create test databases on; its `database` is the one to connect to for CREATE DATABASE."""
    url = os.environ.get(SERVER_URL_ENV) or embedded_server_url()
    return PostgresAddress.from_url(url)


@contextmanager
def fresh_database() -> Iterator[PostgresAddress]:
    """Create an empty database for the block and drop it afterwards, whatever the block did."""
    admin = server_address()
    target = replace(admin, database=f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}")
    try:
        with admin.connect(autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{target.database}"')
    except Exception as error:
        raise RuntimeError(
            f"cannot create a test database on {admin.safe_url}: {error}\n"
            f"{SERVER_URL_ENV} must name a PostgreSQL server where this user may CREATE DATABASE; "
            "unset it to use Headwater's embedded PostgreSQL instead"
        ) from error
    try:
        yield target
    finally:
        with admin.connect(autocommit=True, connect_timeout=10) as connection:
            # FORCE: a connection the connector or dlt left open must not keep the database alive.
            connection.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


def embedded_server_url() -> str:
    """Start the embedded server on first use; later calls in the same process reuse it.

    Returns the URL of its maintenance database (`postgres`), where test databases are created.
    """
    global _embedded_url, _embedded_error
    with _embedded_lock:
        if _embedded_error is not None:
            raise RuntimeError(_embedded_error)
        if _embedded_url is None:
            try:
                _embedded_url = _start_embedded()
            except Exception as error:
                _embedded_error = (
                    f"Headwater's embedded PostgreSQL did not start for the acceptance tests: {error}\n"
                    f"Set {SERVER_URL_ENV}=postgresql://user@host:port to use a PostgreSQL server of your own."
                )
                raise RuntimeError(_embedded_error) from error
        return _embedded_url


def started_embedded_server_url() -> str | None:
    """The URL embedded_server_url() returned if this process started the embedded server, else None."""
    return _embedded_url


def _start_embedded() -> str:
    from headwater.local.embedded_postgres import LocalPostgres

    # Not pytest's tmp_path: as root the server runs as another OS user, and pytest keeps its temp
    # root private (0700). A folder of our own can be opened up for that user.
    root = Path(tempfile.mkdtemp(prefix="headwater-acceptance-"))
    server = LocalPostgres(root / "postgres")
    # A private free port, so the tests never take the port a developer's own embedded server uses.
    server.settings_file.write_text(json.dumps({"port": _free_port()}))

    def stop_and_delete() -> None:
        try:
            server.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)

    try:
        url = server.start()
    except BaseException:
        stop_and_delete()
        raise
    atexit.register(stop_and_delete)
    # The URL of the maintenance database: test databases are created from there.
    return replace(PostgresAddress.from_url(url), database="postgres").url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

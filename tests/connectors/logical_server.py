"""A PostgreSQL server with wal_level=logical for the change-feed tests, started by the suite itself.

The shared test server runs wal_level=replica and is not the suite's to reconfigure; the embedded
PostgreSQL binaries start a server of its own in a folder of the session's, set up for logical decoding.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg

from headwater.local.embedded_postgres import LocalPostgres

SETTINGS = {"wal_level": "logical", "max_replication_slots": "20", "max_wal_senders": "20"}


def start_logical_server(folder: Path) -> tuple[LocalPostgres, str]:
    """The server in ``folder``, started, with logical decoding on; returns it and its URL (without database)."""
    server = LocalPostgres(folder)
    url = server.start()
    with psycopg.connect(url, autocommit=True) as connection:
        current = dict(connection.execute(
            "select name, setting from pg_settings where name = any(%s)", (list(SETTINGS),)).fetchall())
        if current != SETTINGS:
            for name, value in SETTINGS.items():
                connection.execute(f"alter system set {name} = '{value}'")
            restart = True
        else:
            restart = False
    if restart:
        server.stop()
        url = server.start()
    return server, url.rsplit("/", 1)[0]


@contextmanager
def logical_database(server_url: str, prefix: str = "hw_cdc"):
    """A new database on the logical server; its replication slots and the database dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    try:
        yield f"{server_url}/{name}"
    finally:
        with psycopg.connect(f"{server_url}/postgres", autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,))
            for (slot,) in admin.execute("select slot_name from pg_replication_slots where database = %s", (name,)):
                admin.execute("select pg_drop_replication_slot(%s)", (slot,))
            admin.execute(f'drop database if exists "{name}" with (force)')

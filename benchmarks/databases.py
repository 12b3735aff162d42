"""Throw-away databases on the benchmark's PostgreSQL and MariaDB servers, and their source tables."""

from __future__ import annotations

import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg

from benchmarks.data import MARIADB_DDL, POSTGRES_DDL

POSTGRES_SERVER = os.environ.get("HEADWATER_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
MARIADB = {
    "host": os.environ.get("HEADWATER_BENCH_MARIADB_HOST", "127.0.0.1"),
    "port": int(os.environ.get("HEADWATER_BENCH_MARIADB_PORT", "3306")),
    "user": os.environ.get("HEADWATER_BENCH_MARIADB_USER", "root"),
    "password": os.environ.get("HEADWATER_BENCH_MARIADB_PASSWORD", ""),
}


def create_postgres_database(prefix: str) -> str:
    """A new empty database; every case loads into one of its own so no case sees another's tables."""
    name = f"hwb_{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{POSTGRES_SERVER}/{name}"


def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres_database(prefix: str):
    url = create_postgres_database(prefix)
    try:
        yield url
    finally:
        drop_postgres_database(url)


# How long a measurement waits for the server's background vacuums to end before it starts anyway.
AUTOVACUUM_WAIT_SECONDS = 60


def checkpoint() -> None:
    """Let the server's autovacuum workers finish (a table loaded just before is vacuumed and analyzed in the
    background, on the CPU the next command needs), then flush its dirty buffers and WAL (CHECKPOINT needs
    superuser; skipped when not allowed)."""
    with psycopg.connect(f"{POSTGRES_SERVER}/postgres", autocommit=True) as admin:
        deadline = time.monotonic() + AUTOVACUUM_WAIT_SECONDS
        while time.monotonic() < deadline and admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'").fetchone()[0]:
            time.sleep(0.2)
        try:
            admin.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            pass


def copy_csv(url: str, table: str, csv_path: Path) -> int:
    """Raw COPY ... FROM STDIN of a CSV with a header into a new table; returns the rows copied."""
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(POSTGRES_DDL.format(name=table))
        statement = f"COPY {table} FROM STDIN WITH (FORMAT csv, HEADER true)"
        with cursor.copy(statement) as copy, open(csv_path, "rb") as file:
            while block := file.read(1 << 20):
                copy.write(block)
        return cursor.rowcount


def key_source_table(url: str, table: str) -> None:
    """Make ``table`` look like an operational table: a primary key on id and an index on updated_at."""
    with psycopg.connect(url) as connection:
        connection.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
        connection.execute(f"CREATE INDEX ON {table} (updated_at)")
        connection.execute(f"ANALYZE {table}")


def upsert_csv(url: str, table: str, csv_path: Path) -> None:
    """Apply a CSV of changed rows to a keyed source table, as the application writing to it would."""
    from benchmarks.work import upsert_by_hand

    upsert_by_hand(url, str(csv_path), table)


def mariadb_connection(database: str | None = None):
    import pymysql

    return pymysql.connect(database=database, local_infile=True, autocommit=True, **MARIADB)


def mariadb_url(database: str) -> str:
    auth = MARIADB["user"] + (f":{MARIADB['password']}" if MARIADB["password"] else "")
    return f"mysql+pymysql://{auth}@{MARIADB['host']}:{MARIADB['port']}/{database}"


def create_mariadb_source(database: str, table: str, csv_path: Path) -> None:
    """A MariaDB database holding ``table`` filled from the CSV with LOAD DATA (the fast bulk path)."""
    with mariadb_connection() as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
        cursor.execute(f"CREATE DATABASE `{database}`")
        cursor.execute("SELECT @@GLOBAL.local_infile")
        previous = cursor.fetchone()[0]
        cursor.execute("SET GLOBAL local_infile = 1")  # LOAD DATA LOCAL is off by default
    try:
        _load_mariadb_table(database, table, csv_path)
    finally:  # the server is left as it was found
        with mariadb_connection() as connection, connection.cursor() as cursor:
            cursor.execute("SET GLOBAL local_infile = %s", (int(previous),))


def _load_mariadb_table(database: str, table: str, csv_path: Path) -> None:
    with mariadb_connection(database) as connection, connection.cursor() as cursor:
        cursor.execute(MARIADB_DDL.format(name=table))
        # Timestamps arrive as ISO text with an offset: MariaDB's datetime wants it without.
        cursor.execute(
            f"LOAD DATA LOCAL INFILE %s INTO TABLE {table} FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' "
            "IGNORE 1 LINES (id, customer_id, quantity, price, discount, name, email, @created, @updated, @active) "
            "SET created_at = STR_TO_DATE(LEFT(@created, 26), '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), "
            "updated_at = STR_TO_DATE(LEFT(@updated, 26), '%%Y-%%m-%%dT%%H:%%i:%%s.%%f'), "
            "is_active = (@active = 'true')",
            (str(csv_path),),
        )


def drop_mariadb_database(database: str) -> None:
    with mariadb_connection() as connection, connection.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")

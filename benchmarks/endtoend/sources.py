"""The sources every contender reads: CSV and Parquet files, a PostgreSQL and a MariaDB table, the
incremental table and its 1% change, and the local JSON API; plus the target database they load into."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from benchmarks.data import POSTGRES_DDL, TABLE, events, write_csv, write_parquet
from benchmarks.databases import (
    MARIADB,
    create_mariadb_source,
    create_postgres_database,
    drop_mariadb_database,
    drop_postgres_database,
)
from benchmarks.endtoend.verify import table_stats

CHANGE_EVERY = 200  # every 200th row updated and as many new rows inserted: a 1% change in all
CHANGED_AT = "2030-01-01 00:00:00+00"  # later than every updated_at the generator writes


@dataclass
class Sources:
    rows: int
    folder: Path
    csv: Path = field(init=False)
    parquet: Path = field(init=False)
    postgres_url: str = ""  # database holding events (the full-copy source)
    incremental_url: str = ""  # database holding events that the incremental workload changes
    mariadb_database: str = ""
    target_url: str = ""  # every contender loads here, each into a schema of its own
    expected: dict[str, str] = field(default_factory=dict)  # stats of the full table

    def __post_init__(self):
        # a folder per format: a folder-reading tap takes every file in its folder
        self.csv = self.folder / "csv" / "events.csv"
        self.parquet = self.folder / "parquet" / "events.parquet"

    @property
    def mariadb_url(self) -> str:
        auth = MARIADB["user"] + (f":{MARIADB['password']}" if MARIADB["password"] else "")
        return f"mysql://{auth}@{MARIADB['host']}:{MARIADB['port']}/{self.mariadb_database}"


def create(rows: int, folder: Path) -> Sources:
    sources = Sources(rows, folder)
    frame = events(rows)
    write_csv(frame, sources.csv)
    write_parquet(frame, sources.parquet)
    tag = uuid.uuid4().hex[:8]
    sources.postgres_url = create_postgres_database(f"e2e_src_{tag}")
    sources.incremental_url = create_postgres_database(f"e2e_inc_{tag}")
    sources.target_url = create_postgres_database(f"e2e_tgt_{tag}")
    for url in (sources.postgres_url, sources.incremental_url):
        _fill_postgres(url, sources.csv)
    sources.mariadb_database = f"hwb_e2e_{tag}"
    create_mariadb_source(sources.mariadb_database, TABLE, sources.csv)
    sources.expected = table_stats(sources.postgres_url, "public", TABLE)
    return sources


def drop(sources: Sources) -> None:
    for url in (sources.postgres_url, sources.incremental_url, sources.target_url):
        if url:
            drop_postgres_database(url)
    if sources.mariadb_database:
        drop_mariadb_database(sources.mariadb_database)


def _fill_postgres(url: str, csv_path: Path) -> None:
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(POSTGRES_DDL.format(name=TABLE))
        with cursor.copy(f"COPY {TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy, open(csv_path, "rb") as f:
            while block := f.read(1 << 20):
                copy.write(block)
        cursor.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")  # merge needs a key; so does the by-hand move
        cursor.execute(f"ANALYZE {TABLE}")


def reset_incremental(sources: Sources) -> None:
    """The incremental table as generated: the changed rows put back, the new rows removed."""
    with psycopg.connect(sources.incremental_url) as connection:
        connection.execute(f"DELETE FROM {TABLE} WHERE id >= %s", (sources.rows,))
        connection.execute(
            f"UPDATE {TABLE} SET quantity = quantity - 1, "
            "updated_at = timestamptz '2026-01-01 00:00:00+00' + id * interval '1 second' "
            "WHERE updated_at >= %s::timestamptz", (CHANGED_AT,))


def change_incremental(sources: Sources) -> dict[str, str]:
    """Update 0.5% of the rows and insert as many new ones, all with a newer updated_at; the new full stats."""
    new_rows = max(1, sources.rows // CHANGE_EVERY)
    with psycopg.connect(sources.incremental_url) as connection:
        connection.execute(
            f"UPDATE {TABLE} SET quantity = quantity + 1, "
            "updated_at = %s::timestamptz + (id %% 1000) * interval '1 second' WHERE id %% %s = 0",
            (CHANGED_AT, CHANGE_EVERY))
        frame = events(new_rows, first_id=sources.rows)
        with connection.cursor().copy(f"COPY {TABLE} ({', '.join(frame.columns)}) FROM STDIN") as copy:
            for row in frame.iter_rows():
                copy.write_row(row)
    return table_stats(sources.incremental_url, "public", TABLE)

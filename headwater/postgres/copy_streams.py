"""One load file copied into its table over several connections at once, committed together.

Binary COPY costs CPU on both sides: the client encodes every value and the server decodes and writes
it. Several streams, each its own connection and transaction fed from the same file, spread the
server's share over more cores. How many pay depends on the encoder: the ADBC driver's encoding costs
about as much CPU as the server's insert, so with it a stream takes 2 cores (on 2 cores, 2 streams
measured no faster than 1); pgpq's (headwater.postgres.binary_copy) costs a fraction, so a stream
takes about 1 core (on 2 cores, 2 pgpq streams copy 1M rows in ~0.8× the time of one). Streams start
only for files of at least ``ROWS_PER_STREAM`` rows per stream (``copy_streams``).

**Exact under failures and kills.** The streams commit only once every one of them has copied all it
was given: a refused row or a lost connection rolls them all back, as one stream would. The commits
themselves cannot be one transaction (Postgres commits each connection alone, and prepared
transactions are off by default), so a file in the load package (``PartialCopy``) says "this job's
rows may be in the table in part" from before the first commit until after the last. Whoever runs the
job next (dlt retrying it in the same run, or the next run after a kill) deletes the job's load id from
the table first. That is exact because a table has one copy job per load package: every row of that
load id in that table comes from this job. (A kill between the commits is also what
headwater.load.recovery cleans up for any unfinished copy job.)

**Recorded in the destination.** Those markers live in the load package, on the machine that ran the
load. So that a run on another machine (a fresh worker, a pod without the disk) can also tell which rows
of an unfinished load are in a table, every commit of rows by a copy job inserts a row into
``headwater_ops.open_loads`` (``OpenLoad``: load id, schema, table) in the same transaction as the rows,
before the first commit when there are several: the table is never ahead of it. Rows of a load whose
``_dlt_loads`` record was written are deleted from it by the next load (headwater.load.recovery), which
also deletes the rows of any load there that is neither recorded nor pending in its own working folder.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

# Forces the number of COPY streams (1 turns them off); unset, it follows the core count.
STREAMS_VARIABLE = "HEADWATER_COPY_STREAMS"
# Rows each stream should get at least: below that, opening connections costs more than it saves.
ROWS_PER_STREAM = 500_000
MAX_STREAMS = 4
# The load package's folder for markers of copies committed in part (dlt ignores folders it does not know).
PARTIAL_FOLDER = "headwater_partial_copies"


# Which load ids have committed rows into which tables (``OpenLoad``). The same statement is step 8 of
# headwater.ops.history's migrations: never edit it, add a step there.
OPEN_LOADS = "headwater_ops.open_loads"
OPEN_LOADS_TABLE = """
    -- Load ids whose copy jobs committed rows into a table, written in the same transaction as the rows
    -- (headwater.postgres.copy_streams.OpenLoad); deleted once the load is recorded in _dlt_loads, or once a
    -- later load removed the rows of a load that never completed (headwater.load.recovery).
    create table if not exists headwater_ops.open_loads (
        dataset text not null,               -- the schema the rows went into (a staging schema included)
        table_name text not null,
        load_id text not null,
        parent_table text,                   -- nested tables: the table their _dlt_parent_id points to
        committed_at timestamptz not null default now(),
        primary key (dataset, load_id, table_name)
    )
    """


@dataclass(frozen=True)
class OpenLoad:
    """A copy job's table and load id, recorded in ``headwater_ops.open_loads`` by the transaction that commits
    its rows (see the module docstring)."""

    dataset: str
    table: str
    load_id: str
    parent: str | None = None  # a nested table's parent table

    def record(self, connection) -> None:
        """Insert the row in ``connection``'s open transaction (a psycopg or an ADBC connection); the table is
        created first when it does not exist yet (a load before any run record)."""
        with connection.cursor() as cursor:
            cursor.execute(f"select to_regclass('{OPEN_LOADS}') is not null")
            if not cursor.fetchone()[0]:
                cursor.execute("select 1 from pg_advisory_xact_lock(hashtext('headwater_ops'))")
                cursor.execute("select to_regnamespace('headwater_ops') is not null")
                if not cursor.fetchone()[0]:
                    cursor.execute("create schema if not exists headwater_ops")
                cursor.execute(OPEN_LOADS_TABLE)
            values = ", ".join(_literal(value) for value in (self.dataset, self.table, self.load_id, self.parent))
            cursor.execute(f"insert into {OPEN_LOADS} (dataset, table_name, load_id, parent_table) "
                           f"values ({values}) on conflict do nothing")


# Tables a full refresh emptied itself, before its streams copy into them (headwater.postgres.copy_ahead):
# the same statement is step 10 of headwater.ops.history's migrations: never edit it, add a step there.
OPEN_REFRESHES = "headwater_ops.open_refreshes"
OPEN_REFRESHES_TABLE = """
    -- Tables a full refresh truncated in the same transaction as this row, before its rows were copied
    -- (headwater.postgres.copy_ahead); deleted once a load that refreshed the table is recorded. An entry
    -- whose load never completed makes the next run refresh the table again (headwater.load.recovery).
    create table if not exists headwater_ops.open_refreshes (
        dataset text not null,
        table_name text not null,
        resource text not null,              -- the dlt resource that loads the table: what is refreshed again
        load_id text not null,
        truncated_at timestamptz not null default now(),
        primary key (dataset, table_name)
    )
    """


def record_refresh(connection, dataset: str, table: str, resource: str, load_id: str) -> None:
    """Record in ``connection``'s open transaction, the one that truncates ``table`` (loaded by ``resource``), that
    ``load_id`` refreshes it (replacing an entry of an earlier refresh of the table that never completed)."""
    with connection.cursor() as cursor:
        cursor.execute(f"select to_regclass('{OPEN_REFRESHES}') is not null")
        if not cursor.fetchone()[0]:
            cursor.execute("select 1 from pg_advisory_xact_lock(hashtext('headwater_ops'))")
            cursor.execute("create schema if not exists headwater_ops")
            cursor.execute(OPEN_REFRESHES_TABLE)
        values = ", ".join(_literal(value) for value in (dataset, table, resource, load_id))
        cursor.execute(f"insert into {OPEN_REFRESHES} (dataset, table_name, resource, load_id) values ({values}) "
                       f"on conflict (dataset, table_name) do update set load_id = excluded.load_id, "
                       f"truncated_at = now()")


def _literal(value: str | None) -> str:
    """A SQL string literal (standard_conforming_strings, on since PostgreSQL 9.1): both drivers run it as is."""
    return "null" if value is None else "'" + value.replace("'", "''") + "'"


def copy_streams(rows: int, cores_per_stream: int = 2) -> int:
    """How many connections copy a load file of ``rows`` rows.

    ``cores_per_stream``: the cores one stream keeps busy. The ADBC driver's encoding costs a client core
    as much as the server's insert costs one of the server's (2); pgpq's costs a fraction (1).
    """
    configured = os.environ.get(STREAMS_VARIABLE, "").strip()
    if configured:
        if not configured.isdigit():
            raise ValueError(f"{STREAMS_VARIABLE} must be a whole number of COPY streams (1 turns them off), "
                             f"got {configured!r}; set it to a number or unset it")
        return max(1, int(configured))
    by_cores = min(MAX_STREAMS, (os.cpu_count() or 1) // cores_per_stream)
    return max(1, min(by_cores, rows // ROWS_PER_STREAM))


class PartialCopy:
    """The marker of a job whose streams were being committed: its rows may be in the table in part."""

    def __init__(self, job_file_path: str, job_id: str):
        # job_file_path is <package>/<jobs state folder>/<file>; the marker outlives the job's moves and retries.
        self.path = Path(job_file_path).parent.parent / PARTIAL_FOLDER / job_id

    def left_behind(self) -> bool:
        return self.path.exists()

    def write(self) -> None:
        self.path.parent.mkdir(exist_ok=True)
        self.path.write_text("streams committed in part; delete this job's load id before copying again\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def copy_in_streams(connect: Callable[[], object], streams: int, batches: pa.RecordBatchReader,
                    copy: Callable[[object, pa.RecordBatchReader], object], partial: PartialCopy,
                    opened: OpenLoad) -> None:
    """Copy ``batches`` over ``streams`` connections from ``connect``, then commit them all, the first one
    recording ``opened``.

    ``copy(cursor, reader)`` copies one stream's share; the first error of any stream stops the others
    and is raised here, with nothing committed.
    """
    shared = _SharedBatches(batches)
    connections = []
    try:
        for _ in range(streams):
            connections.append(connect())
        errors: list[BaseException] = []

        def stream(connection) -> None:
            try:
                with connection.cursor() as cursor:
                    copy(cursor, pa.RecordBatchReader.from_batches(batches.schema, shared.batches()))
            except BaseException as error:  # raised in the calling thread below
                errors.append(error)
                shared.stop()

        threads = [threading.Thread(target=stream, args=(connection,), name=f"headwater-copy-{index}")
                   for index, connection in enumerate(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        opened.record(connections[0])  # committed first: no stream's rows are in the table without it
        partial.write()
        for connection in connections:
            connection.commit()
        partial.clear()
    finally:
        for connection in connections:  # a connection closed before its commit rolls back
            connection.close()


class _SharedBatches:
    """One reader's batches handed out to several streams, each batch to one of them."""

    def __init__(self, reader: pa.RecordBatchReader):
        self._reader = reader
        self._lock = threading.Lock()
        self._stopped = False

    def batches(self) -> Iterator[pa.RecordBatch]:
        while True:
            with self._lock:  # Parquet decoding runs here and releases the GIL: the other streams keep encoding
                if self._stopped:
                    return
                try:
                    batch = self._reader.read_next_batch()
                except StopIteration:
                    return
            yield batch

    def stop(self) -> None:
        self._stopped = True

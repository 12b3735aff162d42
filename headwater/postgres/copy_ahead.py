"""Copy ahead: a large append table's rows COPY'd into it while extract is still reading the source.

dlt extracts a whole source into a load file, then loads that file. For an append table the two can
overlap: the batches dlt would write to the load file are sent, by background threads each over its own
connection (one per core, as a load file's COPY streams), into binary COPYs into the destination table
(pgpq, headwater.postgres.binary_copy). The server stores rows while the connector reads and the table
processor works on the next batches.

**Committed by the load job, never before.** The COPYs' transactions stay open until the table's copy
job runs (headwater.postgres.loader). The job commits them when they took exactly the rows they were
given; once committed, the rows carry the load id like any copy job's, and the first connection's transaction
records it in headwater_ops.open_loads (headwater.postgres.copy_streams.OpenLoad).

**In no load file.** Once a table's COPY has started, its next batches go to the COPY only: writing them
to the load file too cost the extract about a third of its time, for a file only a failure would read. The
load file keeps the batches from before the COPY started (the COPY has those as well; the job then copies
no file). The rows after them are then in the COPY alone, so they are treated as rows passed through (below):

- the package is marked (``PASSED_THROUGH``), and recovery discards a marked package whose table's job did
  not finish, cursor included, so the next run reads the rows again (a kill before the commit leaves
  nothing: the server rolls back a lost connection's transaction; after it, the discard deletes the load id);
- a COPY that cannot finish, or whose commit fails, fails its job with ``COPIED_ROWS_LOST``: the load then
  discards the package and reads the source again with every batch in the load file (``keep_files``), so a
  row the server refuses is set aside from the file as usual (headwater.load.pipeline);
- a change of the table's columns in the middle of the extract (which the COPY cannot follow) fails the
  extract the same way (``StreamedRowsLost``), before anything is committed.

``keep_files`` writes every batch to the load file as well; the job then commits the COPY when it took
exactly the file's rows, and otherwise rolls it back and copies the file (a commit whose outcome is unknown
is marked like a multi-stream copy's, ``PartialCopy``, and undone by the job's retry).

**Only where nothing else must touch the table first.** Append tables only (merge, scd2 and replace load
through staging tables), not in a refreshing run (dlt truncates the table before the jobs: only rows passed
through from a source go ahead in one, the table emptied first, ``_empty_for_refresh``), not nested
tables, and only while the table's columns stay as they were when the COPY started: a column added or
widened later in the extract would need an ALTER that waits for the open COPY, so the COPY is rolled back
then, and the schema update rolls back any it would otherwise wait for (``abandon_for_schema_update``).
A first load's table is created before the COPY starts, with the statement dlt's schema update would run
(committed alone, so dlt's update finds it and changes nothing). Copy ahead starts once a table has
extracted ``MIN_ROWS`` rows: a smaller load file is copied in about the time it takes to open a connection.
``HEADWATER_COPY_AHEAD=off`` turns it off.

**Passed through from another PostgreSQL.** A source connector may also hand a table's rows over as the
source server sends them (connectors.sql_database.pass_through): ``CopyAhead.pass_through`` gives it a
``PassThroughTarget``, one binary COPY into the table per stream the source reads side by side, their
transactions left open like a stream's, and the table's copy job commits them after its load file's rows
(``PassedThrough``). Those rows are in no load file,
so a run that ends before the job commits them cannot load its package later: the connector marks the
package (``PASSED_THROUGH``), and recovery discards such a package whole, cursor included, so the next run
reads the rows again (headwater.load.recovery). Only tables no step, rule or protection changes are passed
(``plain_tables``), and only while the table's columns stand as dlt's schema has them.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import queue
import threading
from collections.abc import Iterable, Iterator

import dlt
import psycopg
import pyarrow as pa
from dlt.common.schema import Schema
from dlt.common.schema.utils import get_write_disposition, is_nested_table
from dlt.common.storages.load_package import commit_load_package_state
from dlt.extract.extractors import ArrowExtractor, Extractor

from headwater.common.registry import first_line
from headwater.common.widening import is_text
from headwater.postgres.binary_copy import copy_binary, encodable
from headwater.postgres.column_types import JSONB, declared_types, destination_types, quoted
from headwater.postgres.copy_streams import MAX_STREAMS, ROWS_PER_STREAM, copy_streams, record_refresh
from headwater.postgres.key_indexes import headwater_index

log = logging.getLogger(__name__)

SWITCH_VARIABLE = "HEADWATER_COPY_AHEAD"
# Rows a table must have extracted before its copy ahead starts (held in memory until then).
MIN_ROWS = 200_000
MIN_ROWS_VARIABLE = "HEADWATER_COPY_AHEAD_MIN_ROWS"
# Connections copy ahead may hold open at once in one run, over all its tables (the destination's limit is
# shared with everything else; dlt's load workers open their own).
MAX_CONNECTIONS = 4
# Batches are queued for the COPY threads in slices of this many rows, at most QUEUE_SLICES at once: a
# connector's batch may be a whole Parquet row group (about 1M rows), and memory must not grow with the
# number of them a file has. A slice keeps its batch's buffers alive, so about two batches stay in memory.
SLICE_ROWS = 64 * 1024
QUEUE_SLICES = 8

_current: contextvars.ContextVar[CopyAhead | None] = contextvars.ContextVar("headwater_copy_ahead", default=None)
# Streams waiting for their copy job, by (dataset, table, load id); the job runs in dlt's load thread pool.
_waiting: dict[tuple[str, str, str], AheadStream] = {}
_waiting_lock = threading.Lock()
# Rows passed through from a source during extract, by (dataset, table, load id), waiting for the copy job.
_passed: dict[tuple[str, str, str], PassedThrough] = {}
# The load package state key under which a package lists its tables' rows passed through: table -> rows.
PASSED_THROUGH = "headwater_passed_through"
# How a copy job's failure begins when rows in no load file were lost (passed through, or copied ahead alone):
# no row of its file is to blame, and the load can only be discarded and read again.
PASSED_ROWS_LOST = "rows passed through lost"
COPIED_ROWS_LOST = "rows copied ahead lost"
ROWS_LOST = (PASSED_ROWS_LOST, COPIED_ROWS_LOST)
# Streams whose rows in no load file were rolled back before their job ran, by (dataset, table, load id).
_lost_streams: dict[tuple[str, str, str], str] = {}


class StreamedRowsLost(RuntimeError):
    """Rows a COPY took alone (in no load file) can no longer be committed: the extract or load must be
    discarded and the source read again with every batch in the load file."""


def enabled() -> bool:
    return os.environ.get(SWITCH_VARIABLE, "").strip().lower() not in ("off", "0", "false", "no")


def min_rows() -> int:
    return whole_number_setting(MIN_ROWS_VARIABLE, MIN_ROWS, "rows")


def whole_number_setting(variable: str, default: int, what: str) -> int:
    """The environment ``variable``'s whole number (of ``what``), ``default`` when unset; a ValueError saying
    what to set otherwise."""
    configured = os.environ.get(variable, "").strip()
    if not configured:
        return default
    if not configured.isdigit():
        raise ValueError(f"{variable} must be a whole number of {what}, got {configured!r}; "
                         f"set it to a number or unset it")
    return int(configured)


class AheadStream:
    """One table's COPY over one or more connections, each in a background thread taking batches from one
    queue as it is ready for the next, their transactions left open for the copy job."""

    def __init__(self, run: CopyAhead, load_id: str, connections: list[psycopg.Connection], dataset: str, table: str,
                 target: pa.Schema, caster):
        self.run, self.load_id = run, load_id
        self.connections, self.dataset, self.table, self.target = connections, dataset, table, target
        self.caster = caster  # the copy job's FileCopy: batches are cast as the job casts its file's
        self.alone = 0  # rows sent to the COPY and to no load file
        self.copied: list[int] = []  # rows each COPY took, once it ended
        self.errors: list[BaseException] = []
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_SLICES)
        self._ended = False
        self._threads = [threading.Thread(target=self._copy, args=(connection,), daemon=True,
                                          name=f"copy-ahead {dataset}.{table} {number}")
                         for number, connection in enumerate(connections, 1)]
        for thread in self._threads:
            thread.start()

    def _copy(self, connection: psycopg.Connection) -> None:
        closed = False

        def batches():
            nonlocal closed
            while (batch := self._queue.get()) is not None:
                yield batch
            closed = True

        try:
            with connection.cursor() as cursor:
                self.copied.append(copy_binary(cursor, self.dataset, self.table, self.target, batches()))
        except BaseException as error:  # kept for the job, which copies the file or fails the load
            self.errors.append(error)
            # Keep taking batches until this thread's end is signalled, so the extract never waits on a dead
            # COPY; the server may also refuse the rows only once the end was sent.
            while not closed and self._queue.get() is not None:
                pass

    def put(self, batch: pa.RecordBatch) -> None:
        """Queue ``batch`` for the COPYs, slice by slice; waits while the queue is full."""
        for offset in range(0, batch.num_rows, SLICE_ROWS):
            self._queue.put(batch.slice(offset, SLICE_ROWS))

    def end(self) -> int | None:
        """Close the COPYs and wait for them; the rows they took, or None when one failed."""
        if not self._ended:
            self._ended = True
            for _ in self._threads:  # one end mark per thread: each stops at the first it takes
                self._queue.put(None)
            for thread in self._threads:
                thread.join()
        return None if self.errors else sum(self.copied)

    def record(self, opened) -> None:
        """Record the load id in the first connection's transaction, committed first (copy_streams.OpenLoad)."""
        opened.record(self.connections[0])

    def commit(self) -> None:
        """Commit every connection's COPY, one after the other (the caller marks the copy as partial and records
        the load id first)."""
        for connection in self.connections:
            connection.commit()
        self._close()

    def roll_back(self) -> None:
        self.end()
        for connection in self.connections:
            with contextlib.suppress(psycopg.Error):
                connection.rollback()
        self._close()

    def _close(self) -> None:
        for connection in self.connections:
            connection.close()

    def lose(self, why: str) -> str:
        """Record that the rows this stream took alone are lost (``why``), so that its job can never copy its
        load file in their place; the message its job fails with."""
        message = f"{COPIED_ROWS_LOST}: {why}; {self.alone} of its rows are in no load file"
        with _waiting_lock:
            _lost_streams[(self.dataset, self.table, self.load_id)] = message
        return message

    def committed(self) -> None:
        """Its job committed it: the mark ``take`` left for a job that would not finish goes."""
        with _waiting_lock:
            _lost_streams.pop((self.dataset, self.table, self.load_id), None)


class PassedThrough:
    """Rows a source passed straight into a table during extract, over one COPY or several side by side, their
    transactions left open for the table's copy job, which commits them after its load file's rows. ``state``:
    waiting, committed, or lost (rolled back, or a commit failed: the package can then never load, see the
    module docstring; a lost package is discarded whole, load id deleted, so streams committed before another
    failed leave nothing behind)."""

    def __init__(self, run: CopyAhead, connections: list[psycopg.Connection], dataset: str, table: str, rows: int):
        self.run, self.connections, self.dataset, self.table, self.rows = run, connections, dataset, table, rows
        self.state = "waiting"

    def record(self, opened) -> None:
        """Record the load id in the first COPY's transaction (copy_streams.OpenLoad), before ``commit``: it commits
        first, so no stream's rows are in the table without it."""
        opened.record(self.connections[0])

    def commit(self) -> None:
        self.state = "lost"  # until every commit is known to be through
        try:
            for connection in self.connections:
                connection.commit()
        finally:
            for connection in self.connections:  # one closed before its commit rolls back
                connection.close()
        self.state = "committed"
        self.run.count_passed(self.table, self.rows)

    def roll_back(self) -> None:
        if self.state == "waiting":
            self.state = "lost"
            for connection in self.connections:
                with contextlib.suppress(psycopg.Error):
                    connection.rollback()
                connection.close()


def _truncated_by_load(table_name: str) -> bool:
    """Whether the load step is to truncate ``table_name`` before its jobs: a full refresh (dlt's ``drop_data``)."""
    truncated = dlt.current.load_package_state()["state"].get("truncated_tables") or []
    return any(table["name"] == table_name for table in truncated)


def _empty_for_refresh(connection: psycopg.Connection, dataset: str, table_name: str, resource: str,
                       load_id: str) -> None:
    """Truncate a refreshed table before its rows are passed, instead of the load step.

    The load step truncates a refreshed table before the jobs run, which would wait for the passed rows' COPYs,
    open until their job commits them. So the table is truncated here, and the package no longer asks the load
    step to. The same transaction records the refresh in headwater_ops.open_refreshes: if the load never
    completes, the old rows are gone while the cursor stays where it was, and the next run refreshes the table
    again (headwater.load.recovery)."""
    connection.execute(f"TRUNCATE {quoted(dataset)}.{quoted(table_name)}")
    record_refresh(connection, dataset, table_name, resource, load_id)
    connection.commit()
    state = dlt.current.load_package_state()["state"]
    state["truncated_tables"] = [table for table in state.get("truncated_tables") or []
                                 if table["name"] != table_name]
    commit_load_package_state()
    log.info("%s.%s: emptied for its full refresh, before its rows are passed through", dataset, table_name)


class PassThroughTarget:
    """A table ready to take a source's binary COPY over one or more connections (``connections``, one per stream):
    its columns' types (``types``: name -> (as declared, without the modifier)) and how a source column is named
    in it (``column_name``). ``copy`` sends the rows; nothing is committed until the copy job runs."""

    def __init__(self, run: CopyAhead, connections: list[psycopg.Connection], dataset: str, table: str,
                 load_id: str, types: dict[str, tuple[str, str]], naming):
        self.run, self.connections, self.dataset, self.table = run, connections, dataset, table
        self.load_id, self.types = load_id, types
        self._naming = naming

    @property
    def streams(self) -> int:
        return len(self.connections)

    def column_name(self, source_column: str) -> str:
        return self._naming.normalize_identifier(source_column)

    def copy(self, columns: list[str], streams: list[Iterable[bytes]]) -> list[int]:
        """COPY each of ``streams`` (a whole binary COPY stream, header to trailer, one per connection) into
        ``columns``, side by side; the rows each took, left for the copy job to commit. When one fails, the
        others stop at their next chunk, every COPY is rolled back and the first error raised."""
        if len(streams) != len(self.connections):
            raise ValueError(f"{self.dataset}.{self.table}: {len(streams)} COPY streams for "
                             f"{len(self.connections)} connections")
        statement = (f"COPY {quoted(self.dataset)}.{quoted(self.table)} ({', '.join(map(quoted, columns))}) "
                     f"FROM STDIN WITH (FORMAT BINARY)")
        rows: list[int] = [0] * len(streams)
        errors: list[BaseException] = []

        def copy_one(number: int, chunks: Iterable[bytes]) -> None:
            try:
                with self.connections[number].cursor() as cursor:
                    with cursor.copy(statement) as copy:
                        for chunk in chunks:
                            if errors:  # another stream failed: all are rolled back, no use sending more
                                raise _StreamStopped(f"{self.dataset}.{self.table}: another COPY stream failed")
                            copy.write(chunk)
                    rows[number] = cursor.rowcount
            except BaseException as error:  # raised in the calling thread below
                errors.append(error)

        try:
            if len(streams) == 1:
                copy_one(0, streams[0])
            else:
                threads = [threading.Thread(target=copy_one, args=(number, chunks), daemon=True,
                                            name=f"pass-through {self.dataset}.{self.table} {number + 1}")
                           for number, chunks in enumerate(streams)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        except BaseException:
            self.abandon()
            raise
        if errors:
            self.abandon()
            raise next((error for error in errors if not isinstance(error, _StreamStopped)), errors[0])
        with _waiting_lock:
            _passed[(self.dataset, self.table, self.load_id)] = PassedThrough(
                self.run, self.connections, self.dataset, self.table, sum(rows))
        return rows

    def keep(self, streams: int) -> None:
        """Give up the connections beyond the first ``streams`` (nothing was sent on them yet)."""
        spare, self.connections = self.connections[streams:], self.connections[:streams]
        for connection in spare:
            connection.close()
        self.run.release(len(spare))

    def abandon(self) -> None:
        """Roll the COPYs back and give their connections up; once, however often it is called."""
        if all(connection.closed for connection in self.connections):
            return
        for connection in self.connections:
            with contextlib.suppress(psycopg.Error):
                connection.rollback()
            connection.close()
        self.run.release(len(self.connections))


class _StreamStopped(Exception):
    """A COPY stream stopped because another of the same table failed (that one's error is what is raised)."""


class _Table:
    """What copy ahead knows of one table during one extract."""

    def __init__(self):
        self.held: list[pa.RecordBatch] = []  # batches before copy ahead starts
        self.held_rows = 0
        self.columns: dict | None = None  # dlt's columns (name -> type) when the COPY started
        self.stream: AheadStream | None = None
        self.off = False  # this table is not copied ahead in this extract


class CopyAhead:
    """Copy ahead for the extracts of one pipeline run (see the module docstring)."""

    def __init__(self, pipeline, refreshing: bool, file_copy, plain_tables: frozenset[str] = frozenset(),
                 keep_files: bool = False):
        self.pipeline = pipeline
        self.refreshing = refreshing
        self.keep_files = keep_files  # every batch goes to the load file too (see the module docstring)
        self.file_copy = file_copy  # the copy job's FileCopy class (headwater.postgres.loader)
        self.plain_tables = plain_tables  # tables whose rows no step, rule or protection changes: may be passed
        self.min_rows = min_rows()
        self._tables: dict[tuple[str, str], _Table] = {}  # (load id, table)
        self._schemas: dict[tuple[str, str], Schema] = {}  # the schema each table's batches were offered with
        # table -> rows in no load file (passed through, or copied ahead alone), committed by its copy job
        self.passed_rows: dict[str, int] = {}
        self._passed_lock = threading.Lock()
        # Tables created for a first load: (URL, dataset, table); a run that fails removes them, left empty.
        self._created: list[tuple[str, str, str]] = []
        # Open for the streams of this run's extract (jobs, which close them, run only after the extract).
        self._connections = 0


    def take_alone(self, load_id: str, table_name: str, items: list, schema: Schema) -> int | None:
        """Send the batches dlt is about to write to ``table_name``'s load file to its COPY only; the rows
        taken, or None when they must go to the load file (no COPY runs, or ``keep_files``). Raises
        ``StreamedRowsLost`` when the COPY has taken rows alone and cannot take these."""
        state = self._tables.get((load_id, table_name))
        if self.keep_files or state is None or state.stream is None or state.off:
            return None
        stream = state.stream
        if stream.errors and stream.alone:  # a COPY that failed cannot take these: no use reading on
            error = stream.errors[0]
            self._stop(state, load_id, table_name)
            raise StreamedRowsLost(f"{COPIED_ROWS_LOST}: the COPY into {table_name} failed during extract "
                                   f"({first_line(str(error)) or type(error).__name__})")
        fits = self._still_fits(state, table_name, schema)
        batches = [batch for item in items for batch in _batches(item) if batch.num_rows]
        conformed = [_conformed(batch, stream) for batch in batches] if fits else []
        if not fits or any(batch is None for batch in conformed):
            alone = stream.alone
            self._stop(state, load_id, table_name)
            if alone:
                raise StreamedRowsLost(f"{COPIED_ROWS_LOST}: {table_name}: its columns changed during extract "
                                       f"after {alone:,} rows went to its COPY alone")
            return None
        if not stream.alone:  # the package now holds rows in no file: recovery must discard it unless loaded
            package = dlt.current.load_package_state()
            package["state"].setdefault(PASSED_THROUGH, {})[table_name] = "copied ahead"
        rows = 0
        for batch in conformed:
            stream.put(batch)
            rows += batch.num_rows
        stream.alone += rows
        return rows

    def offer(self, load_id: str, table_name: str, items: list, schema: Schema) -> None:
        """The batches dlt just wrote to ``table_name``'s load file, in the file's columns and types."""
        state = self._tables.setdefault((load_id, table_name), _Table())
        self._schemas[(load_id, table_name)] = schema
        if state.off:
            return
        if not self._still_fits(state, table_name, schema):
            self._stop(state, load_id, table_name)
            return
        batches = [batch for item in items for batch in _batches(item) if batch.num_rows]
        if state.stream is None:
            state.held += batches
            state.held_rows += sum(batch.num_rows for batch in batches)
            if state.held_rows < self.min_rows:
                return
            batches, state.held = state.held, []
            try:
                state.stream = self._start(load_id, table_name, schema, batches[0].schema)
            except Exception as error:  # copy ahead is only a shortcut: the load file is still copied
                log.info("copy ahead of %s not started: %s", table_name, error)
                state.stream = None
            if state.stream is None:
                state.off = True
                return
            state.columns = _column_types(schema, table_name)
        for batch in batches:
            conformed = _conformed(batch, state.stream)
            if conformed is None:
                self._stop(state, load_id, table_name)
                return
            state.stream.put(conformed)

    def _still_fits(self, state: _Table, table_name: str, schema: Schema, emptied_here: bool = False) -> bool:
        table = schema.tables.get(table_name)
        if table is None or table_name.startswith("_dlt") or is_nested_table(table):
            return False
        if get_write_disposition(schema.tables, table_name) != "append" or (self.refreshing and not emptied_here):
            return False
        return state.columns is None or state.columns == _column_types(schema, table_name)

    def _start(self, load_id: str, table_name: str, schema: Schema, batch_schema: pa.Schema) -> AheadStream | None:
        # As many COPY streams as a load file of many rows would get (a pgpq stream keeps about one core busy),
        # within MAX_CONNECTIONS for the whole run: tables extracted side by side each hold theirs until loaded.
        streams = min(copy_streams(MAX_STREAMS * ROWS_PER_STREAM, cores_per_stream=1),
                      MAX_CONNECTIONS - self._connections)
        if streams < 1:
            return None
        client = self.pipeline._get_destination_clients(schema)[0]
        connection, url, dataset, types = self._table_ready(client, table_name, destination_types)
        connections = [connection]
        try:
            if _load_alters(client, table_name):  # the load's ALTER would roll the COPY back: the file loads
                connections[0].close()
                return None
            caster = self.file_copy(schema.get_table_columns(table_name), client.capabilities,
                                    f"{dataset}.{table_name}")
            target = caster.target_schema(batch_schema)
            target = pa.schema([field.with_type(_plain(field.type)) for field in target])
            text_into_jsonb = any(is_text(field.type) and types.get(field.name) == JSONB for field in target)
            if text_into_jsonb or not encodable(target, types):
                connections[0].close()
                return None
            for _ in range(streams - 1):
                connections.append(psycopg.connect(url, client_encoding="utf8"))
            stream = AheadStream(self, load_id, connections, dataset, table_name, target, caster)
        except BaseException:
            for connection in connections:
                connection.close()
            raise
        with _waiting_lock:
            _waiting[(dataset, table_name, load_id)] = stream
        self._connections += len(connections)
        return stream

    def pass_through(self, load_id: str, table_name: str, streams: int = 1) -> PassThroughTarget | None:
        """The table ready for a source's rows passed as the source sends them, over up to ``streams``
        connections (fewer when the run's MAX_CONNECTIONS would be passed), or None when they must come as
        batches: the table is not plain, not appended to in this run, has had no batch offered yet (its
        columns are not known), its columns differ from dlt's schema, or no connection is left."""
        schema = self._schemas.get((load_id, table_name))
        if schema is None or table_name not in self.plain_tables or self._connections >= MAX_CONNECTIONS:
            return None
        if self.keep_files:
            return None  # a retry that keeps every row in a load file
        refreshed = self.refreshing and _truncated_by_load(table_name)
        if not self._still_fits(_Table(), table_name, schema, emptied_here=refreshed):
            return None
        client = self.pipeline._get_destination_clients(schema)[0]
        connection, url, dataset, types = self._table_ready(client, table_name, declared_types)
        connections = [connection]
        try:
            if not set(schema.get_table_columns(table_name)) <= set(types) or _load_alters(client, table_name):
                connection.close()  # the load's ALTER would wait for this COPY: the rows come as batches
                return None
            if refreshed:
                _empty_for_refresh(connection, dataset, table_name,
                                   schema.tables[table_name].get("resource", table_name), load_id)
            for _ in range(min(streams, MAX_CONNECTIONS - self._connections) - 1):
                connections.append(psycopg.connect(url, client_encoding="utf8"))
        except BaseException:
            for opened in connections:
                opened.close()
            raise
        self._connections += len(connections)
        return PassThroughTarget(self, connections, dataset, table_name, load_id, types, schema.naming)

    def _table_ready(self, client, table_name: str, types_of) -> tuple[psycopg.Connection, str, str, dict]:
        """A connection to the destination, its URL, the dataset, and ``table_name``'s column types there as
        ``types_of`` reads them; on a first load the table is created first, as dlt's schema update would."""
        dataset = client.sql_client.dataset_name
        url = client.config.credentials.to_native_representation()
        connection = psycopg.connect(url, client_encoding="utf8")
        try:
            types = types_of(connection, dataset, table_name)
            connection.commit()
            if not types:
                _create_table(client, table_name)
                self._created.append((url, dataset, table_name))
                types = types_of(connection, dataset, table_name)
                connection.commit()
        except BaseException:
            connection.close()
            raise
        return connection, url, dataset, types

    def count_passed(self, table: str, rows: int) -> None:
        with self._passed_lock:
            self.passed_rows[table] = self.passed_rows.get(table, 0) + rows

    def release(self, connections: int) -> None:
        self._connections -= connections

    def _stop(self, state: _Table, load_id: str, table_name: str) -> None:
        state.off, state.held = True, []
        if state.stream is not None and _drop_waiting(state.stream, load_id):
            state.stream.roll_back()
            self._connections -= len(state.stream.connections)
            log.info("copy ahead of %s stopped: its columns changed during extract", table_name)

    def close(self, failed: bool, drop_created: bool = True) -> None:
        """Roll back every stream no copy job took (the run failed before loading them); when the run
        ``failed`` before its load step (``drop_created``), drop the tables it created for copy ahead that are
        still empty, as dlt would not have created them: a failed first load leaves no table behind. (Once the
        load step ran, dlt has recorded its schema as stored, tables included: they stay.)"""
        untaken = []
        for (load_id, table), state in self._tables.items():
            if state.stream is not None and _drop_waiting(state.stream, load_id):
                state.stream.roll_back()
                untaken += [table] if state.stream.alone else []
            if state.stream is not None:
                with _waiting_lock:
                    _lost_streams.pop((state.stream.dataset, table, load_id), None)
        self._tables.clear()
        self._schemas.clear()
        with _waiting_lock:
            mine = [_passed.pop(key) for key in [key for key, rows in _passed.items() if rows.run is self]]
        uncommitted = [rows for rows in mine if rows.state == "waiting"]
        for rows in uncommitted:  # their copy job never ran
            rows.roll_back()
        if (uncommitted or untaken) and not failed:  # a load completed without them: never expected, never silent
            names = ", ".join(sorted({rows.table for rows in uncommitted} | set(untaken)))
            raise RuntimeError(f"rows passed through into {names} were never committed, though the load completed: "
                               f"reload the table with `headwater run --full-refresh SOURCE.TABLE`")
        if failed and drop_created:
            for url, dataset, table in self._created:
                _drop_if_empty(url, dataset, table)
        self._created.clear()


def _drop_waiting(stream: AheadStream, load_id: str) -> bool:
    with _waiting_lock:
        return _waiting.pop((stream.dataset, stream.table, load_id), None) is not None


def take(dataset: str, table: str, load_id: str) -> AheadStream | None:
    """The stream copied ahead for a copy job, if any; the job commits or rolls it back. Raises
    ``StreamedRowsLost`` when the table's stream took rows alone and was rolled back before the job ran."""
    with _waiting_lock:
        lost = _lost_streams.get((dataset, table, load_id))
        if lost is not None:  # its message already says what was lost
            raise StreamedRowsLost(lost)
        stream = _waiting.pop((dataset, table, load_id), None)
        if stream is not None and stream.alone:  # until its job commits it: a retry of the job must not copy
            _lost_streams[(dataset, table, load_id)] = (  # its file alone (nor another job of the table)
                f"{COPIED_ROWS_LOST}: the job that took the rows copied into {dataset}.{table} during extract did "
                f"not finish; {stream.alone} of them are in no load file")
        return stream


def rows_lost(dataset: str, table: str, load_id: str) -> bool:
    """Whether rows of a copy job's table that are in no load file (passed through, or copied ahead alone)
    were lost: its failure is then no refusal of its file's rows."""
    passed = passed_through(dataset, table, load_id)
    with _waiting_lock:
        return (dataset, table, load_id) in _lost_streams or (passed is not None and passed.state == "lost")


def passed_through(dataset: str, table: str, load_id: str) -> PassedThrough | None:
    """The rows this process passed through into a copy job's table, in whatever state; None when none were."""
    with _waiting_lock:
        return _passed.get((dataset, table, load_id))


def waiting_tables(dataset: str) -> frozenset[str]:
    """The tables of ``dataset`` whose rows copied ahead or passed through wait for their copy job."""
    with _waiting_lock:
        passed = [key for key, rows in _passed.items() if rows.state == "waiting"]
        return frozenset(table for (schema, table, _) in [*_waiting, *passed] if schema == dataset)


def abandon_for_schema_update(dataset: str, table: str) -> None:
    """Roll back the streams into ``dataset.table``: a schema update is about to alter it. Rows passed through
    are rolled back too; their package can then only be discarded and read again (see the module docstring)."""
    with _waiting_lock:
        streams = [_waiting.pop(key) for key in [key for key in _waiting if key[:2] == (dataset, table)]]
        passed = [rows for key, rows in _passed.items() if key[:2] == (dataset, table) and rows.state == "waiting"]
    for stream in streams:
        log.info("copy ahead of %s rolled back: the load alters the table", table)
        stream.roll_back()
        if stream.alone:  # their copy job then fails the load, which reads them again into a load file
            stream.lose(f"the COPY into {dataset}.{table} was rolled back: the load alters the table")
    for rows in passed:  # their copy job then fails the load, which is discarded and read again
        log.warning("%d rows passed through into %s rolled back: the load alters the table", rows.rows, table)
        rows.roll_back()


def current() -> CopyAhead | None:
    """The copy ahead of the pipeline run in progress in this context, if any."""
    return _current.get()


@contextlib.contextmanager
def copying_ahead(pipeline, refreshing: bool, file_copy, plain_tables: frozenset[str] = frozenset(),
                  keep_files: bool = False) -> Iterator[CopyAhead | None]:
    """Copy ahead during the pipeline runs inside this block (when ``HEADWATER_COPY_AHEAD`` is not off); gives
    the run's CopyAhead (None when off), whose ``passed_rows`` count the rows in no load file it committed.

    ``file_copy``: the copy job's FileCopy class, which casts the batches as the job casts its file's.
    ``plain_tables``: the tables whose rows may be passed through from a source (see the module docstring).
    ``keep_files``: every batch goes to the load file too, and no rows are passed through."""
    if not enabled():
        yield None
        return
    use_copy_ahead_hook()
    run = CopyAhead(pipeline, refreshing, file_copy, plain_tables, keep_files)
    token = _current.set(run)
    try:
        yield run
    except BaseException as error:
        _current.reset(token)
        run.close(failed=True, drop_created=_failed_before_load(error))
        raise
    _current.reset(token)
    run.close(failed=False)


def _write_item_and_copy_ahead(self: Extractor, table_name: str, resource_name: str, items, columns=None) -> None:
    run = _current.get()
    if run is None or not isinstance(self, ArrowExtractor):
        _write_item(self, table_name, resource_name, items, columns)
        return
    listed = items if isinstance(items, list) else [items]
    rows = run.take_alone(self.load_id, table_name, listed, self.schema)
    if rows is None:
        _write_item(self, table_name, resource_name, items, columns)
        run.offer(self.load_id, table_name, listed, self.schema)
        return
    # What dlt's own _write_item records besides the file: progress, and that the table received items.
    self.collector.update(table_name, inc=rows)
    self.tables_with_items.add(table_name)


_write_item = Extractor._write_item


def use_copy_ahead_hook() -> None:
    """dlt's extractor hands what it would write to the load file to the active copy ahead, if any, which
    may take it alone (``CopyAhead.take_alone``: it is then not written to the file).

    The hook sits where dlt writes an Arrow batch to the load file: after dlt normalized its column names,
    ordered its columns as the table's and added the load id, so the COPY gets exactly the rows the file
    would hold."""
    Extractor._write_item = _write_item_and_copy_ahead


def _failed_before_load(error: BaseException | None) -> bool:
    """Whether a pipeline run failed in its extract or normalize step, before dlt stored its schema."""
    while error is not None:
        step = getattr(error, "step", None)
        if step is not None:
            return step in ("extract", "normalize")
        error = error.__cause__ or error.__context__
    return False


def _drop_if_empty(url: str, dataset: str, table: str) -> None:
    """Drop ``dataset.table`` if it holds no row, then the dataset if it holds nothing (dlt's tables included)."""
    target = f"{quoted(dataset)}.{quoted(table)}"
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            if connection.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {target})").fetchone()[0]:
                connection.execute(f"DROP TABLE {target}")
            with contextlib.suppress(psycopg.errors.DependentObjectsStillExist):
                connection.execute(f"DROP SCHEMA {quoted(dataset)}")  # without CASCADE: only an empty one
    except psycopg.Error as error:  # the run's own failure is what matters; the empty table stays
        log.warning("copy ahead: the empty table %s created for this load could not be dropped: %s", target, error)


def _load_alters(client, table_name: str) -> bool:
    """Whether the load will change the append table ``table_name`` before its copy job: a column its schema
    update widens, or the key index it had while merged, which the index sync drops."""
    changes = getattr(client, "_column_changes", None)
    with client:
        if headwater_index(client.sql_client, table_name) is not None:
            return True
        if changes is None:
            return False
        [(_, storage_columns)] = list(client.get_storage_tables([table_name]))
        return bool(storage_columns) and bool(changes(table_name, storage_columns))


def _create_table(client, table_name: str) -> None:
    """Create the table as dlt's schema update would (the dataset too), committed alone."""
    with client:
        if not client.is_storage_initialized():
            client.initialize_storage()
        statements, _ = client._build_schema_update_sql([(table_name, {})])
        with client.sql_client.begin_transaction():
            for statement in statements:
                client.sql_client.execute_sql(statement)


def _column_types(schema: Schema, table_name: str) -> dict:
    return {name: (column.get("data_type"), column.get("precision"), column.get("scale"), column.get("timezone"))
            for name, column in schema.get_table_columns(table_name).items()}


def _batches(item) -> list[pa.RecordBatch]:
    if isinstance(item, pa.RecordBatch):
        return [item]
    if isinstance(item, pa.Table):
        return item.to_batches()
    return []


def _plain(arrow_type: pa.DataType) -> pa.DataType:
    return arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type


def _conformed(batch: pa.RecordBatch, stream: AheadStream) -> pa.RecordBatch | None:
    """The batch in the COPY's columns and types; None when it has other columns or a value will not cast."""
    if batch.schema.names != stream.target.names:
        return None
    if batch.schema.equals(stream.target):
        return batch
    try:
        return stream.caster.cast(batch, stream.target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None

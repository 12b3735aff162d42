"""dlt's Postgres destination as Headwater loads it: streamed COPY, columns that widen, file-ordered merges.

- **Merges cost the delta.** Every merge table has an index on its primary key
  (headwater.postgres.key_indexes), so the merge finds the rows it replaces without reading the table.

- **Streamed COPY.** dlt's own ADBC job hands the driver a Python generator of batches, which the
  driver turns into one in-memory table before copying: a load file's whole content sits in memory
  at once. Handing it a RecordBatchReader instead lets the driver pull one batch at a time while it
  copies, so memory stays flat however many rows a table loads. Each batch is cast to the table's
  column types on the way (a file written before its column widened holds the narrower type).
- **Rows copied ahead.** A copy job whose table was COPY'd during extract (headwater.postgres.copy_ahead)
  commits that COPY when it took exactly the rows it was given: the load file's, and the rows sent to it
  alone (in no file). When it took only the file's rows and fails, the job copies the file instead; when it
  took rows alone, those cannot be copied again, and the job fails with ``COPIED_ROWS_LOST``.
  Rows a source passed straight into the table (copy_ahead's ``PassedThrough``) are committed after the file's.
- **Recorded with the rows.** Every transaction that commits a job's rows also records the job's load id
  and table in ``headwater_ops.open_loads`` (headwater.postgres.copy_streams.OpenLoad), so a run on another
  machine can remove them if the load never completes (headwater.load.recovery).
- **Refused rows, or a lost connection.** When Postgres refuses the rows (a value its column cannot
  hold) the job fails terminally with Postgres's reason, and headwater.load.refusals sets the refused
  rows aside; when the connection or the server fails instead, the job fails as transient and is
  loaded again (``refuses_data`` tells the two apart).
- **Columns that widen.** dlt creates tables and adds columns but never changes a column's type;
  when its schema has widened one (headwater.common.widening), the schema update alters it
  (headwater.postgres.column_migrations), in the same transaction.
- **The latest version of a key wins.** When one load holds several versions of a key read from
  landing files, the merge keeps the one from the most recently modified file, then the latest line
  (after `deduplicate_by`, when the table has one); dlt alone would keep an arbitrary one.
"""

from __future__ import annotations

import logging
import re
from typing import Type

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from adbc_driver_manager import DatabaseError, OperationalError
from dlt.common.destination.exceptions import DestinationTerminalException, DestinationTransientException
from dlt.common.libs.pyarrow import get_py_arrow_datatype
from dlt.common.utils import without_none
from dlt.destinations import postgres as dlt_postgres
from dlt.destinations.impl.postgres.postgres import PostgresClient, PostgresParquetCopyJob
from dlt.destinations.sql_jobs import SqlMergeFollowupJob

from headwater.common.file_rows import FILE_COLUMN, LINE_COLUMN, MODIFIED_COLUMN, REPLACES_FILES_HINT
from headwater.common.widening import ALL_NULL_HINT, LATTICE, is_text, is_widening
from headwater.postgres import copy_ahead
from headwater.postgres.binary_copy import copy_binary, encodable
from headwater.postgres.column_migrations import ColumnChange, change_column_types, holds_only_nulls
from headwater.postgres.column_types import (
    JSONB,
    UNCHANGED_COLUMNS,
    copy_into,
    destination_types,
    quoted,
    with_exact_types,
    with_jsonb_columns,
)
from headwater.postgres.copy_streams import OpenLoad, PartialCopy, copy_in_streams, copy_streams
from headwater.postgres.key_indexes import sync_key_indexes, wanted_index

log = logging.getLogger(__name__)

# The column dlt gives every row: the load that wrote it.
LOAD_ID_COLUMN = "_dlt_load_id"
# Rows per batch handed to the driver: each becomes one chunk of COPY data.
COPY_BATCH_ROWS = 64 * 1024
# Types a column created as text from nothing but nulls may take from its first values.
FROM_NULLS = (LATTICE - {"text"}) | {"json"}


class StreamingParquetCopyJob(PostgresParquetCopyJob):
    """A Parquet load file copied into its table: by pgpq's binary COPY when every column's Arrow type is
    the binary form its destination column reads (headwater.postgres.binary_copy), else by the ADBC driver.

    ``_connect`` opens the psycopg connections of the pgpq path (and of undoing a copy committed in part);
    ``_connect_driver`` the ADBC ones of the driver's path.
    """

    def run(self) -> None:
        columns = (self._load_table or {}).get("columns", {})
        table = self._load_table["name"] if self._load_table else self.load_table_name
        catalog_name, schema_name = self._set_catalog_and_schema()
        copy = FileCopy(columns, self._job_client.capabilities, f"{schema_name}.{table}")
        partial = PartialCopy(self._file_path, self.job_id())
        self._opened = OpenLoad(schema_name, table, self._load_id, (self._load_table or {}).get("parent"))
        try:
            ahead = copy_ahead.take(schema_name, table, self._load_id)
        except copy_ahead.StreamedRowsLost as lost:
            raise DestinationTerminalException(str(lost)) from None
        if ahead is not None and ahead.alone:
            self._commit_alone(ahead, copy)
        elif ahead is None or not self._commit_ahead(ahead, copy, partial):
            self._copy_file(copy, catalog_name, schema_name, partial)
        passed = copy_ahead.passed_through(schema_name, table, self._load_id)
        if passed is not None and passed.state != "committed":
            self._commit_passed(passed, copy)

    def _copy_file(self, copy: FileCopy, catalog_name, schema_name: str, partial: PartialCopy) -> None:
        try:
            if partial.left_behind():  # an earlier try committed some of its streams
                self._delete_partial_copy(schema_name)
                partial.clear()
            if not self._copy_binary(copy, schema_name, partial):
                self._copy_through_driver(copy, catalog_name, schema_name, partial)
        except Exception as error:
            if copy.cast_failure is not None:  # a value Arrow cannot cast: copying it again cannot help
                raise DestinationTerminalException(copy.cast_failure) from None
            if not isinstance(error, (DatabaseError, psycopg.Error)):
                raise
            if not refuses_data(error):  # the connection or the server failed, not the rows: dlt retries
                raise DestinationTransientException(
                    f"Postgres failed while copying into {copy.where}, not because of the rows (the load "
                    f"is kept and tried again): {_first_line(error)}") from None
            # the rows themselves are refused: loading them again cannot help
            raise DestinationTerminalException(copy.refused(error, files_of(self._file_path))) from None

    def _commit_ahead(self, ahead: copy_ahead.AheadStream, copy: FileCopy, partial: PartialCopy) -> bool:
        """Commit the rows copied ahead during extract (headwater.postgres.copy_ahead) when they are exactly the
        file's; False, with them rolled back, when the file must be copied instead."""
        with pq.ParquetFile(self._file_path) as parquet:
            rows = parquet.metadata.num_rows
        if ahead.end() != rows or partial.left_behind():
            ahead.roll_back()
            return False
        partial.write()  # from here until the commit is known to be through, the rows may be in the table
        try:
            ahead.record(self._opened)
            ahead.commit()
        except psycopg.Error as error:  # the outcome is unknown: the retry deletes the load id first
            ahead.roll_back()  # what is left uncommitted, and the connections
            raise DestinationTransientException(
                f"Postgres failed while committing the rows copied ahead into {copy.where} (the load is kept "
                f"and tried again): {_first_line(error)}") from None
        partial.clear()
        log.info("%s: %d rows copied during extract, committed by the load job", copy.where, rows)
        return True

    def _commit_alone(self, ahead: copy_ahead.AheadStream, copy: FileCopy) -> None:
        """Commit the rows copied ahead during extract, some of which went to the COPY alone (in no load file):
        the file's rows and those. Nothing here copies the file in their place: on any failure the job fails
        with ``COPIED_ROWS_LOST`` (the stream stays marked lost, so a retry of this job fails too), and the
        load is discarded and read again (headwater.load.pipeline; after a kill, headwater.load.recovery)."""
        try:
            with pq.ParquetFile(self._file_path) as parquet:
                rows = parquet.metadata.num_rows + ahead.alone
            copied = ahead.end()
            if copied != rows:
                why = _first_line(ahead.errors[0]) if ahead.errors else f"it took {copied} rows of {rows}"
                raise copy_ahead.StreamedRowsLost(f"the COPY into {copy.where} during extract failed ({why})")
            ahead.record(self._opened)
            ahead.commit()
        except Exception as error:  # (interrupted instead, the mark take left makes a retry fail the same)
            ahead.roll_back()  # what is left uncommitted, and the connections
            why = str(error) if isinstance(error, copy_ahead.StreamedRowsLost) else (
                f"committing the rows copied into {copy.where} during extract failed ({_first_line(error)})")
            raise DestinationTerminalException(ahead.lose(why)) from None
        ahead.committed()
        if ahead.run is not None:
            ahead.run.count_passed(ahead.table, ahead.alone)  # dlt counts the file's rows only
        log.info("%s: %d rows copied during extract (%d in no load file), committed by the load job", copy.where,
                 rows, ahead.alone)

    def _commit_passed(self, passed: copy_ahead.PassedThrough, copy: FileCopy) -> None:
        """Commit the rows a source passed straight into the table during extract (headwater.postgres.copy_ahead),
        after the file's. They are in no file: when they were rolled back or their commit fails, this load can
        never complete: it is discarded and the rows read again (headwater.load.pipeline; after a kill,
        headwater.load.recovery)."""
        if passed.state == "waiting":
            try:
                passed.record(self._opened)
                passed.commit()
            except psycopg.Error as error:
                passed.roll_back()  # when recording failed: nothing was committed
                raise DestinationTerminalException(_lost(passed, copy, f"their commit failed: {_first_line(error)}")
                                                   ) from None
            log.info("%s: %d rows passed through from the source, committed by the load job", copy.where,
                     passed.rows)
        else:
            raise DestinationTerminalException(_lost(passed, copy, "they were rolled back"))

    def _connect(self) -> psycopg.Connection:
        credentials = self._job_client.config.credentials
        return psycopg.connect(credentials.to_native_representation(), client_encoding="utf8")

    def _connect_driver(self):
        return super()._connect()

    def _streams(self, parquet: pq.ParquetFile, cores_per_stream: int) -> int:
        # Several streams need the load id on every row: it is how a copy committed in part is undone.
        if LOAD_ID_COLUMN not in parquet.schema_arrow.names:
            return 1
        return copy_streams(parquet.metadata.num_rows, cores_per_stream)

    def _copy_binary(self, copy: FileCopy, schema_name: str, partial: PartialCopy) -> bool:
        """Copy the file by pgpq's binary COPY; False, with nothing written, when its columns cannot go that
        way or when Postgres or pgpq refuses its rows: the driver's copy then reports the refusal as the
        search for the refused rows (headwater.postgres.refused_rows) will find it."""
        # pre_buffer=False: with it, the reader keeps buffers of every batch already read.
        with pq.ParquetFile(self._file_path, pre_buffer=False) as parquet:
            batches = copy.reader(parquet.schema_arrow, parquet.iter_batches(batch_size=COPY_BATCH_ROWS))
            streams = self._streams(parquet, cores_per_stream=1)  # a misset HEADWATER_COPY_STREAMS stops here
            # The connection that reads the table's types copies too (the first stream): one connection a job.
            unused = [self._connect()]

            def connect():
                return unused.pop() if unused else self._connect()

            try:
                types = destination_types(unused[0], schema_name, self.load_table_name)
                if not encodable(batches.schema, types):
                    return False
                jsonb = [field.name for field in batches.schema
                         if is_text(field.type) and types.get(field.name) == JSONB]
                if jsonb:
                    batches = with_jsonb_columns(batches, jsonb)

                def copy_batches(cursor, reader: pa.RecordBatchReader):
                    return copy_binary(cursor, schema_name, self.load_table_name, reader.schema, reader)

                self._copy(copy_batches, streams, batches, partial, connect)
            except (psycopg.Error, ValueError) as error:
                # ValueError: pgpq could not encode a value; psycopg: Postgres refused one, or the connection failed
                if isinstance(error, psycopg.Error) and not refuses_data(error):
                    raise
                if copy.cast_failure is not None:
                    raise
                return False
            finally:
                for connection in unused:
                    connection.close()  # closed, not committed: it wrote nothing
        return True

    def _copy_through_driver(self, copy: FileCopy, catalog_name, schema_name: str, partial: PartialCopy) -> None:
        ingest = without_none({"catalog_name": catalog_name, "db_schema_name": schema_name})
        with pq.ParquetFile(self._file_path, pre_buffer=False) as parquet:
            batches = copy.reader(parquet.schema_arrow, parquet.iter_batches(batch_size=COPY_BATCH_ROWS))

            def copy_batches(cursor, reader: pa.RecordBatchReader):
                # copy_into: adbc_ingest, with jsonb and text bound for other types made copyable (column_types)
                return copy_into(cursor, self.load_table_name, reader, **ingest)

            self._copy(copy_batches, self._streams(parquet, cores_per_stream=2), batches, partial,
                       connect=self._connect_driver)

    def _copy(self, copy_batches, streams: int, batches: pa.RecordBatchReader, partial: PartialCopy,
              connect=None) -> None:
        connect = connect or self._connect
        if streams == 1:
            with connect() as connection:
                with connection.cursor() as cursor:
                    copy_batches(cursor, batches)
                self._opened.record(connection)
                connection.commit()
        else:
            copy_in_streams(connect, streams, batches, copy_batches, partial, self._opened)

    def _delete_partial_copy(self, schema_name: str) -> None:
        """Delete this job's load id from its table: the rows of streams an interrupted try committed."""
        target = f"{quoted(schema_name)}.{quoted(self.load_table_name)}"
        with self._connect() as connection:
            connection.execute(f"DELETE FROM {target} WHERE {quoted(LOAD_ID_COLUMN)} = %s", (self._load_id,))
            connection.commit()


# SQLSTATE classes of failures that are not about the rows: connection exceptions (08), transaction
# rollbacks such as deadlocks (40), insufficient resources (53), locks not available (55), operator
# intervention such as a server shutting down (57), system errors (58). A retry may succeed.
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})
# Binary COPY data the server cannot read as the column's type: a protocol violation about the rows.
BINARY_DATA_REFUSED = "08P01"


def _lost(passed: copy_ahead.PassedThrough, copy: FileCopy, why: str) -> str:
    return (f"{copy_ahead.PASSED_ROWS_LOST}: the {passed.rows} rows passed through into {copy.where} are not in the "
            f"table ({why}); this load cannot complete")


def refuses_data(error: Exception) -> bool:
    """Postgres (or the driver) refused the rows, so copying them again fails again; False when the
    connection or the server failed (a lost connection, a shutdown, a deadlock), which a retry may get past.

    Errors of both drivers are told apart: ADBC's (the driver's path) and psycopg's (pgpq's path)."""
    if isinstance(error, DestinationTerminalException):
        return True
    if isinstance(error, psycopg.Error):
        connection_failed = isinstance(error, psycopg.OperationalError)
    elif isinstance(error, DatabaseError):
        connection_failed = isinstance(error, OperationalError)
    else:
        return False
    state = getattr(error, "sqlstate", None) or ""
    if state:
        return state == BINARY_DATA_REFUSED or state[:2] not in TRANSIENT_SQLSTATE_CLASSES
    # No SQLSTATE: the driver's own failures name what they could not do with the data (InternalError,
    # ProgrammingError...); a bare OperationalError is a connection the server closed or never opened.
    return not connection_failed


class FileCopy:
    """A load file's batches as the table's columns take them, and what to say when they are refused.

    Each batch is cast to the table's column types on the way (a file written before its column
    widened holds the narrower type). A value Arrow cannot cast ends the copy; ``cast_failure`` then
    says which column, type and files, because the driver reports it only as a failed stream.
    """

    def __init__(self, columns: dict, capabilities, where: str):
        self.columns = columns  # dlt's columns of the table, as the load has them
        self.capabilities = capabilities
        self.where = where  # schema.table, for messages
        self.cast_failure: str | None = None

    def reader(self, file_schema: pa.Schema, batches) -> pa.RecordBatchReader:
        target = self.target_schema(file_schema)
        if not target.equals(file_schema):
            batches = (self.cast(batch, target) for batch in batches)
        return pa.RecordBatchReader.from_batches(target, batches)

    def target_schema(self, file_schema: pa.Schema) -> pa.Schema:
        """The file's columns in the types the table has (dlt's schema of this load)."""
        fields = []
        for field in file_schema:
            column = self.columns.get(field.name)
            # Text stays text: for a text column any string type will do, and text bound for another type is
            # a value Postgres converts itself (column_types.copy_into).
            if column and column.get("data_type") in LATTICE and not is_text(field.type):
                wanted = get_py_arrow_datatype(column, self.capabilities, "UTC")
                if wanted != field.type:
                    field = pa.field(field.name, wanted, nullable=field.nullable)
            fields.append(field)
        return pa.schema(fields)

    def cast(self, batch: pa.RecordBatch, target: pa.Schema) -> pa.RecordBatch:
        """``batch`` in ``target``'s types (same columns, in order); raises when a value does not cast."""
        arrays = []
        for field, array in zip(target, batch.columns, strict=True):
            if array.type == field.type:
                arrays.append(array)
                continue
            try:
                if pa.types.is_timestamp(array.type) and array.type.tz is None and field.type.tz:
                    array = pc.assume_timezone(array, "UTC")  # no zone means UTC, for every source
                arrays.append(pc.cast(array, field.type, safe=False))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                self.cast_failure = self._cast_message(batch, field, array, error)
                raise
        return pa.RecordBatch.from_arrays(arrays, schema=target)

    def _cast_message(self, batch: pa.RecordBatch, field: pa.Field, array, error: Exception) -> str:
        names = sorted(set(pc.unique(batch.column(FILE_COLUMN)).to_pylist()) - {None}) if (
            FILE_COLUMN in batch.schema.names) else []
        files = f" (from {', '.join(names[:5])}{' and more' if len(names) > 5 else ''})" if names else ""
        return (f"column {field.name!r} of {self.where} is {field.type} but this load holds "
                f"{array.type} values{files} that do not fit it: {_first_line(error)}")

    def refused(self, error: Exception, files: str = "", rows: str = "rows") -> str:
        """Postgres's reason for refusing ``rows``, naming the table, the column when known, and the files."""
        where, detail = self.refusal(error)
        return f"Postgres refused {rows} for {where}{f' from {files}' if files else ''}: {detail}"

    def refusal(self, error: Exception) -> tuple[str, str]:
        """(the table, and the column when Postgres names it; Postgres's own message)."""
        message = str(error)
        detail = next((line.split("ERROR:", 1)[1].strip() for line in message.splitlines() if "ERROR:" in line),
                      _first_line(error))
        column = re.search(r"COPY [^,]+, line \d+, column (\S+)", message)
        return self.where + (f" column {column.group(1).rstrip(':')}" if column else ""), detail


def files_of(file_path: str) -> str:
    """The landing files a load file's rows come from, for messages: a few names, then how many more."""
    try:
        names = pq.read_table(file_path, columns=[FILE_COLUMN]).column(FILE_COLUMN).unique().to_pylist()
    except (KeyError, pa.ArrowException):  # rows that do not come from files
        return ""
    names = sorted(name for name in names if name)
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class FileOrderedMergeJob(SqlMergeFollowupJob):
    """dlt's merge for rows read from landing files: a file read again replaces its own earlier rows (also
    those whose key it no longer holds), and of several versions of a key the newest file's, then the
    latest line's, wins."""

    version_order: str | None = None  # set on a per-table subclass (the SQL generators are classmethods)

    @classmethod
    def generate_sql(cls, table_chain, sql_client):
        root = table_chain[0]
        columns = root.get("columns", {})
        if UNCHANGED_COLUMNS in columns:
            return _kept_values(root, sql_client) + super().generate_sql(table_chain, sql_client)
        if cls.version_order is not None or not {FILE_COLUMN, MODIFIED_COLUMN, LINE_COLUMN} <= set(columns):
            return super().generate_sql(table_chain, sql_client)
        order = (f"{sql_client.escape_column_name(MODIFIED_COLUMN)} DESC, "
                 f"{sql_client.escape_column_name(LINE_COLUMN)} DESC")
        ordered = type(cls.__name__, (cls,), {"version_order": order})
        statements = ordered.generate_sql(table_chain, sql_client)
        if root.get("x-merge-strategy", "delete-insert") != "delete-insert" or not root.get(REPLACES_FILES_HINT):
            return statements
        return _file_scoped_deletes(table_chain, sql_client) + statements

    @classmethod
    def gen_select_from_dedup_sql(cls, table_name, primary_keys, columns, dedup_sort=None, condition=None,
                                  condition_columns=None, skip_dedup=False):
        if cls.version_order is not None:
            # A declared deduplicate_by decides first; the file version breaks its ties.
            first = f"{dedup_sort[0]} {dedup_sort[1].upper()}, " if dedup_sort else ""
            dedup_sort = (f"{first}{cls.version_order}", "")
        return super().gen_select_from_dedup_sql(table_name, primary_keys, columns, dedup_sort, condition,
                                                 condition_columns, skip_dedup)


def _kept_values(root: dict, sql_client) -> list[str]:
    """Staged rows that name columns in UNCHANGED_COLUMNS take those columns' values from the row they replace."""
    columns = root.get("columns", {})
    keys = [name for name, hints in columns.items() if hints.get("primary_key")]
    kept = [name for name, hints in columns.items() if name not in keys and not name.startswith(("_dlt_", "_cdc_"))
            and not hints.get("x-valid-from") and not hints.get("x-valid-to") and not hints.get("x-row-version")]
    if not keys or not kept:
        return []
    quote = sql_client.escape_column_name
    marker = quote(UNCHANGED_COLUMNS)
    target = sql_client.make_qualified_table_name(root["name"])
    with sql_client.with_staging_dataset():
        staged = sql_client.make_qualified_table_name(root["name"])
    values = ", ".join(
        f"{quote(name)} = CASE WHEN s.{marker}::jsonb ? {_literal(name)} THEN d.{quote(name)} ELSE s.{quote(name)} END"
        for name in kept)
    same_key = " AND ".join(f"s.{quote(key)} = d.{quote(key)}" for key in keys)
    # An scd2 table holds a key's versions: the values kept are the current version's.
    same_key += "".join(f" AND d.{quote(name)} IS NULL" for name, hints in columns.items() if hints.get("x-valid-to"))
    return [f"UPDATE {staged} AS s SET {values}, {marker} = NULL FROM {target} AS d "
            f"WHERE {same_key} AND s.{marker} IS NOT NULL;"]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_scoped_deletes(table_chain, sql_client) -> list[str]:
    """Delete the rows of the files this load holds, before the merge inserts the files' rows again."""
    file_column = sql_client.escape_column_name(FILE_COLUMN)
    root = sql_client.make_qualified_table_name(table_chain[0]["name"])
    with sql_client.with_staging_dataset():
        staged = sql_client.make_qualified_table_name(table_chain[0]["name"])
    files = f"SELECT DISTINCT {file_column} FROM {staged}"
    statements = []
    root_id, row_id = sql_client.escape_column_name("_dlt_root_id"), sql_client.escape_column_name("_dlt_id")
    for nested in table_chain[1:]:  # nested rows first: they are found through their root row
        statements.append(f"DELETE FROM {sql_client.make_qualified_table_name(nested['name'])} WHERE {root_id} IN "
                          f"(SELECT {row_id} FROM {root} WHERE {file_column} IN ({files}));")
    statements.append(f"DELETE FROM {root} WHERE {file_column} IN ({files});")
    return statements


class StreamingPostgresClient(PostgresClient):
    def create_load_job(self, table, file_path: str, load_id: str, restore: bool = False):
        job = super().create_load_job(table, file_path, load_id, restore)
        if type(job) is PostgresParquetCopyJob:
            job = StreamingParquetCopyJob(file_path)
        return job

    def _create_merge_followup_jobs(self, table_chain):
        return [FileOrderedMergeJob.from_table_chain(table_chain, self.sql_client)]

    def update_stored_schema(self, only_tables=None, expected_update=None, force: bool = False):
        applied = super().update_stored_schema(only_tables, expected_update, force)
        if not self.sql_client.is_staging_dataset_active:  # staging tables are emptied each load: no lookups
            self._index_merge_keys(only_tables or self.schema.tables.keys())
        return applied

    def _index_merge_keys(self, tables) -> None:
        """Every merge table this load writes gets an index on its key (headwater.postgres.key_indexes).

        Checked on every load, not only when dlt's schema changed: tables created before Headwater
        indexed keys get theirs on their next load, and a table no longer merged loses it.
        """
        dlt_tables = set(self.schema.dlt_table_names())
        wanted = {name: wanted_index(self.prepare_load_table(name)) for name in tables
                  if name in self.schema.tables and name not in dlt_tables}
        dataset = self.sql_client.dataset_name
        if wanted:
            with self.sql_client.begin_transaction():
                # A table copied ahead is held by its open COPY until its job runs: that COPY gives way first.
                sync_key_indexes(self.sql_client, wanted,
                                 before_change=lambda table: copy_ahead.abandon_for_schema_update(dataset, table))

    def _execute_schema_update_sql(self, only_tables, store_schema: bool = True):
        storage_tables = self.get_storage_tables(only_tables or self.schema.tables.keys())
        ahead = copy_ahead.waiting_tables(self.sql_client.dataset_name)
        for table_name, storage_columns in storage_tables:
            changes = self._column_changes(table_name, storage_columns) if storage_columns else []
            if table_name in ahead and (changes or self._create_table_update(table_name, storage_columns)):
                # The ALTER would wait for the COPY that waits for this load: the file is copied instead.
                copy_ahead.abandon_for_schema_update(self.sql_client.dataset_name, table_name)
            if changes:
                change_column_types(self.sql_client, self.sql_client.make_qualified_table_name(table_name), changes)
        return super()._execute_schema_update_sql(only_tables, store_schema)

    def _stored_type(self, stored: dict, table_name: str) -> str | None:
        """The SQL type of a column as the destination reports it. dlt reads an integer column back with its
        precision (bigint: 64), which its schema leaves out: the same type, not one to widen to."""
        try:
            return self.type_mapper.to_destination_type(stored, self.prepare_load_table(table_name))
        except Exception:  # a type dlt cannot name back: compare by dlt's types alone
            return None

    def _column_changes(self, table_name: str, storage_columns: dict) -> list[ColumnChange]:
        """The columns whose type dlt's schema has widened since the table was created."""
        schema_columns = self.schema.get_table_columns(table_name)
        qualified = self.sql_client.make_qualified_table_name(table_name)
        changes = []
        for name, stored in storage_columns.items():
            column = schema_columns.get(name)
            if not column or not column.get("data_type") or column.get(ALL_NULL_HINT):
                continue
            escaped = self.sql_client.escape_column_name(name)
            db_type = self.type_mapper.to_destination_type(column, self.prepare_load_table(table_name))
            if is_widening(stored, column) and db_type != self._stored_type(stored, table_name):
                changes.append(ColumnChange(escaped, db_type))
            elif (stored.get("data_type") == "text" and column["data_type"] in FROM_NULLS
                  and holds_only_nulls(self.sql_client, qualified, escaped)):
                # Created as text from nothing but nulls: it takes the type of its first values.
                changes.append(ColumnChange(escaped, db_type, from_nulls=True))
        return changes


class postgres(dlt_postgres):  # noqa: N801 - dlt names a destination after its factory class
    """Postgres as dlt knows it, with Headwater's copy job, column widening and file-ordered merges.

    Columns get headwater.postgres.column_types' mapping: JSON as jsonb, unconstrained decimals as bare numeric.
    """

    def _raw_capabilities(self):
        return with_exact_types(super()._raw_capabilities())

    @property
    def client_class(self) -> Type[PostgresClient]:
        return StreamingPostgresClient

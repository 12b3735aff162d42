"""A table's rows as of a slot's exported snapshot, streamed as Arrow batches of PostgreSQL's text.

The read runs in a transaction that took the snapshot the slot exported, so it holds exactly the
transactions committed before the slot's consistent point: the stream that follows starts where it ends.
COPY's CSV keeps NULL (unquoted, empty) apart from the empty string (quoted), and pyarrow parses it in
native code without holding the table in memory.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

BLOCK_BYTES = 8 << 20


class _CopyStream(io.RawIOBase):
    """COPY ... TO STDOUT as a readable file, one chunk from the server at a time."""

    def __init__(self, copy):
        self._copy, self._pending = copy, memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = self._copy.read()
            if not chunk:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def open_snapshot(connection: psycopg.Connection, snapshot: str) -> None:
    """Start a transaction of the autocommit ``connection`` in the exported ``snapshot`` (while its slot's
    connection still holds it)."""
    connection.execute("begin isolation level repeatable read read only")
    connection.execute(sql.SQL("set transaction snapshot {}").format(sql.Literal(snapshot)))


def snapshot_batches(connection: psycopg.Connection, schema: str, table: str,
                     columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
    """Every row of ``schema.table`` in the connection's snapshot transaction (open_snapshot); text columns."""
    query = sql.SQL("copy (select {} from {}) to stdout (format csv)").format(
        sql.SQL(", ").join(sql.Identifier(column) for column in columns), sql.Identifier(schema, table))
    with connection.cursor().copy(query) as copy:
        reader = pacsv.open_csv(
            io.BufferedReader(_CopyStream(copy), BLOCK_BYTES),
            read_options=pacsv.ReadOptions(column_names=list(columns), block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={column: pa.string() for column in columns}, null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=False),
        )
        for batch in reader:
            if batch.num_rows:
                yield batch
    connection.execute("commit")

"""How many streams read the middle of a table's window side by side, and which rows each reads.

A COPY keeps about one core busy on each side (the source server encoding, the destination decoding and
writing), so a large first load gets several: each its own source connection, reading in the same exported
snapshot as the others, and its own destination COPY (connectors.sql_database.pass_through).

Each stream reads one range of the table, chosen so that together they read every row of the window once:

- **pages** (``ctid`` ranges): a plain table on PostgreSQL 14 or later, where a TID range scan reads only the
  range's pages. Any table has them, key or not; the last range is open-ended, so a page added after the size
  was read is still read (it holds no row of the snapshot, but nothing depends on that).
- **cursor** ranges: an integer cursor split evenly between its lowest value in the window and the window's
  end, for a relation without pages of its own (a partitioned table, a view) or an older server.
- otherwise one stream reads the whole window.

``HEADWATER_PARALLEL_STREAMS`` sets the number of streams (1 turns them off; unset: one per two cores, at most
``MAX_STREAMS``, since each stream keeps two server processes busy, one per side: on two cores a second stream
only contends with the first, benchmarks/parallel_full_load.py); a window gets one stream per
``HEADWATER_PARALLEL_MIN_ROWS`` rows at most, so a small one is not split (opening connections would cost more
than it saves).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.sql import sqltypes

from headwater.postgres.copy_ahead import whole_number_setting

STREAMS_VARIABLE = "HEADWATER_PARALLEL_STREAMS"
MIN_ROWS_VARIABLE = "HEADWATER_PARALLEL_MIN_ROWS"
MAX_STREAMS = 4
# Rows each stream should read at least.
MIN_ROWS_PER_STREAM = 250_000
# TID range scans (a ctid range reads only its pages) came with PostgreSQL 14.
TID_RANGE_SCANS = 140000


def stream_count(rows: int) -> int:
    """How many streams read a window of ``rows`` rows."""
    cores = os.cpu_count() or 1
    wanted = whole_number_setting(STREAMS_VARIABLE, max(1, min(MAX_STREAMS, cores // 2)), "streams (1 turns them off)")
    per_stream = max(1, whole_number_setting(MIN_ROWS_VARIABLE, MIN_ROWS_PER_STREAM, "rows per stream"))
    return max(1, min(wanted, rows // per_stream))


@dataclass(frozen=True)
class RangePlan:
    """The ranges the streams read: ``split`` is pages, cursor or whole; ``low`` and ``high`` the first and last
    page (or cursor value) split between ``streams`` streams."""

    split: str
    streams: int
    low: int = 0
    high: int = 0

    def with_streams(self, streams: int) -> RangePlan:
        return RangePlan(self.split, max(1, min(streams, self.streams)), self.low, self.high)

    def bounds(self) -> list[tuple[int | None, int | None]]:
        """Each stream's range [low, high): None is open on that side (the first and the last range)."""
        if self.split == "whole" or self.streams == 1:
            return [(None, None)]
        cuts = [self.low + (self.high - self.low) * number // self.streams for number in range(1, self.streams)]
        return list(zip([None, *cuts], [*cuts, None], strict=True))

    def conditions(self, cursor: sa.ColumnElement) -> list[Any]:
        """One SQL condition per stream (None: every row of the window)."""
        column = sa.literal_column("ctid") if self.split == "pages" else cursor
        conditions = []
        for low, high in self.bounds():
            parts = []
            if low is not None:
                parts.append(column >= self._value(low))
            if high is not None:
                parts.append(column < self._value(high))
            conditions.append(sa.and_(*parts) if parts else None)
        return conditions

    def _value(self, bound: int):
        # page N's first row: offset 0 is below any row's
        return sa.literal_column(f"'({bound},0)'::tid") if self.split == "pages" else sa.literal(bound)

    def describe(self) -> str:
        if self.split == "whole" or self.streams == 1:
            return "1 stream"
        unit = "pages" if self.split == "pages" else "cursor values"
        ranges = ", ".join(f"[{'' if low is None else low}, {'' if high is None else high})"
                           for low, high in self.bounds())
        return f"{self.streams} streams by {unit} {ranges}"


def plan_ranges(source: psycopg.Connection, relation: str, table: sa.Table, cursor: sa.Column, middle: Any,
                rows: int, compile_sql) -> RangePlan:
    """The ranges of ``table`` (``relation``: its name quoted as SQL) whose window (condition ``middle``) holds
    ``rows`` rows, read in ``source``'s snapshot. ``compile_sql``: a query as the SQL text psycopg sends."""
    streams = stream_count(rows)
    if streams == 1:
        return RangePlan("whole", 1)
    pages, relkind = source.execute(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::bigint, c.relkind "
        "FROM pg_class c WHERE c.oid = to_regclass(%s)", (relation,)).fetchone() or (0, None)
    if relkind in ("r", "m") and source.info.server_version >= TID_RANGE_SCANS and pages >= streams:
        return RangePlan("pages", streams, 0, pages)
    if isinstance(cursor.type, sqltypes.Integer):
        query = sa.select(sa.func.min(cursor), sa.func.max(cursor)).select_from(table).where(middle)
        low, high = source.execute(compile_sql(query)).fetchone()
        if low is not None and high is not None and high - low >= streams:
            return RangePlan("cursor", streams, low, high + 1)
    return RangePlan("whole", 1)


def export_snapshot(source: psycopg.Connection) -> str:
    """The id of ``source``'s snapshot, which other connections take with SET TRANSACTION SNAPSHOT while
    ``source``'s transaction stays open."""
    return source.execute("SELECT pg_export_snapshot()").fetchone()[0]


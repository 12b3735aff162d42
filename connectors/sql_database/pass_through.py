"""A large PostgreSQL table passed to Postgres as the source server sends it: binary COPY out, binary COPY in.

Read as Arrow, a PostgreSQL table is decoded by connectorx, written to a load file and encoded again for the
destination's COPY: the client works on every value twice. When source and destination are both PostgreSQL
and every column has a type whose binary form the destination column reads once cast on the source, the
rows can go from the source's ``COPY (SELECT ...) TO STDOUT (FORMAT binary)`` straight into the
destination's ``COPY ... FROM STDIN (FORMAT binary)``, the client only moving bytes. The source casts each
column to its destination column's declared type and adds the load id as a constant, so the table gets
exactly what the Arrow path gives it.

**Only the middle of the cursor's window.** dlt's incremental step decides where the next run starts: the
cursor's last value and the keys of the rows that hold it. So it must see those rows. In one REPEATABLE READ
snapshot of the source, the cursor's highest value (``end``) is read, then the rows at the window's edges
(the cursor at the last value, at ``end`` or NULL), through a server-side cursor into the Arrow tables the
pyarrow backend gives (``arrow_from_rows``); they go through dlt first. Only the rows strictly between are
passed, from the same snapshot. A row committed late, with a cursor under ``end``, is missed as any
incremental read misses it.

**Which tables.** PostgreSQL sources read by connectorx, into a run with copy ahead on (a Postgres
destination, headwater.postgres.copy_ahead decides the rest: append tables no step, rule or protection
changes, columns as dlt's schema has them; a refreshed one emptied first); an incremental cursor taking the
maximum, with no end value, row order or limit; at least ``copy_ahead.min_rows()`` rows in the window; only the column
types in ``PASSED_TYPES`` and decimals the destination column holds unchanged; and no value that Arrow or
the driver cannot hold, or holds otherwise than a cast (a decimal NaN, an infinite date, a year after
9999), in the window: such a window is read as Arrow whole, where that value fails or is quarantined as it
always was. Anything else is read as Arrow; so is everything when ``HEADWATER_PASS_THROUGH=off``.

**What the window costs.** Without an index on the cursor, one scan of the table finds the window's top,
its rows and any such value before the pass. With a B-tree index leading with the cursor, as an incremental
source's should have, the index gives the top, the rows above the last value and the edges; a whole table's
rows are the planner's estimate (counted when it has none); such values are looked for among the edge rows
only, and the middle's COPY fails on the first it meets (rolled back: the middle is read as Arrow).

**Several streams for a large window** (connectors.sql_database.parallel_ranges): the middle is split into
ranges (pages of the table, or of an integer cursor), each read by its own source connection in the pass's
snapshot (exported by the connection that read the window, imported by the others) and written by its own
destination COPY; all are committed by the table's copy job, or all rolled back.

**Exact under kills.** The COPY into the destination stays open until the table's copy job commits it; a
package whose passed rows were not committed is discarded by the next run and its rows read again
(headwater.load.recovery), found by the table list this module writes into the package's state; a next run
without that package (another machine) finds the load in headwater_ops.open_loads, which the copy job writes
with the rows it commits, deletes what it committed, and reads the rows again. A pass that
fails (a value the destination refuses, a lost connection) is rolled back and the middle is read as Arrow,
where a refused row goes to the quarantine with its reason.
"""

from __future__ import annotations

import logging
import os
import re
import select
import threading
from collections.abc import Callable, Iterator
from typing import Any

import dlt
import psycopg
import psycopg.sql
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from dlt.common.storages.load_package import commit_load_package_state
from psycopg import pq
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.sql import sqltypes

from connectors.sql_database import parallel_ranges
from connectors.sql_database.sessions import session_statements
from headwater.common.registry import first_line
from headwater.postgres import copy_ahead

log = logging.getLogger(__name__)

# Source column types passed, and the declared destination types (format_type's prefix) each may be cast to
# without changing a value: the types the Arrow path gives such a column, or a wider one of the same kind.
_INTEGERS = ("smallint", "integer", "bigint")
_FLOATS = ("real", "double precision")
_TEXTS = ("text", "character varying")
_TIMESTAMPS = ("timestamp with time zone", "timestamp without time zone")
PASSED_TYPES: tuple[tuple[type, tuple[str, ...]], ...] = (
    (sqltypes.Boolean, ("boolean",)),
    (sqltypes.Integer, _INTEGERS),
    (sqltypes.Float, _FLOATS),
    (sqltypes.Date, ("date",)),
    (sqltypes.DateTime, _TIMESTAMPS),
    (sqltypes.Text, _TEXTS),
    (sqltypes.VARCHAR, _TEXTS),
    # json's text, cast to jsonb on the source, is what the Arrow path's text gives the jsonb column; a value
    # jsonb refuses (a \u0000 escape) fails the source's COPY, and the window is read as Arrow instead
    (sqltypes.JSON, ("jsonb",)),
)
SWITCH_VARIABLE = "HEADWATER_PASS_THROUGH"  # off: every table read as Arrow
# The column dlt gives every row: the load that wrote it.
LOAD_ID_COLUMN = "_dlt_load_id"
# Compiles the SQL sent through psycopg without parameters: no driver's placeholder escaping.
_PLAIN_POSTGRES = PGDialect(paramstyle="named")
# The load package state key under which a package records how each passed table was split into streams.
PLANS = "headwater_pass_through_plans"
# Starts the text a guarded COPY fails to cast when it meets a value Arrow gives otherwise (_copy_statement).
ODD_VALUE = "not passed through: "
# Bytes gathered from the source's COPY messages (one per row) before each write to the destination.
CHUNK_BYTES = 256 * 1024


def enabled() -> bool:
    return os.environ.get(SWITCH_VARIABLE, "").strip().lower() not in ("off", "0", "false", "no")


def pass_through_rows(loader) -> Iterator[Any] | None:
    """The table's rows with the middle of its window passed straight to the destination, or None when this
    table is read as Arrow (see the module docstring). ``loader``: the table's ConnectorXArrowLoader."""
    run = copy_ahead.current()
    if run is None or run.keep_files or not enabled() or loader.dialect != "postgresql":
        return None  # (keep_files: a load read again with every row in a load file)
    reason = _why_not(loader)
    if reason is not None:
        log.debug("sql_database: table %s is read as Arrow: %s", loader.table.name, reason)
        return None
    return _PassThrough(loader, run).rows()


def _why_not(loader) -> str | None:
    incremental = loader.incremental
    if incremental is None or loader.cursor_column is None:
        return "no cursor"
    if incremental.last_value_func is not max or loader.end_value is not None or loader.row_order or loader.limit:
        return "the cursor's window is not a plain maximum"
    if loader.query_adapter_callback is not None:
        return "a query adapter"
    for column in loader.table.columns:
        if not loader.columns.get(column.name, {}).get("data_type"):
            return f"column {column.name} has no dlt type"
        if _destination_kinds(column.type) is None:
            return f"column {column.name}: type {column.type}"
    return None


def _destination_kinds(sql_type: Any) -> tuple[str, ...] | None:
    if isinstance(sql_type, (sqltypes.Enum, postgresql.ENUM, sqltypes.CHAR)) and not isinstance(
            sql_type, sqltypes.VARCHAR):
        return None  # an enum's labels, a blank-padded char: text the Arrow path may give otherwise
    if isinstance(sql_type, sqltypes.Numeric) and not isinstance(sql_type, sqltypes.Float):
        return ("numeric",)  # which precision and scale may take its values: _holds_decimal
    for kind, destinations in PASSED_TYPES:
        if isinstance(sql_type, kind):
            return destinations
    return None


class _PassThrough:
    def __init__(self, loader, run: copy_ahead.CopyAhead):
        self.loader, self.run = loader, run
        self.cursor = loader.table.c[loader.cursor_column.name]
        self.last_value = loader.last_value
        self.window_rows = 0  # rows above the last value, read with the window
        self.copy_refuses_odd_values = False  # (_window) no scan looked for them in the middle

    def rows(self) -> Iterator[Any]:
        source, end = self._open_window()
        if source is None:
            yield from self.loader.read_rows()
            return
        passed = None
        try:
            seen_end = False
            for item in self._read_edges(source, end):
                seen_end = seen_end or _reaches(item, self.loader.cursor_column.name, end)
                yield item
            plan = self._plan(source, end) if seen_end else None
            target = self._target(plan.streams) if plan is not None else None
            passed = self._pass(source, target, end, plan) if target is not None else None
        finally:
            source.close()  # read only: nothing to commit; closed before any read as Arrow, which takes a while
        if passed is None:  # the middle as Arrow, read again
            yield from self.loader.read_rows(self._middle(end))

    def _open_window(self) -> tuple[psycopg.Connection | None, Any]:
        """The source connection in the pass's snapshot and the cursor's highest value in the window, or (None,
        None) when the table is read as Arrow: too few rows, a value Arrow cannot hold, or a source this
        connection cannot open as the Arrow path does (it then says why)."""
        try:
            source = psycopg.connect(_conninfo(self.loader.engine.url), autocommit=False, client_encoding="utf8")
        except Exception as error:
            log.info("sql_database: table %s is read as Arrow: %s", self.loader.table.name, _first_line(error))
            return None, None
        try:
            _begin_read(source)
            end, middle, odd = self._window(source)
            self.window_rows = middle
        except Exception as error:  # nothing read yet: the Arrow path reads the table, or says what is wrong
            source.close()
            log.info("sql_database: table %s is read as Arrow: %s", self.loader.table.name, _first_line(error))
            return None, None
        if end is None or middle < copy_ahead.min_rows() or odd:
            source.close()
            return None, None
        return source, end

    def _window(self, source: psycopg.Connection) -> tuple[Any, int, int]:
        """In the table's window: the highest cursor value, how many rows lie above the last value (the edge at
        the top included; for a whole table, as the planner counts them), and how many rows that are read as
        Arrow hold a value Arrow cannot hold (``_odd_values``).

        With the cursor indexed, each is a query the planner can answer through the index (a table never vacuumed
        or analyzed has no estimate: its rows are counted), and odd values are looked for at the edges only: the
        COPY of the middle refuses them itself (``_copy_statement``), and the middle is then read as Arrow.
        Without an index, one scan of the window answers all three."""
        where = self.loader.make_query().whereclause
        inside = self.cursor > self.last_value if self.last_value is not None else self.cursor.is_not(None)
        odd = self._odd_values()
        if not _cursor_indexed(source, self._relation(), self.cursor.name):
            query = sa.select(sa.func.max(self.cursor), sa.func.count().filter(inside),
                              sa.func.count().filter(sa.or_(*odd)) if odd else sa.literal(0))
            return source.execute(_sql(self._from_window(query, where))).fetchone()
        self.copy_refuses_odd_values = True
        log.debug("sql_database: table %s: its window is found through the index on %s", self.loader.table.name,
                  self.cursor.name)
        end = source.execute(_sql(self._from_window(sa.select(sa.func.max(self.cursor)), where))).fetchone()[0]
        if end is None:
            return None, 0, 0
        rows = _planned_rows(source, self._relation()) if self.last_value is None and where is None else None
        if rows is None:
            rows = source.execute(_sql(self._from_window(sa.select(sa.func.count()), where, inside))).fetchone()[0]
        odd_rows = source.execute(_sql(self._from_window(
            sa.select(sa.func.count()), where, self._edges(end), sa.or_(*odd)))).fetchone()[0] if odd else 0
        return end, rows, odd_rows

    def _from_window(self, query, *conditions):
        return query.select_from(self.loader.table).where(*(condition for condition in conditions
                                                           if condition is not None))

    def _relation(self) -> str:
        table = self.loader.table
        return f"{_quote(table.schema)}.{_quote(table.name)}" if table.schema else _quote(table.name)

    def _read_edges(self, source: psycopg.Connection, end: Any) -> Iterator[Any]:
        """The rows at the window's edges, as Arrow, read in the pass's snapshot through a server-side cursor."""
        statement = _sql(self.loader.make_query().where(self._edges(end)))
        with source.cursor(name="headwater_edges") as cursor:
            cursor.execute(statement)
            names = [column.name for column in cursor.description]
            while rows := cursor.fetchmany(self.loader.chunk_size):
                yield from self.loader.arrow_from_rows(names, rows)

    def _edges(self, end: Any):
        edges = [self.cursor.is_(None), self.cursor >= end]
        if self.last_value is not None:
            edges.append(self.cursor <= self.last_value)
        return sa.or_(*edges)

    def _middle(self, end: Any):
        middle = self.cursor < end
        return sa.and_(self.cursor > self.last_value, middle) if self.last_value is not None else middle

    def _odd_values(self) -> list:
        return list(self._odd_conditions().values())

    def _odd_conditions(self) -> dict[str, Any]:
        """Per column, a condition true for a value that Arrow or the Python driver cannot hold, or holds otherwise
        than a cast: a decimal NaN, an infinite date or timestamp, a year before 1 or after 9999. A window
        holding one is read as Arrow, where such a value fails or is quarantined as it always was."""
        odd = {}
        for column in self.loader.table.columns:
            if isinstance(column.type, sqltypes.Numeric) and not isinstance(column.type, sqltypes.Float):
                odd[column.name] = column == sa.literal_column("'NaN'::numeric")
            elif isinstance(column.type, (sqltypes.Date, sqltypes.DateTime)):
                # (-infinity sorts below every date, infinity above)
                odd[column.name] = sa.or_(column < sa.literal_column("'0001-01-01'"),
                                          column >= sa.literal_column("'10000-01-01'"))
        return odd

    def _plan(self, source: psycopg.Connection, end: Any) -> parallel_ranges.RangePlan | None:
        """The ranges of the window's middle that streams read side by side (one when it is small); None when
        the source could not tell (its snapshot is then lost: the middle is read as Arrow)."""
        try:
            return parallel_ranges.plan_ranges(source, self._relation(), self.loader.table, self.cursor,
                                               self._middle(end), self.window_rows, _sql)
        except psycopg.Error as error:
            log.info("sql_database: table %s is read as Arrow: its ranges could not be read (%s)",
                     self.loader.table.name, _first_line(error))
            return None

    def _target(self, streams: int) -> copy_ahead.PassThroughTarget | None:
        load_id = dlt.current.load_package_state()["load_id"]
        schema_name = dlt.current.source_schema().naming.normalize_table_identifier(self.loader.table.name)
        try:
            return self.run.pass_through(load_id, schema_name, streams)
        except psycopg.Error as error:
            log.info("sql_database: table %s is read as Arrow: the destination is not ready (%s)",
                     self.loader.table.name, error)
            return None

    def _pass(self, source: psycopg.Connection, target: copy_ahead.PassThroughTarget, end: Any,
              plan: parallel_ranges.RangePlan) -> int | None:
        """COPY the middle of the window from the source into ``target``, a stream per range of ``plan`` (as many
        as ``target`` has connections), each stream's source in ``source``'s snapshot; the rows, or None when
        it was rolled back (and the middle must be read as Arrow)."""
        plan = plan.with_streams(target.streams)
        readers: list[psycopg.Connection] = []
        try:
            copy = self._copy_statement(target, end)
            if copy is None:
                target.abandon()
                return None
            columns, statement_of = copy
            if plan.streams > 1:  # every stream reads the rows of the coordinator's snapshot, and no other
                readers = self._readers(parallel_ranges.export_snapshot(source), plan.streams - 1)
                plan = plan.with_streams(1 + len(readers))
                target.keep(plan.streams)
            progress = _Progress(dlt.current.pipeline().collector, target.table)
            streams = [_copy_out(reader, statement_of(condition), progress.update)
                       for reader, condition in zip([source, *readers], plan.conditions(self.cursor), strict=True)]
            rows = target.copy(columns, streams)
        except (psycopg.Error, _SourceCopyFailed) as error:  # rolled back: the middle is read as Arrow instead
            if ODD_VALUE in str(error):  # (_copy_statement) a value the pass would give otherwise than Arrow
                log.info("sql_database: table %s: the middle of its window is read as Arrow: %s",
                         self.loader.table.name, _first_line(error))
            else:
                log.warning("sql_database: passing %s through failed, it is read as Arrow instead: %s",
                            self.loader.table.name, _first_line(error))
            target.abandon()
            return None
        except BaseException:
            target.abandon()  # (once: a failed COPY already gave its connections up)
            raise
        finally:
            for reader in readers:
                reader.close()
        package = dlt.current.load_package_state()
        package["state"].setdefault(copy_ahead.PASSED_THROUGH, {})[target.table] = sum(rows)
        package["state"].setdefault(PLANS, {})[target.table] = {"plan": plan.describe(), "rows": rows}
        commit_load_package_state()
        log.info("sql_database: table %s: %d rows passed through to the destination in %s (rows per stream: %s)",
                 self.loader.table.name, sum(rows), plan.describe(), ", ".join(map(str, rows)))
        return sum(rows)

    def _readers(self, snapshot: str, wanted: int) -> list[psycopg.Connection]:
        """Up to ``wanted`` source connections reading in the exported ``snapshot``: as many as the source lets
        open (at its connection limit, the streams opened so far read the window)."""
        readers: list[psycopg.Connection] = []
        try:
            for _ in range(wanted):
                try:
                    reader = psycopg.connect(_conninfo(self.loader.engine.url), autocommit=False,
                                             client_encoding="utf8")
                except psycopg.OperationalError as error:
                    log.info("sql_database: table %s is passed in %d stream(s): no more source connections (%s)",
                             self.loader.table.name, 1 + len(readers), _first_line(error))
                    break
                readers.append(reader)
                _begin_read(reader, snapshot)
        except BaseException:
            for reader in readers:
                reader.close()
            raise
        return readers

    def _copy_statement(self, target: copy_ahead.PassThroughTarget, end: Any
                        ) -> tuple[list[str], Callable[[Any], str]] | None:
        """The destination's columns, and the source's COPY statement that fills them with the window's middle
        narrowed by a condition (None: all of it); None when a column's destination type would not take the
        values unchanged."""
        columns, selected = [], []
        odd = self._odd_conditions() if self.copy_refuses_odd_values else {}
        for name in (column.name for column in self.loader.make_query().selected_columns):
            destination = target.column_name(name)
            declared, base = target.types.get(destination, (None, None))
            source_type = self.loader.table.c[name].type
            kinds = _destination_kinds(source_type)
            if declared is None or kinds is None or base not in kinds or (
                    kinds == ("numeric",) and not _holds_decimal(declared, source_type)):
                log.info("sql_database: table %s is read as Arrow: column %s is %s in the destination",
                         self.loader.table.name, name, declared)
                return None
            columns.append(destination)
            # Cast to the bare type: the destination applies its modifier (a length, a scale) as it does to the
            # Arrow path's binary values, refusing what does not fit. An explicit cast would truncate instead.
            value = sa.literal_column(f"CAST({_quote(name)} AS {base})")
            if name in odd:  # no scan looked for them: the COPY fails on the first, naming it
                refused = f"{ODD_VALUE}column {name} holds ".replace("'", "''")
                value = sa.case((odd[name], sa.literal_column(
                    f"CAST('{refused}' || CAST({_quote(name)} AS text) AS {base})")), else_=value)
            selected.append(value)
        if LOAD_ID_COLUMN not in target.types:
            return None
        columns.append(LOAD_ID_COLUMN)
        selected.append(sa.literal_column(f"CAST('{target.load_id}' AS {target.types[LOAD_ID_COLUMN][1]})"))
        query = sa.select(*selected).select_from(self.loader.table).where(self._middle(end))

        def statement_of(condition) -> str:
            return f"COPY ({_sql(query if condition is None else query.where(condition))}) TO STDOUT (FORMAT BINARY)"

        return columns, statement_of


class _SourceCopyFailed(Exception):
    pass


class _Progress:
    """The run's progress (rows read so far, per table), told by streams from their own threads."""

    def __init__(self, collector, table: str):
        self.collector, self.table = collector, table
        self._lock = threading.Lock()

    def update(self, rows: int) -> None:
        with self._lock:
            self.collector.update(self.table, rows)


def _begin_read(source: psycopg.Connection, snapshot: str | None = None) -> None:
    """Open a read-only REPEATABLE READ transaction on ``source`` as every pass reads: in ``snapshot`` (exported by
    another connection) when given."""
    source.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    source.read_only = True
    if snapshot is not None:  # must be the transaction's first statement
        source.execute(psycopg.sql.SQL("SET TRANSACTION SNAPSHOT {}").format(psycopg.sql.Literal(snapshot)))
    source.execute("SET LOCAL TIME ZONE 'UTC'")  # a zoneless timestamp cast to timestamptz is taken as UTC
    for statement in session_statements("postgresql"):
        source.execute(statement)


def _copy_out(source: psycopg.Connection, statement: str, progress: Callable[[int], None]) -> Iterator[bytes]:
    """The source's binary COPY output, in chunks of about CHUNK_BYTES; ``progress`` is told the rows of each.

    libpq hands over one message per row: gathering them costs a call each, done here without waiting on the
    server while holding the interpreter (the socket is waited on with ``select``, which releases it). The
    file header travels with the first row; the trailer, two bytes, alone."""
    connection = source.pgconn
    result = connection.exec_(statement.encode())
    if result.status != pq.ExecStatus.COPY_OUT:
        raise _SourceCopyFailed(connection.get_error_message())
    chunk, rows = bytearray(), 0
    while True:
        size, data = connection.get_copy_data(1)
        if size > 0:
            chunk += data
            rows += size > 2
            if len(chunk) >= CHUNK_BYTES:
                yield bytes(chunk)
                chunk.clear()
                progress(rows)
                rows = 0
        elif size == 0:  # nothing arrived yet
            select.select([connection.socket], [], [])
            connection.consume_input()
        elif size == -1:
            break
        else:
            raise _SourceCopyFailed(connection.get_error_message())
    if chunk:
        yield bytes(chunk)
        progress(rows)
    final = connection.get_result()
    while connection.get_result() is not None:
        pass
    if final is None or final.status != pq.ExecStatus.COMMAND_OK:
        raise _SourceCopyFailed(final.error_message.decode(errors="replace") if final is not None else "no result")


def _cursor_indexed(source: psycopg.Connection, relation: str, column: str) -> bool:
    """Whether a valid B-tree index of the whole relation leads with ``column``, in its type's default order and
    the column's collation: the planner then finds the window's top, counts the rows above a value and finds
    the edges through it."""
    return source.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_am am ON am.oid = c.relam JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "JOIN pg_opclass opclass ON opclass.oid = i.indclass[0] "
        "WHERE i.indrelid = to_regclass(%s) AND a.attname = %s AND i.indisvalid AND i.indpred IS NULL "
        "AND am.amname = 'btree' AND opclass.opcdefault AND i.indcollation[0] = a.attcollation)",
        (relation, column)).fetchone()[0]


def _planned_rows(source: psycopg.Connection, relation: str) -> int | None:
    """The rows of a plain table as the planner estimates them (its last count per page, times its pages now),
    or None before any VACUUM or ANALYZE counted them."""
    rows = source.execute(
        "SELECT c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::bigint) "
        "FROM pg_class c WHERE c.oid = to_regclass(%s) AND c.relkind = 'r' AND c.relpages > 0 AND c.reltuples > 0",
        (relation,)).fetchone()
    return int(rows[0]) if rows is not None else None


def _holds_decimal(declared: str, sql_type: sqltypes.Numeric) -> bool:
    """Whether a destination column declared ``declared`` (``numeric`` or ``numeric(P,S)``) takes every value of
    ``sql_type`` unchanged: no decimal rounded away, no integer digit too many."""
    found = re.fullmatch(r"numeric(?:\((\d+),(\d+)\))?", declared)
    if found is None:
        return False
    if found.group(1) is None:  # unconstrained: takes any value as it is
        return True
    if sql_type.precision is None:
        return False
    precision, scale = int(found.group(1)), int(found.group(2))
    source_scale = sql_type.scale or 0
    return scale >= source_scale and precision - scale >= sql_type.precision - source_scale


def _reaches(item: Any, cursor: str, end: Any) -> bool:
    if not isinstance(item, pa.Table) or cursor not in item.column_names or not item.num_rows:
        return False
    highest = pc.max(item.column(cursor)).as_py()
    if highest is None:
        return False
    if getattr(highest, "tzinfo", None) is not None and getattr(end, "tzinfo", None) is None:
        highest = highest.replace(tzinfo=None)  # a zoneless cursor lands as UTC
    return highest >= end


def _sql(query) -> str:
    """``query`` as SQL text with its values inline, for psycopg to send as it is. The loader's own compiler
    (its driver's) doubles every ``%`` for a driver that fills in parameters, which this text never gets."""
    return str(query.compile(dialect=_PLAIN_POSTGRES, compile_kwargs={"literal_binds": True}))


def _first_line(error: BaseException) -> str:
    return first_line(str(error)) or type(error).__name__


def _conninfo(url: sa.URL) -> str:
    return url._replace(drivername="postgresql").render_as_string(hide_password=False)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'

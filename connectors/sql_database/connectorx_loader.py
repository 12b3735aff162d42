"""A dlt table loader that reads through connectorx and yields the same Arrow tables as the pyarrow backend.

connectorx runs the query in native code (PostgreSQL's binary COPY, MySQL's binary protocol) and streams
Arrow record batches of ``chunk_size`` rows, so memory stays bounded on big tables. Its Arrow types are
not dlt's (decimal128(38, 10) for every numeric, int8 for MySQL booleans, large_binary, "+00:00"
timezones): each batch is cast to the type the pyarrow backend gives the column, with dlt's own cast,
so a table lands with the same columns, types and values whichever backend read it. A decimal column
decimal128(38, 10) cannot hold exactly (an unconstrained NUMERIC, say) is selected as text and cast to
its decimal type the same way, so a value that does not fit fails the load as it does with pyarrow
instead of being rounded.

Tables with a column connectorx cannot read faithfully go through the pyarrow backend instead, and so
does a table connectorx fails on before its first batch (an unsupported type, a connection parameter
it rejects); the reason is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from dlt.common.configuration.container import Container
from dlt.common.destination import DestinationCapabilitiesContext
from dlt.common.libs.pyarrow import cast_arrow_array_as_column_schema, get_py_arrow_datatype
from dlt.sources.sql_database import TableLoader
from sqlalchemy.dialects import mysql
from sqlalchemy.sql import sqltypes

from connectors.sql_database.backends import connectorx_url, hide_password

logger = logging.getLogger(__name__)

# The pyarrow backend's default: timestamps with a time zone become UTC.
TIMEZONE = "UTC"
# connectorx reads every DECIMAL/NUMERIC as decimal128(38, 10), rounding extra decimals.
CONNECTORX_DECIMAL_SCALE = 10
CONNECTORX_DECIMAL_INTEGER_DIGITS = 28
READABLE_TYPES = (
    sqltypes.Integer,
    sqltypes.Numeric,
    sqltypes.String,
    sqltypes.DateTime,
    sqltypes.Date,
    sqltypes.Time,
    sqltypes.Boolean,
    sqltypes._Binary,
    sqltypes.JSON,
    sqltypes.Uuid,
)


class ConnectorXArrowLoader(TableLoader):
    """Reads a table through connectorx when it can, otherwise through the pyarrow backend (TableLoader)."""

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[pa.Table]:
        reason = connectorx_cannot_read(self.table, self.columns)
        if reason is None:
            batches = self._connectorx_tables()
            try:
                # connectorx reports unsupported types and bad connection parameters by the first batch;
                # until something is yielded the table can still be read another way.
                first = next(batches, None)
            except BaseException as error:
                if not _is_read_failure(error):
                    raise
                reason = "connectorx failed: " + hide_password(f"{type(error).__name__}: {error}", self.engine.url)
            else:
                if first is not None:
                    yield first
                yield from batches
                return
        logger.info("sql_database: table %s is read with pyarrow: %s", self.table.name, reason)
        yield from super().load_rows(backend_kwargs)

    def _connectorx_tables(self) -> Iterator[pa.Table]:
        import connectorx

        query = self.compile_query(self._connectorx_query())
        logger.debug("sql_database: connectorx query for table %s: %s", self.table.name, query)
        reader = connectorx.read_sql(
            connectorx_url(self.engine.url),
            query,
            return_type="arrow_stream",
            batch_size=self.chunk_size,
            protocol="binary",
        )
        rows = 0
        for batch in reader:
            if batch.num_rows:  # the pyarrow backend yields nothing for an empty result, not an empty table
                rows += batch.num_rows
                yield self._as_pyarrow_backend_table(batch)
        logger.info("sql_database: table %s: %d rows read with connectorx", self.table.name, rows)

    def _connectorx_query(self) -> Any:
        query = self.make_query()
        if not isinstance(query, sa.Select):
            return query
        return query.with_only_columns(*(_selected(column) for column in query.selected_columns))

    def _as_pyarrow_backend_table(self, batch: pa.RecordBatch) -> pa.Table:
        caps = Container().get(DestinationCapabilitiesContext) or DestinationCapabilitiesContext.generic_capabilities()
        arrays, fields = [], []
        for field, array in zip(batch.schema, batch.columns, strict=True):
            column = self.columns[field.name]
            if array.type != get_py_arrow_datatype(column, caps, TIMEZONE):
                # The cast the pyarrow backend falls back to for values that arrive in another type.
                array = cast_arrow_array_as_column_schema(array, caps, column, TIMEZONE, True)
            arrays.append(array)
            fields.append(pa.field(field.name, array.type, nullable=column.get("nullable", True)))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def connectorx_cannot_read(table: sa.Table, columns: dict[str, dict]) -> str | None:
    """Why connectorx would not give ``table`` the values the pyarrow backend gives it; None when it would."""
    for column in table.columns:
        if not columns.get(column.name, {}).get("data_type"):
            return f"column {column.name} has no dlt data type ({column.type})"
        problem = _type_problem(column.type)
        if problem:
            return f"column {column.name}: {problem}"
    return None


def _type_problem(sql_type: sa.types.TypeEngine) -> str | None:
    if isinstance(sql_type, sqltypes.Float) and not isinstance(sql_type, sqltypes.Double):
        # The pyarrow backend gets the digits the server prints; connectorx widens the 4-byte value
        # (0.1 becomes 0.10000000149011612).
        return f"4-byte float {sql_type}"
    if isinstance(sql_type, sqltypes.Time) and sql_type.timezone:
        return "time with time zone"
    if isinstance(sql_type, mysql.SET):
        return "MySQL SET"  # SQLAlchemy turns SET values into Python sets, connectorx into text
    if not isinstance(sql_type, READABLE_TYPES):
        return f"type {sql_type}"
    return None


def _selected(column: Any) -> Any:
    """The column as connectorx should select it: as text when its decimals would not survive decimal128(38, 10)."""
    if _is_exact_decimal(column.type) and not _fits_connectorx_decimal(column.type):
        return sa.cast(column, sa.Text).label(column.name)
    return column


def _is_exact_decimal(sql_type: Any) -> bool:
    return isinstance(sql_type, sqltypes.Numeric) and not isinstance(sql_type, sqltypes.Float)


def _fits_connectorx_decimal(sql_type: sqltypes.Numeric) -> bool:
    if sql_type.precision is None:  # unconstrained: any number of digits
        return False
    scale = sql_type.scale or 0
    return scale <= CONNECTORX_DECIMAL_SCALE and sql_type.precision - scale <= CONNECTORX_DECIMAL_INTEGER_DIGITS


def _is_read_failure(error: BaseException) -> bool:
    # connectorx raises a Rust panic (a BaseException) for types it does not implement.
    return isinstance(error, Exception) or type(error).__name__ == "PanicException"

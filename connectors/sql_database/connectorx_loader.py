"""A dlt table loader that reads through connectorx and yields the same Arrow tables as the pyarrow backend.

connectorx runs the query in native code (PostgreSQL's binary COPY, MySQL's binary protocol) and streams
Arrow record batches of ``chunk_size`` rows, so memory stays bounded on big tables. It selects the same
columns as the pyarrow backend (column_types.read_expression) and casts each batch to the same landing
types (arrow_loader.ExactArrowLoader), so a table lands with the same columns, types and values whichever
backend read it. connectorx reads every DECIMAL/NUMERIC as decimal128(38, 10); a decimal column that
cannot hold exactly is selected as text and cast to its decimal type, so a value that does not fit fails
the load as it does with pyarrow instead of being rounded.

Tables with a column connectorx cannot read faithfully go through the pyarrow backend instead, and so
does a table connectorx fails on before its first batch (an unsupported type, a connection parameter
it rejects), and every table of a URL whose TLS options connectorx cannot honour (backends.connectorx_url);
the reason is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.sql import sqltypes

from connectors.sql_database.arrow_loader import ExactArrowLoader
from connectors.sql_database.backends import ConnectorxCannotProtect, connectorx_url, hide_password
from connectors.sql_database.column_types import is_exact_decimal
from connectors.sql_database.pass_through import pass_through_rows
from connectors.sql_database.sessions import session_statements

logger = logging.getLogger(__name__)

# connectorx reads every DECIMAL/NUMERIC as decimal128(38, 10), rounding extra decimals.
CONNECTORX_DECIMAL_SCALE = 10
# It holds them in 28 significant digits (rust_decimal), 10 of which are always decimals.
CONNECTORX_DECIMAL_INTEGER_DIGITS = 28 - CONNECTORX_DECIMAL_SCALE
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


class ConnectorXArrowLoader(ExactArrowLoader):
    """Reads a table through connectorx when it can, otherwise through the pyarrow backend (TableLoader)."""

    def load_rows(self, backend_kwargs: dict[str, Any] | None = None) -> Iterator[pa.Table]:
        passing = pass_through_rows(self)  # PostgreSQL into Postgres: most rows as the server sends them
        if passing is not None:
            yield from passing
            return
        yield from self.read_rows(backend_kwargs=backend_kwargs)

    def read_rows(self, narrowing: Any = None, backend_kwargs: dict[str, Any] | None = None) -> Iterator[pa.Table]:
        """The table's rows as Arrow; with ``narrowing`` (a SQLAlchemy condition), only the rows it holds for."""
        self.narrowing = narrowing
        try:
            yield from self._read_rows(backend_kwargs)
        finally:
            self.narrowing = None

    def _read_rows(self, backend_kwargs: dict[str, Any] | None) -> Iterator[pa.Table]:
        reason = self._cannot_read()
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

        query = self.compile_query(self.make_query())
        logger.debug("sql_database: connectorx query for table %s: %s", self.table.name, query)
        statements = session_statements(self.dialect)
        reader = connectorx.read_sql(
            connectorx_url(self.engine.url),
            query,
            return_type="arrow_stream",
            batch_size=self.chunk_size,
            protocol="binary",
            **({"pre_execution_query": list(statements)} if statements else {}),
        )
        rows = 0
        for batch in reader:
            if batch.num_rows:  # the pyarrow backend yields nothing for an empty result, not an empty table
                rows += batch.num_rows
                yield from self.landed(pa.Table.from_batches([batch]))
        logger.info("sql_database: table %s: %d rows read with connectorx", self.table.name, rows)

    def read_column(self, column: Any) -> Any:
        """The pyarrow backend's expression, and decimals as text where decimal128(38, 10) would round them."""
        expression = super().read_column(column)
        if expression is column and is_exact_decimal(column.type) and not _fits_connectorx_decimal(column.type):
            return sa.cast(column, sa.Text).label(column.name)
        return expression

    def _cannot_read(self) -> str | None:
        """Why connectorx would not give this table the values the pyarrow backend gives it; None when it would."""
        try:
            connectorx_url(self.engine.url)
        except ConnectorxCannotProtect as refusal:  # the connection, not the values: TLS options it lacks
            return str(refusal)
        for column in self.table.columns:
            if not self.columns.get(column.name, {}).get("data_type"):
                return f"column {column.name} has no dlt data type ({column.type})"
            selected = self.read_column(column)
            if not isinstance(selected.type, READABLE_TYPES):
                return f"column {column.name}: type {column.type}"
        return None


def _fits_connectorx_decimal(sql_type: sqltypes.Numeric) -> bool:
    if sql_type.precision is None:  # unconstrained: any number of digits
        return False
    scale = sql_type.scale or 0
    return scale <= CONNECTORX_DECIMAL_SCALE and sql_type.precision - scale <= CONNECTORX_DECIMAL_INTEGER_DIGITS


def _is_read_failure(error: BaseException) -> bool:
    # connectorx raises a Rust panic (a BaseException) for types it does not implement.
    return isinstance(error, Exception) or type(error).__name__ == "PanicException"

"""The pyarrow backend, reading every column as connectors.sql_database.column_types says.

dlt's own pyarrow backend selects the bare columns and converts what the driver returns by the
reflected type. This loader selects each column's ``read_expression`` (a 4-byte float widened to
double, JSON as its text, ...), builds Arrow batches of the types the columns land as, and applies the
source's NUL rule, yielding the rows it rejects for the table's quarantine. The connectorx loader
(connectorx_loader.py) shares all of it but the reading.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any, ClassVar

import dlt
import pyarrow as pa
import sqlalchemy as sa
from dlt.common.configuration.container import Container
from dlt.common.destination import DestinationCapabilitiesContext
from dlt.common.libs.pyarrow import get_py_arrow_datatype
from dlt.sources.sql_database import TableLoader
from dlt.sources.sql_database.arrow_helpers import row_tuples_to_arrow
from sqlalchemy.sql import sqltypes

from connectors.sql_database.column_types import carried_as_text, read_expression
from connectors.sql_database.nul_characters import NulRule, handle_nul_characters
from headwater.quarantine.records import quarantine_hints

# Timestamps with a zone arrive in UTC (the pyarrow backend's default).
TIMEZONE = "UTC"
TEXT_READER = {"data_type": "text"}


class ExactArrowLoader(TableLoader):
    """A dlt TableLoader yielding Arrow tables of the landing types, and rejected rows marked for quarantine."""

    nul_rule: ClassVar[NulRule] = NulRule()

    @classmethod
    def with_nul_rule(cls, rule: NulRule) -> type[ExactArrowLoader]:
        """This loader for one source: dlt creates a loader per table from the class alone."""
        return type(cls.__name__, (cls,), {"nul_rule": rule})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.cursor_column is not None and _is_zoneless_timestamp(self.cursor_column.type):
            # The cursor's last value comes back from the UTC timestamps that landed; the column compares wall time.
            self.last_value = _as_utc_wall_time(self.last_value)
            self.end_value = _as_utc_wall_time(self.end_value)
        self.dialect = self.engine.dialect.name
        caps = Container().get(DestinationCapabilitiesContext) or DestinationCapabilitiesContext.generic_capabilities()
        source_types = {column.name: column.type for column in self.table.columns}
        self.landing_types: dict[str, pa.DataType] = {}
        for name, column in self.columns.items():
            if not column.get("data_type"):
                continue
            if carried_as_text(source_types.get(name)):
                self.landing_types[name] = pa.string()
            else:
                self.landing_types[name] = get_py_arrow_datatype(column, caps, TIMEZONE)
        # PostgreSQL text cannot hold NUL, its json can (as \u0000): only MariaDB and SQLite text is searched.
        self.text_columns = [] if self.dialect == "postgresql" else [
            name for name, column in self.columns.items() if column.get("data_type") == "text"
        ]
        self.json_columns = [name for name, column in self.columns.items() if column.get("data_type") == "json"]
        self.key_columns = [column.name for column in self.table.primary_key]

    # -- reading -------------------------------------------------------------------------------------------

    # A condition the next read adds to the query (connectorx_loader's read_rows sets it).
    narrowing: Any = None

    def make_query(self) -> Any:
        query = super().make_query()
        if not isinstance(query, sa.Select):
            return query
        if self.narrowing is not None:
            query = query.where(self.narrowing)
        return query.with_only_columns(*(self.read_column(column) for column in query.selected_columns))

    def read_column(self, column: Any) -> Any:
        return read_expression(column, self.dialect)

    def _convert_result(self, result: Any, backend_kwargs: dict[str, Any]) -> Iterator[Any]:
        names = list(result.keys())
        for partition in result.partitions(size=self.chunk_size):
            yield from self.arrow_from_rows(names, [row._data for row in partition])

    def arrow_from_rows(self, names: list[str], rows: list[tuple]) -> Iterator[Any]:
        """Rows of this table's query (value tuples in the order of ``names``) as the Arrow tables this backend
        yields: the same for a SQLAlchemy result and a psycopg cursor, which return the same Python values."""
        reader = {name: self._reader_column(name) for name in names}
        yield from self.landed(row_tuples_to_arrow(rows, columns=reader, tz=TIMEZONE))

    def _reader_column(self, name: str) -> dict:
        """How dlt builds the Arrow array of what the driver returns for column ``name``."""
        column = self.columns.get(name) or {"name": name}
        selected = self.read_column(self.table.c[name]) if name in self.table.c else None
        if isinstance(getattr(selected, "type", None), sqltypes.String) and column.get("data_type") not in (
            None, "text", "json"
        ):
            return {"name": name, **TEXT_READER}  # the server's text of the value, cast to its type in landed()
        return column

    # -- landing -------------------------------------------------------------------------------------------

    def landed(self, table: pa.Table) -> Iterator[Any]:
        """``table`` in the landing types, and its rows with NUL characters handled as the source's rule says."""
        table = self.as_landing_types(table)
        checked = handle_nul_characters(
            table, self.nul_rule.for_table(self.table.name), self.text_columns, self.json_columns,
            self.table.name, self.key_columns, self.cursor_column.name if self.cursor_column is not None else None,
        )
        if checked.good.num_rows or checked.rejected is None:
            yield checked.good
        if checked.rejected is not None:
            yield dlt.mark.with_hints(checked.rejected, quarantine_hints(self.table.name), create_table_variant=True)

    def as_landing_types(self, table: pa.Table) -> pa.Table:
        arrays, fields = [], []
        for field, array in zip(table.schema, table.columns, strict=True):
            target = self.landing_types.get(field.name)
            if target is not None and array.type != target:
                # safe: a value that does not fit its type fails the load rather than being rounded
                array = array.cast(target, safe=True)
            arrays.append(array)
            column = self.columns.get(field.name, {})
            fields.append(pa.field(field.name, array.type, nullable=column.get("nullable", True)))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _is_zoneless_timestamp(sql_type: Any) -> bool:
    return isinstance(sql_type, sqltypes.DateTime) and not sql_type.timezone


def _as_utc_wall_time(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value

"""dlt's reflection callbacks for one source, so that its tables are hinted with the types they land as."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from dlt.extract import DltResource

from connectors.sql_database import column_types
from connectors.sql_database.sessions import with_session_settings


class ExactReflection:
    """The engine, table and type adapters dlt's sql_database calls while it reflects one source."""

    def __init__(self, schema: str | None):
        self.schema = schema
        self.engine: sa.Engine | None = None
        self.unconstrained: dict[str, list[str]] = {}  # table -> decimal columns of no fixed precision

    def adapt_engine(self, engine: sa.Engine) -> sa.Engine:
        self.engine = engine
        return with_session_settings(engine)

    def adapt_table(self, table: sa.Table) -> None:
        if self.engine is not None and self.engine.dialect.name == "mysql":
            with self.engine.connect() as connection:
                json_columns = column_types.mariadb_json_columns(connection, self.schema, table.name)
            column_types.adapt_reflected_table(table, json_columns)
        self.unconstrained[table.name] = [
            column.name for column in table.columns
            if column_types.is_exact_decimal(column.type) and column.type.precision is None
        ]

    @staticmethod
    def hint_type(sql_type: Any) -> Any:
        return column_types.hint_type(sql_type)

    def add_hints(self, resource: DltResource) -> None:
        """Hints reflection cannot express through a type: which decimals have no fixed precision."""
        columns = self.unconstrained.get(resource.name)
        if columns:
            resource.apply_hints(columns=[
                {"name": name, "data_type": "decimal", column_types.UNCONSTRAINED_NUMERIC: True} for name in columns
            ])

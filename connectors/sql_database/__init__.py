"""Tables of a relational database (PostgreSQL, MariaDB/MySQL, SQLite, any SQLAlchemy URL), read as Arrow batches."""

from __future__ import annotations

from typing import Literal

import dlt
from dlt.sources.sql_database import sql_database as dlt_sql_database

from connectors.sql_database.backends import CONNECTORX, PYARROW, choose_backend
from connectors.sql_database.connectorx_loader import ConnectorXArrowLoader


@dlt.source(name="sql_database")
def sql_database(
    credentials: str = dlt.secrets.value,
    schema: str | None = None,
    table_names: list[str] | None = None,
    chunk_size: int = 50_000,
    backend: Literal["pyarrow", "sqlalchemy", "connectorx"] | None = None,
):
    """Load tables from a SQL database; one resource per table, merged on the table's primary key.

    Args:
        credentials: SQLAlchemy URL, e.g. postgresql://user:pw@host/db, mysql+pymysql://..., sqlite:///path.db
        schema: Database schema to read; the connection's default when empty.
        table_names: Tables to reflect; every table in the schema when empty.
        chunk_size: Rows per Arrow batch.
        backend: How rows are read. Unset: connectorx for PostgreSQL and MySQL/MariaDB (native code, several
            times faster), pyarrow (SQLAlchemy rows into Arrow) for other databases or when connectorx cannot
            be imported. connectorx streams batches of chunk_size rows, so memory stays bounded, and casts
            them to the types pyarrow gives, so both land the same table; a table connectorx cannot read
            faithfully is read with pyarrow, and the reason is logged.
    """
    chosen = choose_backend(credentials, backend)
    source = dlt_sql_database(
        credentials=credentials,
        schema=schema,
        table_names=table_names,
        chunk_size=chunk_size,
        # dlt reflects and hints the tables as for pyarrow; the loader class decides how rows are read.
        backend=PYARROW if chosen == CONNECTORX else chosen,
        table_loader_class=ConnectorXArrowLoader if chosen == CONNECTORX else None,
        reflection_level="full",
    )
    return list(source.resources.values())

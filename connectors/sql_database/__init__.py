"""Tables of a relational database (PostgreSQL, MariaDB/MySQL, SQLite, any SQLAlchemy URL), read as Arrow batches."""

from __future__ import annotations

from typing import Literal

import dlt
from dlt.sources.sql_database import sql_database as dlt_sql_database


@dlt.source(name="sql_database")
def sql_database(
    credentials: str = dlt.secrets.value,
    schema: str | None = None,
    table_names: list[str] | None = None,
    chunk_size: int = 50_000,
    backend: Literal["pyarrow", "sqlalchemy", "connectorx"] = "pyarrow",
):
    """Load tables from a SQL database; one resource per table, merged on the table's primary key.

    Args:
        credentials: SQLAlchemy URL, e.g. postgresql://user:pw@host/db, mysql+pymysql://..., sqlite:///path.db
        schema: Database schema to read; the connection's default when empty.
        table_names: Tables to reflect; every table in the schema when empty.
        chunk_size: Rows per Arrow batch.
        backend: How rows are read; pyarrow keeps data in Arrow from the database to Postgres.
    """
    source = dlt_sql_database(
        credentials=credentials,
        schema=schema,
        table_names=table_names,
        chunk_size=chunk_size,
        backend=backend,
        reflection_level="full",
    )
    return list(source.resources.values())

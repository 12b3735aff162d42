"""Tables of a relational database (PostgreSQL, MariaDB/MySQL, SQLite, any SQLAlchemy URL), read as Arrow batches."""

from __future__ import annotations

from typing import Literal

import dlt
from dlt.sources.sql_database import sql_database as dlt_sql_database

from connectors.sql_database.arrow_loader import ExactArrowLoader
from connectors.sql_database.backends import CONNECTORX, PYARROW, choose_backend
from connectors.sql_database.connectorx_loader import ConnectorXArrowLoader
from connectors.sql_database.nul_characters import NulHandling, NulRule
from connectors.sql_database.reflection import ExactReflection


@dlt.source(name="sql_database")
def sql_database(
    credentials: str = dlt.secrets.value,
    schema: str | None = None,
    table_names: list[str] | None = None,
    chunk_size: int = 50_000,
    backend: Literal["pyarrow", "sqlalchemy", "connectorx"] | None = None,
    nul_characters: NulHandling = "reject",
    nul_characters_by_table: dict[str, NulHandling] | None = None,
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
        nul_characters: What happens to a row whose text holds a NUL character (MariaDB and SQLite store
            them, Postgres cannot): reject (to the table's quarantine, with the column named) or strip them.
        nul_characters_by_table: The same choice for single tables: table name -> reject or strip.
    """
    chosen = choose_backend(credentials, backend)
    if chosen not in (CONNECTORX, PYARROW):  # dlt's own backends, as dlt reads them
        source = dlt_sql_database(credentials=credentials, schema=schema, table_names=table_names,
                                  chunk_size=chunk_size, backend=chosen, reflection_level="full")
        return list(source.resources.values())
    reflection = ExactReflection(schema)
    loader = ConnectorXArrowLoader if chosen == CONNECTORX else ExactArrowLoader
    source = dlt_sql_database(
        credentials=credentials,
        schema=schema,
        table_names=table_names,
        chunk_size=chunk_size,
        # dlt reflects and hints the tables as for pyarrow; the loader class decides how rows are read.
        backend=PYARROW,
        table_loader_class=loader.with_nul_rule(NulRule(nul_characters, dict(nul_characters_by_table or {}))),
        reflection_level="full",
        engine_adapter_callback=reflection.adapt_engine,
        table_adapter_callback=reflection.adapt_table,
        type_adapter_callback=reflection.hint_type,
    )
    resources = list(source.resources.values())
    for resource in resources:
        reflection.add_hints(resource)
    return resources

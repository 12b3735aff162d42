"""What a load left in the destination: row counts, duplicate keys and column types of raw tables."""

from __future__ import annotations

from collections.abc import Sequence

from dlt.common.normalizers.naming.snake_case import NamingConvention
from psycopg import sql

from headwater.postgres.address import PostgresAddress

# dlt's default naming convention, which turns resource and column names into Postgres identifiers.
_naming = NamingConvention()


def table_identifier(name: str) -> str:
    return _naming.normalize_table_identifier(name)


def column_identifiers(key: str | Sequence[str]) -> list[str]:
    names = [key] if isinstance(key, str) else list(key)
    return [_naming.normalize_identifier(name) for name in names]


class RawDataset:
    """The raw_<source> schema of one destination database, read with plain SQL."""

    def __init__(self, address: PostgresAddress, dataset: str):
        self.address = address
        self.dataset = dataset

    def qualified(self, table: str) -> str:
        return f"{self.dataset}.{table_identifier(table)}"

    def exists(self, table: str) -> bool:
        rows = self._query(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (self.dataset, table_identifier(table)),
        )
        return bool(rows)

    def row_count(self, table: str) -> int:
        """Rows in the table; 0 when the table was never created."""
        if not self.exists(table):
            return 0
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(self.dataset), sql.Identifier(table_identifier(table))
        )
        return self._query(query)[0][0]

    def duplicate_keys(self, table: str, key: str | Sequence[str], limit: int = 5) -> list[tuple]:
        """Up to `limit` key values held by more than one row, with how many rows hold each."""
        if not self.exists(table):
            return []
        columns = sql.SQL(", ").join(sql.Identifier(name) for name in column_identifiers(key))
        query = sql.SQL(
            "SELECT {columns}, count(*) FROM {schema}.{table} GROUP BY {columns} HAVING count(*) > 1 "
            "ORDER BY count(*) DESC LIMIT {limit}"
        ).format(
            columns=columns,
            schema=sql.Identifier(self.dataset),
            table=sql.Identifier(table_identifier(table)),
            limit=sql.Literal(limit),
        )
        return self._query(query)

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> Postgres type, as information_schema describes the table."""
        rows = self._query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.dataset, table_identifier(table)),
        )
        return {name: data_type for name, data_type in rows}

    def _query(self, query, params: tuple | None = None) -> list[tuple]:
        with self.address.connect(connect_timeout=10) as connection:
            return connection.execute(query, params).fetchall()

"""The built-in `sql_database` connector under the acceptance kit, on PostgreSQL, MariaDB and SQLite sources.

Each test gets a source database of its own (a fresh database on the server, or a SQLite file in the
test's folder), dropped after the test. The URL is a secret, so settings reference it as ${NAME}.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from headwater.testing import ConnectorAcceptanceTests
from tests.conftest import fresh_database
from tests.servers import MariaDB

URL_VARIABLE = "ACCEPTANCE_SOURCE_DB_URL"
FIRST_UPDATE = datetime(2024, 1, 1, 8, 0, 0)

metadata = sa.MetaData()
customers = sa.Table(
    "customers",
    metadata,
    sa.Column("customer_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("email", sa.String(200)),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
products = sa.Table(
    "products",
    metadata,
    sa.Column("product_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("price", sa.Numeric(10, 2), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)


def customer_rows(ids: range) -> list[dict]:
    return [
        {
            "customer_id": i,
            "name": f"Customer {i}",
            "email": f"c{i}@example.com",
            "updated_at": FIRST_UPDATE + timedelta(hours=i),
        }
        for i in ids
    ]


def product_rows(ids: range) -> list[dict]:
    return [
        {
            "product_id": i,
            "name": f"Product {i}",
            "price": Decimal("4.99") + i,
            "updated_at": FIRST_UPDATE + timedelta(hours=i, minutes=30),
        }
        for i in ids
    ]


class SqlDatabaseAcceptance(ConnectorAcceptanceTests):
    """The kit's hooks for any SQLAlchemy database; subclasses say how to create a fresh one."""

    __test__ = False

    connector = "sql_database"
    package = "headwater"
    tables = {
        "customers": {"primary_key": "customer_id", "cursor": "updated_at"},
        "products": {"primary_key": "product_id", "cursor": "updated_at"},
    }
    schema: str | None = None

    def create_database(self, workdir: Path) -> str:
        """Create an empty database for this test (dropped after it); return its SQLAlchemy URL."""
        raise NotImplementedError

    def make_source(self, workdir: Path) -> dict:
        settings = self.make_empty_source(workdir)
        self.insert(customer_rows(range(1, 6)), product_rows(range(1, 4)))
        return settings

    def add_rows(self, workdir: Path) -> dict[str, int]:
        # New keys with later cursor values than every row loaded so far.
        self.insert(customer_rows(range(6, 8)), product_rows(range(4, 5)))
        return {"customers": 2, "products": 1}

    def make_empty_source(self, workdir: Path) -> dict:
        self.url = self.create_database(workdir)
        engine = self.engine()
        if self.schema:
            with engine.begin() as connection:
                connection.execute(sa.schema.CreateSchema(self.schema))
        metadata.create_all(engine)
        engine.dispose()
        settings = {"credentials": self.set_env(URL_VARIABLE, self.url)}
        if self.schema:
            settings["schema"] = self.schema
        return settings

    def expected_rows(self) -> dict[str, int]:
        return {"customers": 5, "products": 3}

    def engine(self) -> sa.Engine:
        options = {"schema_translate_map": {None: self.schema}} if self.schema else {}
        return sa.create_engine(self.url, execution_options=options)

    def insert(self, customer_values: list[dict], product_values: list[dict]) -> None:
        engine = self.engine()
        with engine.begin() as connection:
            connection.execute(customers.insert(), customer_values)
            connection.execute(products.insert(), product_values)
        engine.dispose()


class TestSqlDatabasePostgres(SqlDatabaseAcceptance):
    schema = "shop"

    def create_database(self, workdir: Path) -> str:
        # A database of its own on the tests' PostgreSQL server, separate from the destination database.
        database = ExitStack()
        url = database.enter_context(fresh_database("hw_source"))
        self.add_cleanup(database.close)
        return url.replace("postgresql://", "postgresql+psycopg2://", 1)


class TestSqlDatabaseMariaDB(SqlDatabaseAcceptance):
    @pytest.fixture(autouse=True)
    def _mariadb(self, mariadb: MariaDB) -> None:
        """The tests' MariaDB; the tests are skipped, saying why, when none is reachable."""
        self.mariadb = mariadb

    def create_database(self, workdir: Path) -> str:
        name = f"hw_source_{uuid.uuid4().hex[:10]}"
        with self.mariadb.connect() as admin, admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}`")

        def drop() -> None:
            with self.mariadb.connect() as admin, admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")

        self.add_cleanup(drop)
        return self.mariadb.url(name)


class TestSqlDatabaseSQLite(SqlDatabaseAcceptance):
    def create_database(self, workdir: Path) -> str:
        return f"sqlite:///{workdir / 'source.db'}"

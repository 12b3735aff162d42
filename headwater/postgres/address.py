"""Where Headwater's Postgres is and how each tool (dlt, dbt, Soda, psycopg) is told to connect to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

DATABASE_URL_ENV = "HEADWATER_DATABASE_URL"


@dataclass(frozen=True)
class PostgresAddress:
    host: str
    port: int
    user: str
    password: str = field(repr=False)  # kept out of every repr: tracebacks, task inputs, log lines
    database: str

    @classmethod
    def from_url(cls, url: str) -> "PostgresAddress":
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
            raise ValueError(
                f"{DATABASE_URL_ENV} must be a postgresql:// URL, got scheme {parts.scheme!r}"
            )
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            database=(parts.path or "/postgres").lstrip("/") or "postgres",
        )

    @property
    def url(self) -> str:
        # Percent-encoded: a password may hold any character, `@` and `/` included.
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"

    @property
    def safe_url(self) -> str:
        """The URL with the password masked, for messages and logs."""
        auth = self.user + (":***" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"

    def tool_env(self) -> dict[str, str]:
        """Variables that dbt's profile and Soda's data source read their connection from."""
        return {
            "HEADWATER_PG_HOST": self.host,
            "HEADWATER_PG_PORT": str(self.port),
            "HEADWATER_PG_USER": self.user,
            "HEADWATER_PG_PASSWORD": self.password,
            "HEADWATER_PG_DATABASE": self.database,
        }

    def connect(self, **options):
        """A psycopg connection to this database (options: autocommit, connect_timeout, ...)."""
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=self.database,
            **options,
        )

    def column_types(self, schema: str) -> dict[tuple[str, str], str]:
        """(table, column) -> the column's SQL type, for every table of ``schema`` (empty if it does not exist).

        Through psycopg2, the driver dlt loads with: the load path then imports no second driver.
        """
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password or None,
                                      dbname=self.database, connect_timeout=10)
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
                    "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
                    "where n.nspname = %s and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped",
                    (schema,),
                )
                rows = cursor.fetchall()
        finally:
            connection.close()
        return {(table, column): sql_type for table, column, sql_type in rows}

    def relations(self, schemas: set[str]) -> set[tuple[str, str]]:
        """(schema, name) of every table and view in the given schemas."""
        with self.connect(connect_timeout=10) as connection:
            rows = connection.execute(
                "select table_schema, table_name from information_schema.tables where table_schema = any(%s)",
                (sorted(schemas),),
            ).fetchall()
        return {(schema, name) for schema, name in rows}

    def dlt_credentials(self) -> dict[str, object]:
        # dlt insists on a password field even where the server trusts the connection.
        return {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "password": self.password,
            "database": self.database,
        }

"""Where Headwater's Postgres is and how each tool (dlt, dbt, Soda, psycopg, ADBC) is told to connect to it.

The URL may carry libpq connection parameters, TLS above all (``?sslmode=verify-full&sslrootcert=/path/root.crt``).
Every tool connects through libpq, so each parameter reaches each tool: in the connection it opens (psycopg,
dlt's psycopg2 and ADBC take the URL's parameters), in the keys of dbt's profile and Soda's data source that
``tool_env`` fills, and for every parameter those files do not name, in the environment variable libpq reads it
from (PGSSLMODE, PGSSLROOTCERT, ...), set only while dbt and Soda run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, quote, unquote, urlsplit

DATABASE_URL_ENV = "HEADWATER_DATABASE_URL"

# The connection parameters a destination URL may carry, each with the environment variable libpq reads it
# from: a parameter is accepted only when every tool can be given it, and that variable is how dbt and Soda
# get the ones their configuration files do not name.
CONNECTION_PARAMETERS = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "channel_binding": "PGCHANNELBINDING",
    "gssencmode": "PGGSSENCMODE",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
}
# How a URL Headwater renders names the role a step runs as (see PostgresAddress.role).
ROLE_OPTION = "-crole="
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# What libpq does when neither the URL nor the environment chooses.
DEFAULT_SSLMODE = "prefer"
# Parameters dbt's profile names with a value of its own when the URL does not set them: dbt's defaults.
DBT_DEFAULTS = {"connect_timeout": "10", "application_name": "dbt"}
# Parameters the profile and the data source name themselves (HEADWATER_PG_<NAME>); the others reach the
# tools only as libpq's variables.
NAMED_IN_TOOL_FILES = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name")


@dataclass(frozen=True)
class PostgresAddress:
    host: str
    port: int
    user: str
    password: str = field(repr=False)  # kept out of every repr: tracebacks, task inputs, log lines
    database: str
    # libpq connection parameters from the URL's query, in the order given (names from CONNECTION_PARAMETERS).
    options: tuple[tuple[str, str], ...] = ()
    # The role every connection takes at startup (libpq `options=-crole=...`, as SET ROLE does): the
    # least role a step needs (headwater.access.run_roles). None: the user's own.
    role: str | None = None

    @classmethod
    def from_url(cls, url: str) -> "PostgresAddress":
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
            raise ValueError(
                f"{DATABASE_URL_ENV} must be a postgresql:// URL, got scheme {parts.scheme!r}"
            )
        try:
            port = parts.port
        except ValueError:  # urllib's own message names neither the variable nor the fix
            host_and_port = parts.netloc.rpartition("@")[2]  # never the password
            raise ValueError(f"{DATABASE_URL_ENV} has a port that is not a number in {host_and_port!r}; "
                             "write it as postgresql://user@host:5432/database") from None
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            database=(parts.path or "/postgres").lstrip("/") or "postgres",
            options=connection_options(parts.query),
            role=role_in(parts.query),
        )

    def as_role(self, role: str | None) -> "PostgresAddress":
        """The same database, each connection taking ``role`` (the user must be allowed to SET ROLE to it)."""
        return replace(self, role=role)

    @property
    def role_option(self) -> str | None:
        """The libpq startup option that sets the role; every tool Headwater runs passes it on."""
        return f"{ROLE_OPTION}{self.role}" if self.role else None

    def option(self, name: str) -> str | None:
        """The value the URL gives connection parameter ``name``, or None."""
        return dict(self.options).get(name)

    @property
    def url(self) -> str:
        return self._render(self.password and quote(self.password, safe=""))

    @property
    def safe_url(self) -> str:
        """The URL with the password masked, for messages and logs (its TLS options are no secret)."""
        return self._render(self.password and "***")

    def _render(self, password: str) -> str:
        auth = quote(self.user, safe="") + (f":{password}" if password else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        parameters = [*self.options, *([("options", self.role_option)] if self.role else [])]
        query = "&".join(f"{name}={quote(value, safe='/')}" for name, value in parameters)
        return f"postgresql://{auth}@{host}:{self.port}/{self.database}" + (f"?{query}" if query else "")

    def tool_env(self) -> dict[str, str]:
        """Variables that dbt's profile and Soda's data source read their connection from.

        HEADWATER_PG_SSLMODE and the other parameters those files name always have a value: the URL's, else
        what libpq would take (its variable in this environment, else its default), because a key the file
        names overrides libpq's variable even when empty. Every parameter of the URL is also set as libpq's
        own variable, for what the files do not name (and for projects whose files predate TLS keys).
        """
        env = {
            "HEADWATER_PG_HOST": self.host,
            "HEADWATER_PG_PORT": str(self.port),
            "HEADWATER_PG_USER": self.user,
            "HEADWATER_PG_PASSWORD": self.password,
            "HEADWATER_PG_DATABASE": self.database,
        }
        defaults = {"sslmode": DEFAULT_SSLMODE, **DBT_DEFAULTS}
        for name in NAMED_IN_TOOL_FILES:
            value = self.option(name) or os.environ.get(CONNECTION_PARAMETERS[name]) or defaults.get(name, "")
            env[f"HEADWATER_PG_{name.upper()}"] = value
        env.update(self.libpq_env())
        if self.role:  # libpq under dbt's psycopg2 and Soda's psycopg reads it: project files need no change
            env["PGOPTIONS"] = " ".join(filter(None, (os.environ.get("PGOPTIONS"), self.role_option)))
        return env

    def libpq_env(self) -> dict[str, str]:
        """The URL's connection parameters as the environment variables libpq reads (PGSSLMODE, ...)."""
        return {CONNECTION_PARAMETERS[name]: value for name, value in self.options}

    def connection_parameters(self, **given) -> dict[str, object]:
        """The URL's connection parameters with ``given`` ones (a caller's) taking their place.

        A caller's ``connect_timeout`` is a default for its own purpose (fail fast), so the URL's wins.
        """
        parameters: dict[str, object] = {**dict(self.options), **given}
        if self.role:
            parameters["options"] = self.role_option
        if self.option("connect_timeout"):
            parameters["connect_timeout"] = int(self.option("connect_timeout"))
        return parameters

    def connect(self, **settings):
        """A psycopg connection to this database (settings: autocommit, connect_timeout, application_name...).

        A destination that cannot be reached raises psycopg's OperationalError whose message names the
        destination (password masked) before libpq's reason; the driver's own error is its cause.
        """
        import psycopg

        try:
            return psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password or None,
                dbname=self.database,
                **self.connection_parameters(**settings),
            )
        except psycopg.OperationalError as error:
            raise psycopg.OperationalError(self.unreachable(error)) from error

    def unreachable(self, error: BaseException) -> str:
        """A connection failure in one line: the destination (password masked), then the driver's reason."""
        reason = " ".join(str(error).split())
        if self.password:
            reason = reason.replace(self.password, "***")
        return f"cannot connect to the destination {self.safe_url}: {reason}"

    def column_types(self, schema: str) -> dict[tuple[str, str], str]:
        """(table, column) -> the column's SQL type, for every table of ``schema`` (empty if it does not exist).

        Through psycopg2, the driver dlt loads with: the load path then imports no second driver.
        """
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password or None,
                                      dbname=self.database, **self.connection_parameters(connect_timeout=10))
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

    def dlt_credentials(self, application_name: str | None = None) -> dict[str, object]:
        """dlt's PostgresCredentials: the URL's parameters go in ``query``, which dlt's psycopg2 connection and
        the COPY's (psycopg for pgpq's, ADBC for the driver's) all receive in the URL dlt renders
        (``to_native_representation``); ``application_name`` names all those connections."""
        # dlt insists on a password field even where the server trusts the connection.
        credentials: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "username": self.user,
            "password": self.password,
            "database": self.database,
        }
        query = {name: value for name, value in self.options if name != "connect_timeout"}
        if self.role:  # dlt puts `options` in front of its own, for psycopg2 and the copy jobs alike
            query["options"] = self.role_option
        if application_name:
            query["application_name"] = application_name
        if query:
            credentials["query"] = query
        if self.option("connect_timeout"):  # a field of its own: dlt writes it over the query's
            credentials["connect_timeout"] = int(self.option("connect_timeout"))
        return credentials


def connection_options(query: str) -> tuple[tuple[str, str], ...]:
    """The connection parameters of a destination URL's query, checked; ValueError names what is wrong."""
    options: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if name == "options" and value.startswith(ROLE_OPTION):  # the role Headwater gave a step (url)
            continue
        if name == "sslpassword":
            raise ValueError(
                f"{DATABASE_URL_ENV}: sslpassword is not supported: dbt cannot pass a client key's passphrase. "
                "Use a client key without one (sslkey=...), readable only by the user that runs Headwater "
                "(chmod 600)"
            )
        if name not in CONNECTION_PARAMETERS:
            raise ValueError(
                f"{DATABASE_URL_ENV}: unknown connection parameter {name!r}; the destination URL takes "
                f"{', '.join(CONNECTION_PARAMETERS)}"
            )
        if any(name == seen for seen, _ in options):
            raise ValueError(f"{DATABASE_URL_ENV}: connection parameter {name!r} is given twice")
        if not value:
            raise ValueError(f"{DATABASE_URL_ENV}: connection parameter {name!r} has no value")
        if " " in value:  # dlt renders its URL with spaces as '+', which libpq reads as a '+'
            raise ValueError(f"{DATABASE_URL_ENV}: {name} holds a space, which dlt cannot pass on: "
                             "use a value (a file's path) without spaces")
        if name == "sslmode" and value not in SSL_MODES:
            raise ValueError(f"{DATABASE_URL_ENV}: sslmode={value!r} is not one of {', '.join(SSL_MODES)}")
        if name == "connect_timeout" and not value.isdigit():
            raise ValueError(f"{DATABASE_URL_ENV}: connect_timeout={value!r} must be a whole number of seconds")
        options.append((name, value))
    return tuple(options)


def role_in(query: str) -> str | None:
    """The role a URL rendered by ``PostgresAddress.url`` names in its ``options``, if any."""
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name == "options" and value.startswith(ROLE_OPTION):
            return value.removeprefix(ROLE_OPTION)
    return None

"""Which backend reads a database's tables, and the connection URL connectorx expects.

A URL's TLS options are passed on to connectorx in the form it takes, and where connectorx cannot give the
protection they ask for (a host name check, a revocation list...), the tables are read with pyarrow, whose
driver (libpq, PyMySQL) takes the options as they are: a connection is never less protected than its URL says.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

logger = logging.getLogger(__name__)

CONNECTORX = "connectorx"
PYARROW = "pyarrow"

# SQLAlchemy dialect name -> URL scheme connectorx reads; connectorx speaks MariaDB through its MySQL client.
CONNECTORX_SCHEMES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
# Query parameters SQLAlchemy drivers accept that connectorx rejects as unknown. Both only pick the client
# character set, and connectorx always exchanges UTF-8 with the server.
DRIVER_ONLY_PARAMETERS = {"postgresql": {"client_encoding"}, "mysql": {"charset"}}
# libpq's variables for the TLS parameters connectorx can take: libpq reads them when the URL sets none,
# connectorx does not, so they are added to its URL.
LIBPQ_TLS_VARIABLES = {"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
                       "sslkey": "PGSSLKEY"}
# Where libpq looks for a root certificate when none is named.
LIBPQ_DEFAULT_ROOT_CERT = Path("~/.postgresql/root.crt")
# SQLAlchemy's MySQL TLS parameters (PyMySQL takes them as its `ssl` settings) that connectorx has no form for.
MYSQL_TLS_WITHOUT_CONNECTORX = ("ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher", "ssl_key_password",
                                "ssl_verify_cert", "ssl_verify_identity", "ssl_disabled", "ssl")
FALSE_WORDS = {"false", "0", "no", "off", "n", "f"}


class ConnectorxCannotProtect(ValueError):
    """connectorx cannot connect with the protection the URL's TLS options ask for; the message says why."""


def choose_backend(credentials: object, requested: str | None) -> str:
    """The backend for a source: ``requested`` when set, otherwise the fastest one that reads this database.

    connectorx reads PostgreSQL and MySQL/MariaDB into Arrow in native code; any other database, or a
    machine where connectorx cannot be imported, reads through SQLAlchemy into Arrow (pyarrow).
    """
    if requested:
        return requested
    dialect = dialect_of(credentials)
    if dialect not in CONNECTORX_SCHEMES:
        return PYARROW
    try:
        import connectorx  # noqa: F401
    except ImportError as error:
        logger.warning("sql_database: connectorx cannot be imported (%s); reading %s with pyarrow", error, dialect)
        return PYARROW
    try:
        connectorx_url(sa.make_url(str(credentials)))
    except ConnectorxCannotProtect as refusal:
        logger.info("sql_database: reading %s with pyarrow: %s", dialect, refusal)
        return PYARROW
    return CONNECTORX


def dialect_of(credentials: object) -> str | None:
    """The SQLAlchemy dialect of a connection URL (``postgresql``, ``mysql``, ``sqlite``, ...); None if unparsable."""
    try:
        return sa.make_url(str(credentials)).get_backend_name()
    except (sa.exc.ArgumentError, ValueError):
        return None


def connectorx_url(url: sa.URL) -> str:
    """``url`` in the form connectorx takes: no driver suffix, MariaDB as mysql, driver-only parameters dropped,
    TLS options in connectorx's words.

    Raises ConnectorxCannotProtect when connectorx cannot honour the URL's TLS options. The result holds the
    password: pass it to connectorx, never to a log.
    """
    dialect = url.get_backend_name()
    scheme = CONNECTORX_SCHEMES.get(dialect)
    if scheme is None:
        raise ValueError(f"connectorx does not read {dialect} databases")
    query = {name: value for name, value in url.query.items() if name not in DRIVER_ONLY_PARAMETERS[scheme]}
    query = postgres_tls(query) if scheme == "postgresql" else mysql_tls(query)
    return url.set(drivername=scheme, query=query).render_as_string(hide_password=False)


def postgres_tls(query: dict) -> dict:
    """libpq's TLS parameters (URL first, then libpq's variables) as connectorx's PostgreSQL client takes them.

    It knows sslmode disable, prefer and require, and with sslrootcert it checks the server's certificate
    chain: libpq's verify-ca. It cannot check the host name (verify-full), a revocation list, a passphrase.
    """
    query = dict(query)
    for name, variable in LIBPQ_TLS_VARIABLES.items():
        if name not in query and os.environ.get(variable):
            query[name] = os.environ[variable]
    unsupported = sorted(name for name in query if name.startswith("ssl") and name not in LIBPQ_TLS_VARIABLES)
    if unsupported:
        raise ConnectorxCannotProtect(f"connectorx does not support {', '.join(unsupported)}")
    mode = query.get("sslmode", "prefer")
    if mode == "verify-full":
        raise ConnectorxCannotProtect("connectorx cannot check the server's host name (sslmode=verify-full)")
    if mode not in ("disable", "prefer", "require", "verify-ca"):
        raise ConnectorxCannotProtect(f"connectorx does not support sslmode={mode}")
    if ("sslcert" in query) != ("sslkey" in query):
        raise ConnectorxCannotProtect("connectorx takes a client certificate only with both sslcert and sslkey")
    if mode in ("require", "verify-ca") and "sslrootcert" not in query:
        # libpq checks the chain against its default root certificate when that file exists; connectorx must be told.
        default = LIBPQ_DEFAULT_ROOT_CERT.expanduser()
        if default.is_file():
            query["sslrootcert"] = str(default)
        elif mode == "verify-ca":
            raise ConnectorxCannotProtect("sslmode=verify-ca names no sslrootcert and there is no "
                                          "~/.postgresql/root.crt")
    if mode == "verify-ca":
        query["sslmode"] = "require"  # with sslrootcert, connectorx checks the chain: what verify-ca asks
    return query


def mysql_tls(query: dict) -> dict:
    """SQLAlchemy's MySQL TLS parameters as connectorx's MySQL client takes them (ssl-mode, ssl-ca).

    ``ssl_ca`` checks the server's certificate and host name (VERIFY_IDENTITY), with
    ``ssl_check_hostname=false`` the certificate only (VERIFY_CA); ``ssl_check_hostname`` alone asks for
    encryption without checks (REQUIRED), as PyMySQL does.
    """
    unsupported = sorted(name for name in query if name in MYSQL_TLS_WITHOUT_CONNECTORX)
    if unsupported:
        raise ConnectorxCannotProtect(f"connectorx does not support {', '.join(unsupported)}")
    query = dict(query)
    ca = query.pop("ssl_ca", None)
    check_hostname = query.pop("ssl_check_hostname", None)
    if ca is None and check_hostname is None:
        return query
    if ca is None:
        query["ssl-mode"] = "REQUIRED"
        return query
    checks_host = check_hostname is None or str(check_hostname).strip().lower() not in FALSE_WORDS
    query["ssl-mode"] = "VERIFY_IDENTITY" if checks_host else "VERIFY_CA"
    query["ssl-ca"] = ca
    return query


def hide_password(text: str, url: sa.URL) -> str:
    """``text`` (an error message, say) with the URL's password masked, plain or URL-encoded."""
    if not url.password:
        return text
    password = str(url.password)
    for form in {password, quote(password, safe=""), quote(password)}:
        text = text.replace(form, "***")
    return text

"""Which backend reads a database's tables, and the connection URL connectorx expects."""

from __future__ import annotations

import logging
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
    return CONNECTORX


def dialect_of(credentials: object) -> str | None:
    """The SQLAlchemy dialect of a connection URL (``postgresql``, ``mysql``, ``sqlite``, ...); None if unparsable."""
    try:
        return sa.make_url(str(credentials)).get_backend_name()
    except (sa.exc.ArgumentError, ValueError):
        return None


def connectorx_url(url: sa.URL) -> str:
    """``url`` in the form connectorx takes: no driver suffix, MariaDB as mysql, driver-only parameters dropped.

    The result holds the password: pass it to connectorx, never to a log.
    """
    dialect = url.get_backend_name()
    scheme = CONNECTORX_SCHEMES.get(dialect)
    if scheme is None:
        raise ValueError(f"connectorx does not read {dialect} databases")
    query = {name: value for name, value in url.query.items() if name not in DRIVER_ONLY_PARAMETERS[scheme]}
    return url.set(drivername=scheme, query=query).render_as_string(hide_password=False)


def hide_password(text: str, url: sa.URL) -> str:
    """``text`` (an error message, say) with the URL's password masked, plain or URL-encoded."""
    if not url.password:
        return text
    password = str(url.password)
    for form in {password, quote(password, safe=""), quote(password)}:
        text = text.replace(form, "***")
    return text

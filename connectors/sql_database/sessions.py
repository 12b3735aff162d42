"""Session settings every read of a source runs with, so that values arrive the same whichever backend reads them."""

from __future__ import annotations

import sqlalchemy as sa

SESSION_SETTINGS = {
    # interval as text in ISO 8601 (P1Y2M3DT4H5M6.5S): one unambiguous form that casts back to the same interval
    "postgresql": ("SET intervalstyle = 'iso_8601'",),
    # MariaDB converts TIMESTAMP values to the session's zone: read them in UTC, as stored
    "mysql": ("SET time_zone = '+00:00'",),
}


def session_statements(dialect: str) -> tuple[str, ...]:
    return SESSION_SETTINGS.get(dialect, ())


def with_session_settings(engine: sa.Engine) -> sa.Engine:
    """``engine``, its every new connection set up with the dialect's SESSION_SETTINGS (an engine_adapter_callback)."""
    statements = session_statements(engine.dialect.name)
    if statements:
        listener = _listeners.setdefault(engine.dialect.name, _setting(statements))
        if not sa.event.contains(engine, "connect", listener):
            sa.event.listen(engine, "connect", listener)
    return engine


_listeners: dict = {}


def _setting(statements: tuple[str, ...]):
    def apply(dbapi_connection, connection_record) -> None:
        cursor = dbapi_connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()
        dbapi_connection.commit()  # a SET in a transaction that is rolled back would be undone

    return apply

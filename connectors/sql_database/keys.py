"""Every primary key of a source table, read in chunks: what hard-delete detection compares against.

Headwater (``headwater.load.deletes``) streams these chunks into the destination and compares them there,
so this side only has to read, never to sort or compare: one plain ``SELECT key FROM table`` without
ORDER BY, fetched through a server-side cursor (PostgreSQL, MariaDB/MySQL) or SQLite's own lazy cursor.
One statement also means one consistent snapshot of the table where the database has snapshots.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

# The connector's own default (sql_database's chunk_size), when the settings leave it out.
DEFAULT_CHUNK_SIZE = 50_000


def list_keys(settings: dict[str, Any], table: str, columns: Sequence[str]) -> Iterator[Sequence[Sequence]]:
    """The values of ``columns`` of every row of ``table``, ``chunk_size`` rows (the source's setting) at a time.

    ``settings`` are the source's resolved settings (credentials, schema, chunk_size). Each chunk is a list of
    rows, each row a sequence of the key values as the driver returns them (no SQLAlchemy type processing:
    the columns are not reflected). At most one chunk is held in memory: ``yield_per`` makes the driver fetch
    from the server as the chunks are used.
    """
    chunk_size = int(settings.get("chunk_size") or DEFAULT_CHUNK_SIZE)
    engine = sa.create_engine(settings["credentials"])
    try:
        with engine.connect() as connection:
            source = sa.table(table, *(sa.column(name) for name in columns), schema=settings.get("schema"))
            result = connection.execution_options(yield_per=chunk_size).execute(sa.select(*source.columns))
            for partition in result.partitions():
                yield partition
    finally:
        engine.dispose()

"""Every micro-batch of a stream (`headwater stream`), recorded in headwater_ops.stream_batches as it commits.

A stream is one long run (its row in headwater_ops.runs says `running` until it stops); its batches are
recorded one by one, each with the rows it loaded per table and how far its source's feed trailed
(a replication slot's bytes and seconds behind, WAL it makes the server keep), so `headwater status`
shows a stream's progress and lag while it runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from headwater.ops.history import SCHEMA, ensure_schema

if TYPE_CHECKING:
    from headwater.load.pipeline import SourceLoad
    from headwater.postgres.address import PostgresAddress

TABLE = f"{SCHEMA}.stream_batches"  # created by migration step 11 (headwater.ops.history)


@dataclass(frozen=True)
class BatchRecord:
    source: str
    batch: int
    started_at: datetime
    seconds: float
    rows_loaded: int
    rows_quarantined: int
    lag: dict | None
    error: str | None


def record_batch(address: "PostgresAddress", run_id: str, batch: int, started_at: datetime,
                 load: "SourceLoad") -> None:
    tables = {table.table: table.loaded for table in load.tables if table.loaded}
    with address.connect() as connection:
        ensure_schema(connection)
        connection.execute(
            f"insert into {TABLE} (run_id, source, batch, started_at, seconds, rows_loaded, rows_quarantined,"
            " tables, lag, error) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " on conflict (run_id, batch) do nothing",
            (run_id, load.source, batch, started_at, load.seconds, load.rows,
             sum(table.quarantined for table in load.tables), json.dumps(tables),
             None if load.lag is None else json.dumps(load.lag), load.error))


def latest_batches(address: "PostgresAddress") -> list[BatchRecord]:
    """Each source's newest batch, sources in name order."""
    with address.connect() as connection:
        ensure_schema(connection)
        rows = connection.execute(
            f"select distinct on (source) source, batch, started_at, seconds, rows_loaded, rows_quarantined, lag,"
            f" error from {TABLE} order by source, started_at desc, batch desc").fetchall()
    return [BatchRecord(*row) for row in rows]

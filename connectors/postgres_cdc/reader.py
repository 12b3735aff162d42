"""One load of a postgres_cdc source: snapshots where a table has no position, else one batch of changes.

Each table's position (the source LSN its raw rows reach) lives in its dlt resource state, so it commits
in the same load as the rows it describes. A load:

1. moves the slot to the lowest position of the source's tables: every change before it is in raw;
2. gives a table without a position (a first load, a new table, a full refresh) its snapshot: from the
   source's slot when there is none yet (all such tables share its exported snapshot), else from a
   temporary slot created now; the table's position is that slot's consistent point;
3. peeks the slot's next whole transactions, once per load, and gives each other table its folded rows
   (headwater.connectors.postgres_cdc.changes); its position becomes the end of the last transaction.

A load that dies anywhere leaves positions and slot as they were before it; the next one reads the same
changes again, and a transaction a table's position already holds is skipped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import dlt
import psycopg
import pyarrow as pa

from connectors.postgres_cdc import columns as meta
from connectors.postgres_cdc import slot as slots
from connectors.postgres_cdc.changes import Batch, TableFold, fold
from connectors.postgres_cdc.columns import SourceTable
from connectors.postgres_cdc.pgoutput import lsn_number, lsn_text
from connectors.postgres_cdc.snapshot import open_snapshot, snapshot_batches
from headwater.plugins.connectors import STREAM_LAG, in_load

log = logging.getLogger(__name__)

POSITION = "cdc_position"  # resource state key: the LSN the table's raw rows reach, as text
COLUMNS = "cdc_columns"  # resource state key: the source columns and types last seen, for schema changes
# Source state keys: the slot the positions refer to, its generation (a new snapshot of the whole source takes a
# new slot, so the one a committed state names stays intact until the new snapshot commits), and the tables whose
# positions hold the slot back.
SLOT = "cdc_slot"
SLOT_BASE = "cdc_slot_base"  # the slot's name without generation (the slot: setting, or headwater_<source>)
GENERATION = "cdc_slot_generation"
TABLES = "cdc_tables"


@dataclass
class CdcSettings:
    credentials: str
    publication: str
    slot: str
    source_name: str
    max_changes: int
    deletes: dict[str, str]  # table -> apply | flag


@dataclass
class _Load:
    """What one load (one dlt load id) of the source has read so far."""

    load_id: str
    slot: str  # the slot the committed positions refer to
    snapshots: dict[str, tuple[str, int, psycopg.Connection]] = field(default_factory=dict)
    batch: Batch | None = None


class CdcReader:
    """Shared by the source's resources; one load at a time (dlt extracts a source in one thread)."""

    def __init__(self, settings: CdcSettings, tables: dict[str, SourceTable]):
        self.settings, self.tables = settings, tables
        self._load: _Load | None = None
        self._lock = threading.Lock()

    def rows(self, table: str) -> Iterator[pa.Table | dict]:
        """The table's rows for this load; its position is set in its resource state as they are given.

        In `headwater check` (no load), only whether the source can stream is checked: nothing is created or read."""
        if not in_load():
            with slots.connect(self.settings.credentials, autocommit=True) as connection:
                slots.check_ready(connection)
            return
        with self._lock:
            load = self._current_load()
            source_state = dlt.current.source_state()
            source_state[TABLES], source_state[SLOT_BASE] = sorted(self.tables), self.settings.slot
            positions = self._positions()
            if positions.get(table) is None:
                snapshot = self._snapshot_for(load, table, positions)
            else:
                snapshot = None
                batch = self._batch(load, positions)
        source = self.tables[table]
        state = dlt.current.resource_state()
        if snapshot is not None:
            name, position, connection = snapshot
            try:
                started = datetime.now(timezone.utc)
                for part in snapshot_batches(connection, source.schema, source.name, source.columns):
                    yield _with_snapshot_columns(part, position, started, self.settings.deletes[table])
            finally:
                connection.close()
            state[POSITION] = lsn_text(position)
            state[COLUMNS] = {column: hint["data_type"] for column, hint in source.hints.items()}
            return
        folded = batch.folds.get((source.schema, source.name))
        self._report_schema_changes(table, batch, state)
        if folded is not None and (folded.rows or folded.truncated):
            data = folded.table(list(meta.metadata_hints(self.settings.deletes[table])))
            if folded.truncated:  # raw becomes what followed the truncate, in one transaction
                data = dlt.mark.with_hints(data, dlt.mark.make_hints(write_disposition="replace"))
            yield data
        if batch.end is not None and batch.end > positions[table]:
            state[POSITION] = lsn_text(batch.end)

    def _current_load(self) -> _Load:
        load_id = dlt.current.load_package_state()["load_id"]
        if self._load is None or self._load.load_id != load_id:
            if self._load is not None:
                for _, _, connection in self._load.snapshots.values():
                    connection.close()
            self._load = _Load(load_id, dlt.current.source_state().get(SLOT) or self.settings.slot)
        return self._load

    def _positions(self) -> dict[str, int | None]:
        return positions_in(dlt.current.source_state(), list(self.tables))

    def _snapshot_for(self, load: _Load, table: str, positions: dict) -> tuple[str, int, psycopg.Connection]:
        if table in load.snapshots:
            return load.snapshots.pop(table)
        settings = self.settings
        first = all(position is None for position in positions.values())
        source_state = dlt.current.source_state()
        if first:  # nothing loaded yet, or the whole source refreshed: a slot of a new generation
            generation = source_state.get(GENERATION, -1) + 1 if SLOT in source_state else 0
            slot_name = settings.slot if generation == 0 else f"{settings.slot}_{generation}"
        else:  # a table added or refreshed alone: a temporary slot gives its snapshot
            slot_name = f"{settings.slot}_{load.load_id.replace('.', '_')}"[:63]
        with slots.connect(settings.credentials, autocommit=True) as admin:
            slots.check_ready(admin)
            slots.ensure_publication(admin, settings.publication,
                                     [(source.schema, source.name) for source in self.tables.values()])
            if first:  # a slot of that name was made by a load of that generation that never committed
                slots.drop_slot(admin, slot_name)
            else:
                self._check_slot(admin, load.slot, positions)
        needing = [name for name, position in positions.items() if position is None and name not in load.snapshots]
        with slots.created_slot(settings.credentials, slot_name, temporary=not first) as exported:
            for name in needing:  # each opens the snapshot while the slot's connection still holds it
                connection = slots.connect(settings.credentials, autocommit=True)
                open_snapshot(connection, exported.snapshot)
                load.snapshots[name] = (exported.snapshot, exported.position, connection)
        if first:
            source_state[SLOT], source_state[GENERATION] = slot_name, generation
        log.info("%s: snapshot of %s at %s", settings.source_name, ", ".join(needing), lsn_text(exported.position))
        return load.snapshots.pop(table)

    def _batch(self, load: _Load, positions: dict) -> Batch:
        if load.batch is not None:
            return load.batch
        settings = self.settings
        known = {name: position for name, position in positions.items() if position is not None}
        with slots.connect(settings.credentials, autocommit=True) as admin:
            self._check_slot(admin, load.slot, positions)
            slots.take_over(admin, load.slot)  # from a session of a load that died
            slots.advance(admin, load.slot, min(known.values()))  # every change before it is in raw
            slots.drop_superseded(admin, settings.slot, load.slot)
        with slots.connect(settings.credentials) as reading:
            resources = dlt.current.source_state().get("resources", {})
            # Columns raw has from earlier batches count too: one the source dropped keeps its values in raw.
            folds = {(self.tables[name].schema, self.tables[name].name):
                     TableFold(key=self.tables[name].key, deletes=settings.deletes[name],
                               columns=list(dict.fromkeys([*self.tables[name].columns,
                                                           *resources.get(name, {}).get(COLUMNS, {})])))
                     for name in known}
            by_name = {(self.tables[name].schema, self.tables[name].name): position
                       for name, position in known.items()}
            load.batch = fold(slots.peek(reading, load.slot, settings.publication, settings.max_changes),
                              folds, by_name)
            lag = slots.wal_lag(reading, load.slot, load.batch.end or min(known.values()))
        # Behind: how old the changes not in raw after this batch can be. A batch that took all the slot had leaves
        # none (an idle source is not behind); a full one leaves changes committed after its last, so younger.
        full = load.batch.messages >= settings.max_changes
        behind = datetime.now(timezone.utc) - load.batch.last_commit if full and load.batch.last_commit else None
        lag["behind_seconds"] = round(behind.total_seconds(), 3) if behind else 0.0
        lag["changes"] = sum(fold.changes for fold in load.batch.folds.values())
        lag["transactions"] = load.batch.transactions
        dlt.current.source_state()[STREAM_LAG] = lag
        return load.batch

    def _check_slot(self, admin: psycopg.Connection, slot: str, positions: dict) -> None:
        known = [position for position in positions.values() if position is not None]
        slots.check_usable(slots.slot_state(admin, slot), slot, min(known), self.settings.source_name)

    def _report_schema_changes(self, table: str, batch: Batch, state: dict) -> None:
        """Say once what changed in the source table's columns since the last batch: raw keeps a dropped column
        (recorded with no type, so it is said once) and its type for a column whose type changed."""
        source = self.tables[table]
        before = state.get(COLUMNS) or {}
        current = {column: hint["data_type"] for column, hint in source.hints.items()}
        relation = batch.relations.get((source.schema, source.name))
        if relation is not None:  # a column dropped since the table was read is missing from the stream
            current = {name: kind for name, kind in current.items()
                       if name in {column.name for column in relation.columns}}
        name_of = self.settings.source_name
        for name in sorted(name for name, kind in before.items() if kind is not None and name not in current):
            log.warning("%s: column %s.%s was dropped in the source; raw keeps the column and each row's last "
                        "value", name_of, table, name)
        for name in sorted(name for name in current if before.get(name) not in (None, current[name])):
            log.warning("%s: column %s.%s changed type in the source (%s, now %s); raw keeps %s, and a value "
                        "that does not fit it goes to the table's quarantine", name_of, table, name, before[name],
                        current[name], before[name])
        for name in sorted(name for name in current if name not in before and before):
            log.warning("%s: column %s.%s is new in the source; raw gets it too", name_of, table, name)
        state[COLUMNS] = {**{name: None for name in before if name not in current}, **current}


def positions_in(source_state: dict, tables: list[str]) -> dict[str, int | None]:
    """Each table's position in a source state; None for a table without one (never loaded, or refreshed)."""
    resources = source_state.get("resources", {})
    found = {}
    for table in tables:
        text = resources.get(table, {}).get(POSITION)
        found[table] = lsn_number(text) if text else None
    return found


def acknowledge(settings: dict, source_state: dict) -> None:
    """Advance the slot to what a committed load's state says every table holds (Connector.acknowledge)."""
    positions = [position for position in positions_in(source_state, source_state.get(TABLES, [])).values()
                 if position is not None]
    if positions and source_state.get(SLOT):
        with slots.connect(settings["credentials"], autocommit=True) as admin:
            slots.advance(admin, source_state[SLOT], min(positions))
            slots.drop_superseded(admin, source_state.get(SLOT_BASE, source_state[SLOT]), source_state[SLOT])


def _with_snapshot_columns(batch: pa.RecordBatch, position: int, started: datetime, deletes: str) -> pa.Table:
    rows = batch.num_rows
    table = pa.Table.from_batches([batch])
    table = table.append_column(meta.LSN, pa.array([position] * rows, pa.int64()))
    table = table.append_column(meta.OPERATION, pa.array(["snapshot"] * rows, pa.string()))
    table = table.append_column(meta.COMMITTED_AT, pa.array([started] * rows, pa.timestamp("us", tz="UTC")))
    table = table.append_column(meta.UNCHANGED_COLUMNS, pa.nulls(rows, pa.string()))
    if deletes == "flag":
        return table.append_column(meta.DELETED_AT, pa.nulls(rows, pa.timestamp("us", tz="UTC")))
    return table.append_column(meta.DELETED, pa.array([False] * rows, pa.bool_()))

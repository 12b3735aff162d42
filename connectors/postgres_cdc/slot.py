"""The source's publication and replication slot: created, read, advanced, dropped, and checked for loss.

Changes are read with ``pg_logical_slot_peek_binary_changes``: peeking leaves the slot where it was, so
a run that dies before its load committed reads the same changes again. The slot is moved forward only
to a position the destination has committed (``advance``), never past it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from connectors.postgres_cdc.pgoutput import lsn_number, lsn_text

# Output settings under which PostgreSQL's text of every value is one its input function reads back
# exactly, in any session: ISO dates, UTC, every float digit, hex bytea, the standard interval form.
EXACT_TEXT_OPTIONS = ("-c DateStyle=ISO,YMD -c TimeZone=UTC -c extra_float_digits=3 -c bytea_output=hex"
                      " -c IntervalStyle=postgres -c application_name=headwater-cdc")


class SlotError(RuntimeError):
    """The slot cannot give a gapless feed any more; the message says what to do."""


@dataclass(frozen=True)
class SlotState:
    name: str
    confirmed: int | None  # confirmed_flush_lsn: what the slot will give from
    restart: int | None
    wal_status: str | None  # reserved, extended, unreserved, lost (PostgreSQL 13+)
    invalidated: str | None  # why PostgreSQL invalidated it (17+), else None


def connect(credentials: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(credentials, options=EXACT_TEXT_OPTIONS, **kwargs)


def slot_state(connection: psycopg.Connection, slot: str) -> SlotState | None:
    row = connection.execute(
        "select slot_name, confirmed_flush_lsn::text, restart_lsn::text, wal_status,"
        " to_jsonb(s) ->> 'invalidation_reason'"
        " from pg_replication_slots s where slot_name = %s", (slot,)).fetchone()
    if row is None:
        return None
    return SlotState(row[0], _lsn(row[1]), _lsn(row[2]), row[3], row[4])


def check_usable(state: SlotState | None, slot: str, position: int, source_hint: str) -> SlotState:
    """The slot, if it can still give every change after ``position``; else SlotError with the way out."""
    how = (f"changes after the last load may be lost: take a new snapshot with "
           f"`headwater run --full-refresh {source_hint}`, which creates the slot again")
    if state is None:
        raise SlotError(f"replication slot {slot!r} is gone from the source database; {how}")
    if state.wal_status == "lost" or state.invalidated:
        reason = state.invalidated or "the server removed WAL it still needed (max_slot_wal_keep_size)"
        raise SlotError(f"replication slot {slot!r} was invalidated ({reason}); {how}")
    if state.confirmed is not None and state.confirmed > position:
        raise SlotError(f"replication slot {slot!r} was moved past what was loaded (to "
                        f"{lsn_text(state.confirmed)}, loaded up to {lsn_text(position)}) by something other than "
                        f"this source; {how}")
    return state


def check_ready(connection: psycopg.Connection) -> None:
    """SlotError saying what to change when the source database or the role cannot stream changes."""
    level = connection.execute("show wal_level").fetchone()[0]
    if level != "logical":
        raise SlotError(f"the source database runs wal_level = {level}: set wal_level = logical in postgresql.conf "
                        "and restart it (docs/streaming.md)")
    role, may = connection.execute("select current_user, rolreplication or rolsuper from pg_roles"
                                   " where rolname = current_user").fetchone()
    if not may:
        raise SlotError(f"role {role} may not replicate: ALTER ROLE {role} REPLICATION (docs/streaming.md)")


def ensure_publication(connection: psycopg.Connection, publication: str, tables: list[tuple[str, str]]) -> None:
    """The publication exists and publishes every table (schema, name); tables are added, none removed."""
    exists = connection.execute("select 1 from pg_publication where pubname = %s", (publication,)).fetchone()
    names = sql.SQL(", ").join(sql.Identifier(schema, name) for schema, name in tables)
    if not exists:
        connection.execute(sql.SQL("create publication {} for table {}").format(sql.Identifier(publication), names))
        return
    published = {tuple(row) for row in connection.execute(
        "select schemaname, tablename from pg_publication_tables where pubname = %s", (publication,))}
    missing = [table for table in tables if table not in published]
    if missing:
        connection.execute(sql.SQL("alter publication {} add table {}").format(
            sql.Identifier(publication), sql.SQL(", ").join(sql.Identifier(*table) for table in missing)))


@dataclass(frozen=True)
class ExportedSnapshot:
    slot: str
    position: int  # the slot's consistent point: the snapshot holds every transaction committed before it
    snapshot: str  # the name SET TRANSACTION SNAPSHOT takes


@contextmanager
def created_slot(credentials: str, slot: str, temporary: bool = False) -> Iterator[ExportedSnapshot]:
    """A new logical slot and the snapshot it exported, usable while the context is open.

    A temporary slot lives only for the context: it gives the snapshot of a table added to a source whose
    slot already streams, at a point that slot has not passed."""
    with psycopg.connect(credentials, replication="database", autocommit=True) as replication:
        command = (f"CREATE_REPLICATION_SLOT {_identifier(slot)} {'TEMPORARY ' if temporary else ''}"
                   "LOGICAL pgoutput EXPORT_SNAPSHOT")
        result = replication.pgconn.exec_(command.encode())
        if result.error_message:
            raise SlotError(f"could not create replication slot {slot!r}: {result.error_message.decode().strip()}")
        yield ExportedSnapshot(slot, lsn_number(result.get_value(0, 1).decode()), result.get_value(0, 2).decode())


def drop_slot(connection: psycopg.Connection, slot: str) -> bool:
    """Drop the slot if it exists; False when there was none."""
    if slot_state(connection, slot) is None:
        return False
    take_over(connection, slot)
    connection.execute("select pg_drop_replication_slot(%s)", (slot,))
    return True


def take_over(connection: psycopg.Connection, slot: str, wait_seconds: float = 10.0) -> None:
    """End the session still using the slot: one of a load that died (the server finishes a peek before it
    notices its client is gone). Only the load holding the source's lock calls this, so no live load uses it."""
    row = connection.execute("select active_pid from pg_replication_slots where slot_name = %s", (slot,)).fetchone()
    if row is None or row[0] is None:
        return
    connection.execute("select pg_terminate_backend(%s)", (row[0],))
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        row = connection.execute("select active_pid from pg_replication_slots where slot_name = %s",
                                 (slot,)).fetchone()
        if row is None or row[0] is None:
            return
        time.sleep(0.05)
    raise SlotError(f"replication slot {slot!r} is still in use by session {row[0]}, which did not end")


def drop_superseded(connection: psycopg.Connection, base: str, current: str) -> list[str]:
    """Drop this database's slots of earlier generations of ``base`` (base, base_1, base_2...) but ``current``:
    a whole-source snapshot replaced them once it committed. A slot still in use by a dying session stays for
    the next call."""
    dropped = []
    for (name,) in connection.execute(
            "select slot_name from pg_replication_slots where database = current_database() and slot_type = 'logical'"
            " and (slot_name = %s or slot_name ~ ('^' || %s || '_[0-9]+$')) and slot_name <> %s",
            (base, base, current)).fetchall():
        try:
            connection.execute("select pg_drop_replication_slot(%s)", (name,))
            dropped.append(name)
        except psycopg.errors.ObjectInUse as busy:
            if not current:  # asked to drop them all: one in use must be said, not skipped
                raise SlotError(f"replication slot {name!r} is in use by a running load or stream; stop it "
                                "first") from busy
            continue
    return dropped


def advance(connection: psycopg.Connection, slot: str, position: int) -> None:
    """Move the slot to ``position`` (a committed load's), so the server may recycle the WAL before it."""
    state = slot_state(connection, slot)
    if state is not None and (state.confirmed or 0) < position:
        take_over(connection, slot)
        connection.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)", (slot, lsn_text(position)))


def peek(connection: psycopg.Connection, slot: str, publication: str, max_changes: int) -> Iterator[bytes]:
    """The slot's next messages, whole transactions up to about ``max_changes`` changes, without consuming them."""
    with connection.cursor(name="headwater_cdc_peek") as cursor:
        cursor.itersize = 5_000
        cursor.execute(
            "select data from pg_logical_slot_peek_binary_changes(%s, NULL, %s,"
            " 'proto_version', '1', 'publication_names', %s)", (slot, max_changes, publication))
        for (data,) in cursor:
            yield data


def wal_lag(connection: psycopg.Connection, slot: str, position: int) -> dict:
    """How far raw trails the server: WAL bytes after ``position`` (what raw holds), and the WAL the server keeps
    for the slot."""
    row = connection.execute(
        "select pg_current_wal_lsn() - %s::pg_lsn, pg_current_wal_lsn() - restart_lsn"
        " from pg_replication_slots where slot_name = %s", (lsn_text(position), slot)).fetchone()
    return {"lag_bytes": max(int(row[0] or 0), 0), "retained_wal_bytes": int(row[1] or 0)} if row else {}


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lsn(text: str | None) -> int | None:
    return None if text is None else lsn_number(text)

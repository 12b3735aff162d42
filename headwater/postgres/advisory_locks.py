"""Locks held in the destination database, so that work on one thing never overlaps, whoever starts it.

A run on this machine, a scheduled run on a worker elsewhere and a second project folder pointing at
the same database all meet in the destination, so that is where the lock lives: a Postgres
session-level advisory lock, held by a connection of its own for as long as the work lasts. When the
process dies, Postgres closes the connection and releases the lock: a crash never leaves one behind.

The holder names itself in ``application_name``, so a waiting run can say who it waits for.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater.postgres.address import PostgresAddress

# How often a waiting run tries the lock again, and how often it says it is still waiting.
_RETRY_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)
_REPORT_EVERY_SECONDS = 30.0
# application_name holds at most 63 bytes (NAMEDATALEN - 1); longer names are cut by the server.
_APPLICATION_NAME_BYTES = 63


class LockNotAcquired(Exception):
    """Another session held the lock for the whole time this one was willing to wait."""

    def __init__(self, name: str, holder: str | None, waited: float):
        self.name = name
        self.holder = holder
        self.waited = waited
        who = f" by {holder}" if holder else ""
        super().__init__(f"{name} is held{who}; gave up after waiting {waited:.0f} s")


@dataclass(frozen=True)
class HeldLock:
    name: str
    waited: float  # seconds spent waiting for it (0 when it was free)
    holder_before: str | None  # who held it when this session first asked, if anyone


def lock_key(name: str) -> int:
    """The 64-bit advisory lock key of a name (stable across processes, machines and Python versions)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock(address: "PostgresAddress", name: str, holder: str, wait_seconds: float,
                  waiting: Callable[[str], None] | None = None) -> Iterator[HeldLock]:
    """Hold the lock ``name`` for the block, waiting up to ``wait_seconds`` for another holder to let go.

    ``holder`` says who holds it, for anyone waiting (e.g. "headwater run 3f2a… loading shop_db").
    ``waiting`` is told when this session has to wait, and every 30 s while it still does.
    Raises LockNotAcquired when the time runs out.
    """
    key = lock_key(name)
    connection = address.connect(autocommit=True, application_name=holder.encode()[:_APPLICATION_NAME_BYTES]
                                 .decode(errors="ignore"))
    try:
        started = time.monotonic()
        first_holder = None
        attempt = 0
        next_report = 0.0
        while not connection.execute("select pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
            waited = time.monotonic() - started
            current = lock_holder(connection, key)
            first_holder = first_holder or current
            if waited >= wait_seconds:
                raise LockNotAcquired(name, current, waited)
            if waiting and waited >= next_report:
                waiting(f"waiting for {name}, held by {current or 'another session'}"
                        f" ({waited:.0f} s of {wait_seconds:.0f} s)")
                next_report = waited + _REPORT_EVERY_SECONDS
            time.sleep(min(_RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)], wait_seconds - waited))
            attempt += 1
        yield HeldLock(name, time.monotonic() - started, first_holder)
    finally:
        # Closing the session releases its advisory locks, also when the block raised.
        connection.close()


def lock_is_free(address: "PostgresAddress", name: str) -> bool:
    """Nobody holds ``name`` right now (checked by taking the lock and letting it go at once)."""
    key = lock_key(name)
    with address.connect(autocommit=True) as connection:
        taken = connection.execute("select pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        if taken:
            connection.execute("select pg_advisory_unlock(%s)", (key,))
        return taken


def lock_holder(connection, key: int) -> str | None:
    """The application name (or pid) of the session holding advisory lock ``key``, if any."""
    # A bigint key is stored as two 32-bit halves: classid (high) and objid (low), objsubid 1.
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    row = connection.execute(
        "select a.application_name, l.pid from pg_locks l left join pg_stat_activity a on a.pid = l.pid "
        "where l.locktype = 'advisory' and l.granted and l.objsubid = 1 "
        "and l.classid = %s::bigint::oid and l.objid = %s::bigint::oid and l.database = "
        "(select oid from pg_database where datname = current_database()) limit 1",
        (unsigned >> 32, unsigned & 0xFFFFFFFF),
    ).fetchone()
    if row is None:
        return None
    name, pid = row
    return name or f"Postgres session {pid}"

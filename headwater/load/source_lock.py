"""One run at a time per source: the lock every writer of a source's raw schema takes first.

Loads, `quarantine replay` and `headwater recover` all write raw_<source> and use the source's dlt
working folder (its pending load packages and local state). Two of them at once, in one project
folder or in two pointing at the same database, would load the same package twice or each other's
half-written files. Each takes this lock, held in the destination (headwater.postgres.advisory_locks),
so the second waits for the first and, past its patience (`run.lock_wait`), does nothing.

A run that dies does not take its statements with it: the server finishes what a session was running (a
merge, its COMMIT) before it notices the client is gone, and the lock, on a connection of its own, is free
sooner. Every connection of a source's load names the source (``load_application_name``); whoever takes
the lock ends such sessions first (``end_dead_sessions``), so recovery never races a dead run's merge.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from headwater.postgres.advisory_locks import HeldLock, LockNotAcquired, advisory_lock

if TYPE_CHECKING:
    from headwater.postgres.address import PostgresAddress

__all__ = ["LockNotAcquired", "end_dead_sessions", "load_application_name", "source_lock", "source_lock_name"]

log = logging.getLogger(__name__)

# How long the sessions of a dead run are given to end once told to (they end within milliseconds).
_DEAD_SESSIONS_WAIT_SECONDS = 10.0


def load_application_name(source: str) -> str:
    """The application_name of every destination connection of a source's load: 63 bytes at most, and nothing a
    URL would encode (a space becomes "+" in the URL dlt renders)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"headwater-load-{source}").encode()[:63].decode(errors="ignore")


def end_dead_sessions(address: "PostgresAddress", source: str) -> int:
    """End the destination sessions a dead run of ``source`` left working; the caller holds the source's lock, so
    no live load of it has any. Returns how many there were."""
    name = load_application_name(source)
    query = ("select pid from pg_stat_activity where application_name = %s and pid <> pg_backend_pid()"
             " and datname = current_database()")
    try:
        with address.connect(autocommit=True) as connection:
            pids = [pid for (pid,) in connection.execute(query, (name,))]
            for pid in pids:
                connection.execute("select pg_terminate_backend(%s)", (pid,))
            deadline = time.monotonic() + _DEAD_SESSIONS_WAIT_SECONDS
            while pids and connection.execute(query, (name,)).fetchone() and time.monotonic() < deadline:
                time.sleep(0.05)
    except Exception as error:  # not allowed to end them (another role's): the load goes on and may meet them
        log.warning("%s: could not end the destination sessions an interrupted run left working: %s", source, error)
        return 0
    if pids:
        log.warning("%s: ended %d destination session(s) an interrupted run left working", source, len(pids))
    return len(pids)


def source_lock_name(source: str) -> str:
    """The lock of a source; the database it is held in is the destination, so it is per destination too."""
    return f"source {source}"


@contextmanager
def source_lock(address: "PostgresAddress", source: str, wait_seconds: float, purpose: str = "loading",
                waiting: Callable[[str], None] | None = None) -> Iterator[HeldLock]:
    """Hold source ``source`` for the block; ``purpose`` tells waiters what this session does with it
    (e.g. "run 3f2a… loading", "quarantine replay"). Raises LockNotAcquired after ``wait_seconds``."""
    holder = f"headwater {purpose} {source}"
    with advisory_lock(address, source_lock_name(source), holder, wait_seconds, waiting) as held:
        yield held

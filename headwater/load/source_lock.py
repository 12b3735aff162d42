"""One run at a time per source: the lock every writer of a source's raw schema takes first.

Loads, `quarantine replay` and `headwater recover` all write raw_<source> and use the source's dlt
working folder (its pending load packages and local state). Two of them at once, in one project
folder or in two pointing at the same database, would load the same package twice or each other's
half-written files. Each takes this lock, held in the destination (headwater.postgres.advisory_locks),
so the second waits for the first and, past its patience (`run.lock_wait`), does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from headwater.postgres.advisory_locks import HeldLock, LockNotAcquired, advisory_lock

if TYPE_CHECKING:
    from headwater.postgres.address import PostgresAddress

__all__ = ["LockNotAcquired", "source_lock", "source_lock_name"]


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

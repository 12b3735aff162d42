"""One dbt build and publish at a time per destination.

Two runs that both loaded new rows would otherwise build the same models into the same audit
schema and swap them into `marts` over each other. The second waits for the first (up to
`run.lock_wait`) and then builds what is still behind; past that time it leaves its tables in
headwater_ops.pending_rebuilds for the next run (headwater.ops.pending).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from headwater.postgres.advisory_locks import HeldLock, advisory_lock

if TYPE_CHECKING:
    from headwater.postgres.address import PostgresAddress

BUILD_LOCK = "dbt build and publish"


@contextmanager
def build_lock(address: "PostgresAddress", wait_seconds: float,
               waiting: Callable[[str], None] | None = None) -> Iterator[HeldLock]:
    """Hold the destination's build-and-publish lock for the block (LockNotAcquired after ``wait_seconds``)."""
    holder = f"headwater build pid {os.getpid()} on {socket.gethostname()}"
    with advisory_lock(address, BUILD_LOCK, holder, wait_seconds, waiting) as held:
        yield held

"""Produce the next items of an iterator in a background thread while the caller works on the current one.

Reading a landing file (Arrow's CSV and Parquet readers) and writing load files (Parquet) both
release the GIL, so reading block n+1 while block n is processed uses the second core instead of
leaving it idle. At most ``depth`` items wait in between, so memory stays bounded.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from queue import Empty, Full, Queue
from typing import Iterator, TypeVar

from dlt.common.configuration.container import Container

T = TypeVar("T")
_POLL_SECONDS = 0.1


@dataclass
class _End:
    error: BaseException | None = None


def read_ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """The items of ``items`` in order; an error raised while producing them is raised here, in the caller."""
    queue: Queue = Queue(maxsize=depth)
    stopped = threading.Event()

    def put(value) -> bool:
        while not stopped.is_set():
            try:
                queue.put(value, timeout=_POLL_SECONDS)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_End())
        except BaseException as error:  # handed to the caller, which decides what it means
            put(_End(error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator's own cleanup (open files) runs in the thread that ran it
                close()

    thread = threading.Thread(target=produce, name=f"{_context_prefix()}headwater-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            value = queue.get()
            if isinstance(value, _End):
                if value.error is not None:
                    raise value.error
                return
            yield value
    finally:
        stopped.set()
        _drain(queue)
        thread.join()


def _context_prefix() -> str:
    """dlt keeps a pipeline's context (its state, the incremental cursors a resource reads) per thread, and a
    thread named with its pool prefix shares the context of the thread the prefix names. The caller's own
    prefix when it is itself in a dlt pool (a resource dlt runs in parallel), else one naming the caller."""
    caller = threading.current_thread().name
    pooled = re.match(r"dlt-pool-\d+-", caller)
    return pooled.group(0) if pooled else Container.thread_pool_prefix()


def _drain(queue: Queue) -> None:
    while True:
        try:
            queue.get_nowait()
        except Empty:
            return

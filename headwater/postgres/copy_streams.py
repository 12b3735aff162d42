"""One load file copied into its table over several connections at once, committed together.

Binary COPY costs CPU on both sides: the client encodes every value and the server decodes and writes
it. Several streams, each its own connection and transaction fed from the same file, spread the
server's share over more cores. How many pay depends on the encoder: the ADBC driver's encoding costs
about as much CPU as the server's insert, so with it a stream takes 2 cores (on 2 cores, 2 streams
measured no faster than 1); pgpq's (headwater.postgres.binary_copy) costs a fraction, so a stream
takes about 1 core (on 2 cores, 2 pgpq streams copy 1M rows in ~0.8× the time of one). Streams start
only for files of at least ``ROWS_PER_STREAM`` rows per stream (``copy_streams``).

**Exact under failures and kills.** The streams commit only once every one of them has copied all it
was given: a refused row or a lost connection rolls them all back, as one stream would. The commits
themselves cannot be one transaction (Postgres commits each connection alone, and prepared
transactions are off by default), so a file in the load package (``PartialCopy``) says "this job's
rows may be in the table in part" from before the first commit until after the last. Whoever runs the
job next (dlt retrying it in the same run, or the next run after a kill) deletes the job's load id from
the table first. That is exact because a table has one copy job per load package: every row of that
load id in that table comes from this job. (A kill between the commits is also what
headwater.load.recovery cleans up for any unfinished copy job.)
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

# Forces the number of COPY streams (1 turns them off); unset, it follows the core count.
STREAMS_VARIABLE = "HEADWATER_COPY_STREAMS"
# Rows each stream should get at least: below that, opening connections costs more than it saves.
ROWS_PER_STREAM = 500_000
MAX_STREAMS = 4
# The load package's folder for markers of copies committed in part (dlt ignores folders it does not know).
PARTIAL_FOLDER = "headwater_partial_copies"


def copy_streams(rows: int, cores_per_stream: int = 2) -> int:
    """How many connections copy a load file of ``rows`` rows.

    ``cores_per_stream``: the cores one stream keeps busy. The ADBC driver's encoding costs a client core
    as much as the server's insert costs one of the server's (2); pgpq's costs a fraction (1).
    """
    configured = os.environ.get(STREAMS_VARIABLE, "").strip()
    if configured:
        if not configured.isdigit():
            raise ValueError(f"{STREAMS_VARIABLE} must be a whole number of COPY streams (1 turns them off), "
                             f"got {configured!r}; set it to a number or unset it")
        return max(1, int(configured))
    by_cores = min(MAX_STREAMS, (os.cpu_count() or 1) // cores_per_stream)
    return max(1, min(by_cores, rows // ROWS_PER_STREAM))


class PartialCopy:
    """The marker of a job whose streams were being committed: its rows may be in the table in part."""

    def __init__(self, job_file_path: str, job_id: str):
        # job_file_path is <package>/<jobs state folder>/<file>; the marker outlives the job's moves and retries.
        self.path = Path(job_file_path).parent.parent / PARTIAL_FOLDER / job_id

    def left_behind(self) -> bool:
        return self.path.exists()

    def write(self) -> None:
        self.path.parent.mkdir(exist_ok=True)
        self.path.write_text("streams committed in part; delete this job's load id before copying again\n")

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def copy_in_streams(connect: Callable[[], object], streams: int, batches: pa.RecordBatchReader,
                    copy: Callable[[object, pa.RecordBatchReader], object], partial: PartialCopy) -> None:
    """Copy ``batches`` over ``streams`` connections from ``connect``, then commit them all.

    ``copy(cursor, reader)`` copies one stream's share; the first error of any stream stops the others
    and is raised here, with nothing committed.
    """
    shared = _SharedBatches(batches)
    connections = []
    try:
        for _ in range(streams):
            connections.append(connect())
        errors: list[BaseException] = []

        def stream(connection) -> None:
            try:
                with connection.cursor() as cursor:
                    copy(cursor, pa.RecordBatchReader.from_batches(batches.schema, shared.batches()))
            except BaseException as error:  # raised in the calling thread below
                errors.append(error)
                shared.stop()

        threads = [threading.Thread(target=stream, args=(connection,), name=f"headwater-copy-{index}")
                   for index, connection in enumerate(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        partial.write()
        for connection in connections:
            connection.commit()
        partial.clear()
    finally:
        for connection in connections:  # a connection closed before its commit rolls back
            connection.close()


class _SharedBatches:
    """One reader's batches handed out to several streams, each batch to one of them."""

    def __init__(self, reader: pa.RecordBatchReader):
        self._reader = reader
        self._lock = threading.Lock()
        self._stopped = False

    def batches(self) -> Iterator[pa.RecordBatch]:
        while True:
            with self._lock:  # Parquet decoding runs here and releases the GIL: the other streams keep encoding
                if self._stopped:
                    return
                try:
                    batch = self._reader.read_next_batch()
                except StopIteration:
                    return
            yield batch

    def stop(self) -> None:
        self._stopped = True

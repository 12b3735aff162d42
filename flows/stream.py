"""One source loaded continuously in micro-batches: `headwater stream SOURCE` and the `stream` deployment.

Each batch is an ordinary load of the source (headwater.load.pipeline.load_source: recovery first, then the
connector's next batch, its steps, rules and quarantine, committed with the source's position), recorded in
headwater_ops.stream_batches as soon as it commits; the connector's feed is acknowledged only then. The
tables a batch changed stay pending (headwater_ops.pending_rebuilds) until a build rebuilds and publishes
the marts they feed: every N batches or T seconds, through the same `build` flow as the per-source
deployments (selective rebuild, write-audit-publish), or by the `build` deployment on its own schedule.

SIGINT or SIGTERM stops the stream after the batch under way has committed.

    python -m flows.stream SOURCE [--max-batches N] [--build-every N] [--build-every-seconds T]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from prefect import flow, get_run_logger

from flows.daily import read_project
from flows.run_record import UnknownSource, finish_run, record_failure, recorded_run
from flows.source import source_to_load
from headwater.load.pipeline import SourceLoad, TableLoad, load_source
from headwater.load.reload import Reload
from headwater.marts.rebuild import changed_relations
from headwater.ops.pending import remember_pending
from headwater.ops.stream_batches import record_batch
from headwater.plugins.manager import connector_registry

# A batch that loaded nothing is followed by this pause, so an idle feed is not polled in a busy loop.
IDLE_WAIT_SECONDS = 1.0
# Failed batches in a row after which the stream stops (each failure is recorded; the next batch retries).
MAX_FAILURES_IN_A_ROW = 3

# The stream's run record names the load ids of its last batches only: a stream of days has hundreds of thousands,
# and each batch's own record (headwater_ops.stream_batches) already says what it loaded.
KEPT_LOAD_IDS = 1_000

_stop = threading.Event()


@dataclass
class StreamTotals:
    """What the stream has done so far, for its summary and its progress lines."""

    source: str
    dataset: str
    batches: int = 0
    failed: int = 0
    builds: int = 0
    tables: dict[str, TableLoad] = field(default_factory=dict)
    load_ids: list[str] = field(default_factory=list)
    seconds: float = 0.0
    last_error: str | None = None

    def add(self, load: SourceLoad) -> None:
        self.batches += 1
        self.seconds += load.seconds
        self.load_ids = (self.load_ids + load.load_ids)[-KEPT_LOAD_IDS:]
        if not load.ok:
            self.failed += 1
            self.last_error = load.error
        for table in load.tables:
            total = self.tables.setdefault(table.table, TableLoad(table=table.table, rows=0))
            total.rows += table.rows
            total.quarantined += table.quarantined

    def as_load(self) -> SourceLoad:
        return SourceLoad(source=self.source, dataset=self.dataset, seconds=self.seconds,
                          tables=list(self.tables.values()), load_ids=self.load_ids,
                          error=self.last_error if self.failed and self.failed == self.batches else None)


def batch_line(number: int, load: SourceLoad) -> str:
    """One progress line per batch: rows per table, time, and the feed's lag when it reports one."""
    if not load.ok:
        return f"batch {number}: failed after {load.seconds:.1f} s: {load.error}"
    if load.skipped:
        return f"batch {number}: skipped: {load.skipped}"
    loaded = [(table.table, table.rows, table.quarantined) for table in load.tables if table.rows or table.quarantined]
    if loaded:
        parts = ", ".join(f"{name} {rows:,}" + (f" (+{bad:,} quarantined)" if bad else "")
                          for name, rows, bad in loaded)
        what = f"{sum(rows for _, rows, _ in loaded):,} rows ({parts})"
    else:
        what = "nothing new"
    return f"batch {number}: {what} in {load.seconds:.2f} s{lag_text(load.lag)}"


def lag_text(lag: dict | None) -> str:
    if not lag:
        return ""
    parts = []
    if lag.get("behind_seconds") is not None:
        parts.append(f"{lag['behind_seconds']:.1f} s behind")
    if lag.get("lag_bytes") is not None:
        parts.append(f"{lag['lag_bytes']:,} bytes unread")
    if lag.get("retained_wal_bytes") is not None:
        parts.append(f"{lag['retained_wal_bytes']:,} bytes of WAL kept")
    return "; " + ", ".join(parts) if parts else ""


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM ask the stream to stop after the batch under way (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: _stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@flow(name="stream", log_prints=False, on_failure=[record_failure], on_crashed=[record_failure])
def stream_flow(
    source: str,
    max_batches: int | None = None,
    build_every: int | None = None,
    build_every_seconds: float | None = None,
    alert_lag_seconds: float | None = None,
):
    """Load one source continuously in micro-batches until stopped; build the marts on a cadence of their own.

    Args:
        source: The source's name under `sources:` in headwater.yaml.
        max_batches: Stop after this many batches (default: run until SIGINT or SIGTERM).
        build_every: Build and publish the marts the stream's tables feed after every N batches that loaded rows.
        build_every_seconds: ... or when this many seconds passed since the last build and rows are pending.
        alert_lag_seconds: Warn, and alert the project's notifiers once, when the feed trails by more than this.
    """
    started = time.perf_counter()
    logger = get_run_logger()
    project = read_project()
    chosen = source_to_load(project, source)
    connector = connector_registry().get(chosen.connector)
    _stop.clear()
    with recorded_run(project, "stream", Reload(), started) as recorded, stop_on_signals():
        loader = recorded.roles.loader
        totals = StreamTotals(source=chosen.name, dataset=chosen.dataset)
        failures_in_a_row, unbuilt_batches, last_build, alerted = 0, 0, time.monotonic(), False
        while not _stop.is_set() and (max_batches is None or totals.batches < max_batches):
            started_at = datetime.now(timezone.utc)
            load = load_source(project, chosen, connector, loader)
            totals.add(load)
            record_batch(loader, recorded.run.run_id, totals.batches, started_at, load)
            logger.info(batch_line(totals.batches, load))
            failures_in_a_row = 0 if load.ok else failures_in_a_row + 1
            if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                logger.error("%s failed %d batches in a row: the stream stops", chosen.name, failures_in_a_row)
                break
            changed = changed_relations([load])
            if changed:
                remember_pending(loader, changed, recorded.run.run_id)
                unbuilt_batches += 1
            alerted = _watch_lag(project, chosen.name, load, alert_lag_seconds, alerted, logger)
            due = (build_every is not None and unbuilt_batches >= build_every) or (
                build_every_seconds is not None and time.monotonic() - last_build >= build_every_seconds)
            if unbuilt_batches and due:
                _build(logger)
                totals.builds += 1
                unbuilt_batches, last_build = 0, time.monotonic()
            if not load.ok or not changed:
                _stop.wait(IDLE_WAIT_SECONDS)
        recorded.summary.loads = [totals.as_load()]
        recorded.summary.marts_left = _marts_left(totals, unbuilt_batches)
        return finish_run(recorded, logger)


def _build(logger) -> None:
    """The `build` flow, as a subflow: it records its own run; a failed contract withholds marts, never the stream."""
    from flows.build import build_flow

    try:
        build_flow()
    except Exception as error:  # its summary said why; the rows stay pending for the next build
        logger.warning("the marts build failed (%s); the stream goes on, its tables stay pending", error)


def _watch_lag(project, source: str, load: SourceLoad, threshold: float | None, alerted: bool, logger) -> bool:
    behind = (load.lag or {}).get("behind_seconds")
    if threshold is None or behind is None:
        return alerted
    if behind <= threshold:
        return False
    logger.warning("%s trails its source by %.1f s (alert_lag_seconds: %.1f)", source, behind, threshold)
    if not alerted:
        from headwater.ops.alerts import notify_lag

        notify_lag(project, source, behind, threshold, logger)
    return True


def _marts_left(totals: StreamTotals, unbuilt_batches: int) -> str:
    rows = sum(table.rows for table in totals.tables.values())
    said = f"{_count(totals.batches, 'batch', 'batches')} loaded {_count(rows, 'row', 'rows')}"
    if totals.failed:
        said += f" ({_count(totals.failed, 'batch', 'batches')} failed)"
    times = "once" if totals.builds == 1 else f"{totals.builds} times"
    builds = f"; the marts were built {times}" if totals.builds else ""
    left = ("; the tables of the last batches stay pending for the next build" if unbuilt_batches else "")
    return said + builds + left + "."


def _count(number: int, one: str, many: str) -> str:
    return f"{number:,} {one if number == 1 else many}"


def main(argv: list[str] | None = None) -> int:
    from prefect.settings import temporary_settings

    from flows.daily import shell_run_settings
    from headwater.commands.run import add_stream_arguments
    from headwater.project.config import ConfigError

    parser = argparse.ArgumentParser(prog="python -m flows.stream", description=stream_flow.description)
    add_stream_arguments(parser)
    args = parser.parse_args(argv)
    try:
        project = read_project()
        source_to_load(project, args.source)
    except (ConfigError, UnknownSource) as error:
        print(error if isinstance(error, ConfigError) else f"error: {error}", file=sys.stderr)
        return 2
    settings = shell_run_settings(project)
    if isinstance(settings, int):
        return settings
    parameters = {name: getattr(args, name) for name in ("max_batches", "build_every", "build_every_seconds",
                                                        "alert_lag_seconds") if getattr(args, name) is not None}
    with temporary_settings(updates=settings), stop_on_signals():
        state = stream_flow(source=args.source, **parameters, return_state=True)
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())

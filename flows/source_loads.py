"""Load a run's sources side by side: at most `run.max_parallel_sources` at once, on threads or a Dask cluster.

Each source keeps what makes one load safe on its own: its lock in the destination, its dlt pipeline and
working folder, its cursor committed with its rows (headwater.load.pipeline). So loading two sources at
once is the same problem as two runs overlapping, already solved per source; what this module adds is the
bound and the order: results come back in the order of headwater.yaml, whichever load ends first.

With `task_runner: dask` each load is a Prefect task run on a Dask worker (prefect-dask): a local cluster
of worker processes the run starts and stops, or the scheduler at `run.dask_address`. A worker that dies
mid-load takes its connection, and so its source lock, with it; the load's package waits in the source's
working folder and the next load of that source finishes or discards it (headwater.load.recovery).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.tasks import load_source_task
from headwater.load.pipeline import SourceLoad, prepare_loads
from headwater.load.reload import Reload
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ProjectConfig, SourceConfig
from headwater.project.run_settings import RunSettings


def load_sources(project: ProjectConfig, sources: list[SourceConfig], address: PostgresAddress,
                 reload: Reload | None, log: Callable[[str], None]) -> list[SourceLoad]:
    """Load ``sources``, in parallel when the run settings allow it; one SourceLoad each, in their order."""
    settings = project.run
    limit = min(settings.parallel_sources, len(sources))
    if not sources or settings.task_runner == "threads" and limit <= 1:
        return [load_source_task(project, source, address, reload) for source in sources]
    prepare_loads()  # process-wide settings, set once before any load thread reads the environment
    log(_describe(settings, limit, len(sources)))
    with _task_runner(settings, limit) as runner:
        return _bounded(runner, limit, sources, lambda source: {
            "project": project, "source": source, "address": address, "reload": reload})


def _bounded(runner: TaskRunner, limit: int, sources: list[SourceConfig],
             parameters: Callable[[SourceConfig], dict]) -> list[SourceLoad]:
    """Submit a load whenever fewer than ``limit`` run, so a cluster bigger than the bound gets no more."""
    waiting = list(enumerate(sources))
    running: dict[PrefectFuture, tuple[int, SourceConfig, float]] = {}
    loads: dict[int, SourceLoad] = {}
    while waiting or running:
        while waiting and len(running) < limit:
            index, source = waiting.pop(0)
            submitted = time.perf_counter()
            running[runner.submit(load_source_task, parameters=parameters(source))] = (index, source, submitted)
        finished = next(as_completed(list(running)))
        index, source, submitted = running.pop(finished)
        loads[index] = _outcome(finished, source, time.perf_counter() - submitted)
    return [loads[index] for index in range(len(sources))]


def _outcome(future: PrefectFuture, source: SourceConfig, seconds: float) -> SourceLoad:
    """The load's result; a task that ended without one becomes a failed load saying why.

    load_source turns every error of a load into SourceLoad.error, so an exception here comes from where
    the task ran: its Dask workers died as many times as the scheduler allows (KilledWorker; the load's
    package, if any, waits for the next run), or the task could not start there (a missing plugin, say).
    """
    try:
        outcome = future.result(raise_on_failure=False)
    except Exception as error:  # Dask raises its own (KilledWorker) instead of returning a failed state
        outcome = error
    if isinstance(outcome, SourceLoad):
        return outcome
    error = f"{type(outcome).__name__}: {outcome}"
    if type(outcome).__name__ == "KilledWorker":
        error = (f"the load did not finish where it ran: its Dask workers died ({error}); the next run "
                 f"finishes or discards what it left")
    return SourceLoad(source=source.name, dataset=source.dataset, seconds=seconds, error=error)


@contextmanager
def _task_runner(settings: RunSettings, limit: int) -> Iterator[TaskRunner]:
    if settings.task_runner == "dask":
        runner = _dask_runner(settings, limit)
    else:
        runner = ThreadPoolTaskRunner(max_workers=limit)
    with runner:
        yield runner


def _dask_runner(settings: RunSettings, limit: int) -> TaskRunner:
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as missing:
        raise RuntimeError("run.task_runner is dask but prefect-dask is not installed: "
                           "pip install 'headwater[dask]', or set task_runner: threads") from missing
    if "DASK_LOGGING__DISTRIBUTED" not in os.environ:
        # Dask logs every connection at INFO, here and in the workers it starts (they inherit the environment).
        os.environ["DASK_LOGGING__DISTRIBUTED"] = "WARNING"
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    # Loads hold the GIL in Python code between their COPYs: worker processes, one thread each.
    return DaskTaskRunner(cluster_kwargs={"n_workers": limit, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": ":0"})


def _describe(settings: RunSettings, limit: int, count: int) -> str:
    if settings.task_runner == "threads":
        where = "in this process"
    elif settings.dask_address:
        where = f"on the Dask cluster at {settings.dask_address}"
    else:
        where = f"on a local Dask cluster of {limit} worker processes"
    return f"Loading {count} sources, up to {limit} at once, {where} (run.max_parallel_sources)"

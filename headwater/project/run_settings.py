"""The `run:` block of headwater.yaml: how a run shares the machine, the cluster and busy sources.

    run:
      lock_wait: 10m             # wait for a source (or the marts) another run is working on; 0: never wait
      max_parallel_sources: 4    # sources loaded at once; default: one per core, at most 4; 1: one at a time
      task_runner: dask          # where loads run: threads (default) or Dask (pip install 'headwater[dask]')
      dask_address: tcp://scheduler:8786   # an existing Dask scheduler; without it a run starts a local cluster

A source another run holds past `lock_wait` is skipped by this run, with a line in its summary; it loads
on the next run. The default suits a scheduled run meeting a manual one: the second waits for the first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from headwater.common.problems import Problem
from headwater.project.freshness import parse_duration

RUN_KEYS = ("lock_wait", "max_parallel_sources", "task_runner", "dask_address")
TASK_RUNNERS = ("threads", "dask")
DEFAULT_LOCK_WAIT_SECONDS = 600.0


# Each load opens its own connections to the destination (its lock, dlt's loader, up to 4 COPY streams and 4
# copied ahead): four at once stay well under PostgreSQL's default max_connections of 100.
DEFAULT_PARALLEL_CAP = 4


def default_parallel_sources() -> int:
    """One source per core, at most four: a load keeps about one core busy between its reader and its COPY."""
    return max(1, min(os.cpu_count() or 1, DEFAULT_PARALLEL_CAP))


@dataclass(frozen=True)
class RunSettings:
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS
    max_parallel_sources: int = 0  # 0: default_parallel_sources() on the machine that runs the flow
    task_runner: str = "threads"
    dask_address: str | None = None

    @property
    def parallel_sources(self) -> int:
        return self.max_parallel_sources or default_parallel_sources()


def parse_run_settings(raw: Any, problems: list[Problem]) -> RunSettings:
    if raw is None:
        return RunSettings()
    if not isinstance(raw, dict):
        problems.append(Problem(("run",), "must be a mapping, e.g. {lock_wait: 10m, max_parallel_sources: 2}"))
        return RunSettings()
    for key in raw:
        if key not in RUN_KEYS:
            problems.append(Problem(("run", key), f"unknown key; allowed: {', '.join(RUN_KEYS)}"))
    return RunSettings(lock_wait_seconds=_lock_wait(raw, problems),
                       max_parallel_sources=_parallel_sources(raw, problems),
                       task_runner=_task_runner(raw, problems),
                       dask_address=_dask_address(raw, problems))


def _lock_wait(raw: dict, problems: list[Problem]) -> float:
    wait = raw.get("lock_wait", DEFAULT_LOCK_WAIT_SECONDS)
    if wait in (0, "0", "0s"):
        return 0.0
    try:
        return parse_duration(wait).total_seconds()
    except ValueError as error:
        problems.append(Problem(("run", "lock_wait"), f"{error} (0 means: never wait)"))
        return DEFAULT_LOCK_WAIT_SECONDS


def _parallel_sources(raw: dict, problems: list[Problem]) -> int:
    if "max_parallel_sources" not in raw:
        return 0
    value = raw["max_parallel_sources"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        problems.append(Problem(("run", "max_parallel_sources"),
                                f"must be a whole number of at least 1 (got {value!r}); 1 loads sources one "
                                f"after another, leave it out for one per core ({default_parallel_sources()} here)"))
        return 0
    return value


def _task_runner(raw: dict, problems: list[Problem]) -> str:
    runner = raw.get("task_runner", "threads")
    if runner not in TASK_RUNNERS:
        problems.append(Problem(("run", "task_runner"),
                                f"unknown task runner {runner!r}; allowed: {', '.join(TASK_RUNNERS)}"))
        return "threads"
    return runner


def _dask_address(raw: dict, problems: list[Problem]) -> str | None:
    address = raw.get("dask_address")
    if address is None:
        return None
    if not isinstance(address, str) or "://" not in address:
        problems.append(Problem(("run", "dask_address"),
                                f"must be a scheduler address such as tcp://scheduler:8786 (got {address!r})"))
        return None
    if raw.get("task_runner") != "dask":
        problems.append(Problem(("run", "dask_address"), "is only used with task_runner: dask; add it or remove "
                                                         "dask_address"))
    return address

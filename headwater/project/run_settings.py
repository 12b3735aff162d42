"""The `run:` block of headwater.yaml: how a run behaves when another one is busy with the same source.

    run:
      lock_wait: 10m    # how long to wait for a source (or the marts) another run is working on; 0: never wait

A source another run holds past that time is skipped by this run, with a line in its summary; it loads
on the next run. The default suits a scheduled run meeting a manual one: the second waits for the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headwater.common.problems import Problem
from headwater.project.freshness import parse_duration

RUN_KEYS = ("lock_wait",)
DEFAULT_LOCK_WAIT_SECONDS = 600.0


@dataclass(frozen=True)
class RunSettings:
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS


def parse_run_settings(raw: Any, problems: list[Problem]) -> RunSettings:
    if raw is None:
        return RunSettings()
    if not isinstance(raw, dict):
        problems.append(Problem(("run",), "must be a mapping, e.g. {lock_wait: 10m}"))
        return RunSettings()
    for key in raw:
        if key not in RUN_KEYS:
            problems.append(Problem(("run", key), f"unknown key; allowed: {', '.join(RUN_KEYS)}"))
    wait = raw.get("lock_wait", DEFAULT_LOCK_WAIT_SECONDS)
    if wait in (0, "0", "0s"):
        return RunSettings(lock_wait_seconds=0.0)
    try:
        return RunSettings(lock_wait_seconds=parse_duration(wait).total_seconds())
    except ValueError as error:
        problems.append(Problem(("run", "lock_wait"), f"{error} (0 means: never wait)"))
        return RunSettings()

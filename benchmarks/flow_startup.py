"""Case 7: `python -m flows.daily` on the bundled example with nothing new, as a user runs it from the shell.

Three ways a run can reach Prefect: its temporary server (every run starts one; what every local run
paid before Headwater kept a server per project), the project's server just started (the first run after
`headwater up` or after a run started it), and the same server warm (every later run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.databases import create_postgres_database, drop_postgres_database

REPO = Path(__file__).resolve().parents[1]
PROFILE_LINES = 30
EXAMPLE_FILES = ("headwater.yaml", "transform", "quality", "flows")


def _example_project(folder: Path) -> Path:
    """A copy of the bundled shop project: three sources, dbt models, contracts, the offline example."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in EXAMPLE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, folder / name)
    return folder


def _run_flow(project: Path, env: dict, profile: bool = False) -> tuple[float, str]:
    command = [sys.executable, *(["-m", "cProfile", "-s", "cumulative"] if profile else []), "-m", "flows.daily"]
    started = time.perf_counter()
    run = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"flows.daily exited {run.returncode}: {(run.stderr or run.stdout)[-2000:]}")
    return seconds, _profile_top(run.stdout) if profile else ""


def _profile_top(output: str) -> str:
    lines = output.splitlines()
    start = next((index for index, line in enumerate(lines) if line.strip().startswith("ncalls")), None)
    return "\n".join(lines[start:start + PROFILE_LINES + 1]) if start is not None else ""


def measure(work: Path, target_seconds: float, warmup: bool = True, profile: bool = True) -> dict:
    """Wall seconds of nothing-new runs of the example: temporary server, first and later runs on the project's.

    The example is loaded once first (untimed). With ``profile``, a profile of the warm run is taken when it
    misses ``target_seconds``. ``warmup`` False (quick mode) skips the warm run and the temporary server's (each
    of its runs starts a server: most of a quick run's time); the example is then loaded on the project's.
    """
    from headwater.local import stack

    project = _example_project(work / "shop")
    database = create_postgres_database("flow")
    env = {name: value for name, value in os.environ.items() if name not in ("PREFECT_API_URL", "HEADWATER_CONFIG")}
    env.update(HEADWATER_DATABASE_URL=database, PREFECT_HOME=str(work / "prefect-home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    temporary = {**env, stack.SERVER_MODE_ENV: "temporary"}
    state = project / ".headwater"
    result: dict = {}
    previous = os.environ.get("HEADWATER_DATABASE_URL")
    try:
        if warmup:
            result["first_load"], _ = _run_flow(project, temporary)  # the example's first day, loaded
            result["temporary"], _ = _run_flow(project, temporary)
        os.environ["HEADWATER_DATABASE_URL"] = database  # the stack then starts Prefect only
        started = time.perf_counter()
        stack.up(state)
        result["server_start"] = time.perf_counter() - started
        if not warmup:
            result["first_load"], _ = _run_flow(project, env)
        # No PREFECT_API_URL: the run finds the project's server through .headwater/stack.json, as a user's does.
        result["server_first"], _ = _run_flow(project, env)
        if warmup:
            result["server"], _ = _run_flow(project, env)
        result["profile"] = ""
        if profile and result.get("server", 0) > target_seconds:
            _, result["profile"] = _run_flow(project, env, profile=True)
    finally:
        if previous is None:
            os.environ.pop("HEADWATER_DATABASE_URL", None)
        else:
            os.environ["HEADWATER_DATABASE_URL"] = previous
        stack.down(state)
        drop_postgres_database(database)
    return result

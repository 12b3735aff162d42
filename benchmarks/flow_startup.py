"""Case 7: the fixed start-up of `python -m flows.daily` with nothing to load, with and without a Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.databases import create_postgres_database, drop_postgres_database
from benchmarks.projects import write_project

REPO = Path(__file__).resolve().parents[1]
PROFILE_LINES = 30


def _empty_project(folder: Path) -> Path:
    """A project whose only source is an empty landing folder: the run does everything but load rows."""
    landing = folder / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    return write_project(folder, {"landing": {
        "connector": "filesystem",
        "settings": {"bucket_url": str(landing), "files": {"events": "*.csv"}},
    }})


def _run_flow(project: Path, env: dict, profile: bool = False) -> tuple[float, str]:
    command = [sys.executable, *(["-m", "cProfile", "-s", "cumulative"] if profile else []), "-m", "flows.daily"]
    started = time.perf_counter()
    run = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                         # flows.daily is imported from the repository, whatever the project folder
                         timeout=600)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"flows.daily exited {run.returncode}: {(run.stderr or run.stdout)[-2000:]}")
    return seconds, _profile_top(run.stdout) if profile else ""


def _profile_top(output: str) -> str:
    lines = output.splitlines()
    start = next((index for index, line in enumerate(lines) if line.strip().startswith("ncalls")), None)
    return "\n".join(lines[start:start + PROFILE_LINES + 1]) if start is not None else ""


def measure(work: Path, target_seconds: float, warmup: bool = True, profile: bool = True) -> dict:
    """Seconds of a no-op daily run with a running Prefect server and in server-less mode.

    With ``warmup`` the server run timed is the second one (the first registers the flow). With ``profile``,
    a profile of the server run is taken when it misses ``target_seconds``.
    """
    from headwater.local import stack

    project = _empty_project(work / "project").parent
    database = create_postgres_database("flow")
    env = {name: value for name, value in os.environ.items() if name not in ("PREFECT_API_URL", "HEADWATER_CONFIG")}
    env.update(HEADWATER_DATABASE_URL=database, PREFECT_HOME=str(work / "prefect-home"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    state = work / "stack" / ".headwater"
    state.mkdir(parents=True, exist_ok=True)
    result: dict = {}
    previous = os.environ.get("HEADWATER_DATABASE_URL")
    try:
        result["serverless"], _ = _run_flow(project, env)
        os.environ["HEADWATER_DATABASE_URL"] = database  # the stack then starts Prefect only
        started = time.perf_counter()
        status = stack.up(state)
        result["server_start"] = time.perf_counter() - started
        with_server = {**env, "PREFECT_API_URL": status.prefect_api_url}
        if warmup:
            result["server_first"], _ = _run_flow(project, with_server)  # registers the flow with the server
        result["server"], _ = _run_flow(project, with_server)
        result["profile"] = ""
        if profile and result["server"] > target_seconds:
            _, result["profile"] = _run_flow(project, with_server, profile=True)
    finally:
        if previous is None:
            os.environ.pop("HEADWATER_DATABASE_URL", None)
        else:
            os.environ["HEADWATER_DATABASE_URL"] = previous
        stack.down(state)
        drop_postgres_database(database)
    return result

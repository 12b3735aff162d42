"""Case 8: the whole `headwater run` command with nothing new, from the shell, with `headwater up`'s server.

One small Parquet filesystem source, no dbt or Soda: what is left is the fixed cost of a run (interpreter,
imports, config, bookkeeping, Prefect's flow and task runs). Measured in-process (HEADWATER_WARM_RUNNER=off)
and through the warm runner, the two alternating so that other load on the machine hits both alike.

    python -m benchmarks.fixed_cost          # prints the medians; `python -m benchmarks.run` adds the rows
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.data import events, write_parquet
from benchmarks.databases import create_postgres_database, drop_postgres_database

REPEATS = 7
HEADWATER = Path(sys.executable).with_name("headwater")
PROJECT = """project: fixed_cost
sources:
  files:
    connector: filesystem
    settings: {{bucket_url: {landing}, files: {{events: "*.parquet"}}}}
    tables: {{events: {{}}}}
"""


def _project(folder: Path) -> Path:
    write_parquet(events(1_000), folder / "landing" / "events.parquet")
    (folder / "headwater.yaml").write_text(PROJECT.format(landing=folder / "landing"))
    return folder


def _seconds(command: list[str], project: Path, env: dict) -> float:
    started = time.perf_counter()
    run = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {run.returncode}: {(run.stderr or run.stdout)[-2000:]}")
    return seconds


def measure(work: Path, repeats: int = REPEATS) -> dict:
    """Median wall seconds of `headwater run` with nothing new: in-process, through the runner, and of the bare
    interpreter; the load average while it ran."""
    project = _project(work / "fixed-cost")
    database = create_postgres_database("fixed")
    env = {name: value for name, value in os.environ.items() if name not in ("PREFECT_API_URL", "HEADWATER_CONFIG")}
    env.update(HEADWATER_DATABASE_URL=database, PREFECT_HOME=str(work / "prefect-home"))
    in_process = {**env, "HEADWATER_WARM_RUNNER": "off"}
    run = [str(HEADWATER), "run"]
    samples: dict[str, list[float]] = {"in_process": [], "runner": [], "interpreter": []}
    try:
        _seconds([str(HEADWATER), "up"], project, env)
        _seconds(run, project, in_process)  # the first load (untimed), and Prefect registers the flow
        for _ in range(repeats):
            samples["in_process"].append(_seconds(run, project, in_process))
            samples["runner"].append(_seconds(run, project, env))
            samples["interpreter"].append(_seconds([sys.executable, "-c", "pass"], project, env))
    finally:
        subprocess.run([str(HEADWATER), "down"], cwd=project, env=env, capture_output=True, timeout=120)
        drop_postgres_database(database)
    result = {name: statistics.median(values) for name, values in samples.items()}
    result["samples"] = samples
    result["load"] = os.getloadavg()
    return result


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hw-fixed-cost-") as scratch:
        result = measure(Path(scratch))
    print(f"headwater run, nothing new, server up (median of {REPEATS}): in-process {result['in_process']:.2f} s, "
          f"through the warm runner {result['runner']:.2f} s, interpreter {result['interpreter']:.3f} s; "
          f"load average {', '.join(f'{value:.2f}' for value in result['load'])}")
    for name in ("in_process", "runner"):
        print(f"  {name}: {' '.join(f'{value:.2f}' for value in result['samples'][name])}")


if __name__ == "__main__":
    main()

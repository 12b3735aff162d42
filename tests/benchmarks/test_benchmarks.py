"""benchmarks.run --quick: every case runs; results.md has the table and the machine section (no speed asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.benchmarks.markdown import bench_env, table_after
from tests.conftest import REPO

# One row per case the quick run must report (a prefix of the row's case column). Quick mode starts no temporary
# Prefect server, so it has no row for one.
EXPECTED_CASES = [
    "raw COPY, CSV 2,000",
    "by hand: Headwater's landed rows from Parquet, 2 binary COPY streams 2,000",
    "Headwater file CSV 2,000",
    "Headwater file PARQUET 2,000",
    "Headwater file CSV 10,000",
    "Headwater file PARQUET 10,000",
    "fixed start-up",
    "incremental, no new data, Parquet",
    "incremental, 1% new rows, Parquet",
    "peak RSS, file CSV",
    "peak RSS, file PARQUET",
    "Headwater sql_database, Postgres source",
    "Headwater sql_database, MariaDB source",
    "by hand: COPY 1% changed rows + INSERT ... ON CONFLICT, 2,000",
    "incremental, 1% changed rows (merge), sql_database Postgres 2,000",
    "incremental, 1% changed rows (merge), Parquet 10,000",
    "plain dlt",
    "httpx, download pages only",
    "Headwater rest_api",
    "flows.daily example, nothing new, first run on the project server",
]
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def table_rows(text: str) -> dict[str, list[str]]:
    """The results table of results.md: case -> its other cells."""
    return table_after(text, "## Results", "\n## ")


@pytest.mark.slow
def test_quick_benchmark_runs_every_case_and_writes_results(tmp_path, mariadb):
    out = tmp_path / "results.md"
    env = bench_env(mariadb)
    run = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = out.read_text()

    rows = table_rows(text)
    for case in EXPECTED_CASES:
        matching = [name for name in rows if name.startswith(case)]
        assert matching, f"no row for {case!r} in:\n{text}"
        for name in matching:
            rows_count, seconds, rate, ratio = rows[name][:4]
            for value in (rows_count, seconds, rate, ratio):
                assert NUMBER.match(value), f"{name}: {value!r} is not a number"

    assert "## Targets" in text
    machine = text.split("## Machine", 1)[1]
    for field in ("Date", "CPU", "Cores", "RAM", "Python", "PostgreSQL", "Packages"):
        assert f"| {field}" in machine

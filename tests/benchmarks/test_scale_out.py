"""benchmarks.scale_out --quick: the parallel-sources and incremental-cost tables, every load verified (no speed
asserted), written into its own section of a results file without touching the rest."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks.sections import markers
from tests.benchmarks.markdown import table_after
from tests.conftest import REPO
from tests.servers import postgres_server_url

pytestmark = pytest.mark.slow


def test_quick_scale_out_writes_its_section_and_keeps_the_rest(tmp_path):
    results = tmp_path / "results.md"
    results.write_text("# Benchmarks\n\nkept as it is\n")
    env = {**os.environ, "HEADWATER_BENCH_POSTGRES": postgres_server_url()}
    env.pop("PREFECT_API_URL", None)
    run = subprocess.run([sys.executable, "-m", "benchmarks.scale_out", "--quick", "--out", str(results)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    text = results.read_text()
    start, end = markers("scale_out")
    assert text.startswith("# Benchmarks\n\nkept as it is\n") and start in text and text.rstrip().endswith(end)
    for heading in ("### Four PostgreSQL sources", "### Four API sources"):
        parallel = table_after(text, heading, "### An incremental run")
        assert list(parallel) == ["1", "4"], heading  # (--quick: 1 and 4 at a time)
        assert all(float(cells[0]) > 0 and int(cells[1].replace(",", "")) > 0 for cells in parallel.values())
    section = text.split("### An incremental run", 1)[1].split("Machine:", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines()
            if line.startswith("| ") and "table rows" not in line]
    assert [(cells[0].strip(), cells[1].strip()) for cells in rows] == [("2,000", "100"), ("2,000", "1,000")]
    assert all(float(cells[3]) > 0 for cells in rows)

"""benchmarks.parallel_full_load at a tiny size: every contender lands the source's rows, Headwater's in the
streams it names, and the section it writes into the results file keeps the rest of the file."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.benchmarks.markdown import table_after
from tests.conftest import REPO
from tests.servers import postgres_server_url


def test_the_parallel_full_load_benchmark_lands_every_contender_and_writes_its_section(tmp_path):
    out = tmp_path / "results.md"
    out.write_text("# Benchmarks\n\nearlier results\n")
    env = {**os.environ, "HEADWATER_BENCH_POSTGRES": postgres_server_url(),
           "HEADWATER_PARALLEL_MIN_ROWS": "1000", "HEADWATER_COPY_AHEAD_MIN_ROWS": "1000"}
    run = subprocess.run([sys.executable, "-m", "benchmarks.parallel_full_load", "--rows", "20000", "--out", str(out)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks\n\nearlier results\n")
    rows = table_after(text, "## Parallel full load", "<!-- parallel-full-load:end -->")
    streams = {name.split(":")[0] if name.startswith("raw") else name: cells[5]
               for name, cells in rows.items()}
    assert streams == {"raw pipe": "1", "Headwater, 1 stream": "1", "Headwater, 2 streams": "2"}
    assert all(cells[6] == "yes (1/1)" for cells in rows.values()), text
    assert all(float(cells[0]) > 0 for cells in rows.values()), text

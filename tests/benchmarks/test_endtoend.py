"""benchmarks.endtoend --quick: raw COPY, Headwater and Sling run as whole commands and land verified rows."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from benchmarks.endtoend.verify import compare, table_stats
from tests.benchmarks.markdown import bench_env, table_after
from tests.conftest import REPO

CONTENDERS = ("raw COPY", "Headwater", "Sling")
EARLIER = "# Headwater benchmarks\n\nThe in-process section, written by benchmarks.run.\n"


def workload_rows(text: str, title: str) -> dict[str, list[str]]:
    """The table under ``### {title}``: contender -> its other cells."""
    return table_after(text, f"### {title}", "\n### ")


@pytest.mark.slow
def test_quick_end_to_end_lands_verified_rows_for_copy_headwater_and_a_peer(tmp_path, mariadb):
    out = tmp_path / "results.md"
    out.write_text(EARLIER)
    env = bench_env(mariadb)
    command = [sys.executable, "-m", "benchmarks.endtoend", "--quick", "--workloads", "csv,postgres",
               "--only", ",".join(CONTENDERS), "--out", str(out)]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = out.read_text()

    assert text.startswith(EARLIER), "the rest of the results file is kept"
    for title in ("CSV file, 2,000 rows", "PostgreSQL table, 2,000 rows"):
        rows = workload_rows(text, title)
        for contender in CONTENDERS:
            name = next(name for name in rows if name.startswith(contender))
            median, rate, _ratio, cpu, _rss, verified = rows[name][:6]
            assert verified == "yes (1/1)", f"{title}: {name}: {verified}"
            assert float(median) > 0 and int(rate.replace(",", "")) > 0
            tool, databases = (float(part) for part in cpu.split(" + "))
            # Every contender spends CPU of its own, and its rows cost the database server some too.
            assert tool > 0 and databases > 0, f"{title}: {name}: CPU {cpu}"
        assert "not run in this invocation" in rows["plain dlt"][5]
    assert "| CSV file: Headwater vs raw COPY | >= 0.8x |" in text


def test_a_table_with_other_numbers_is_reported_wrong(database_url):
    with psycopg.connect(database_url) as connection:
        connection.execute("CREATE TABLE events (id bigint, customer_id bigint, quantity bigint, price float8, "
                           "discount float8)")
        connection.execute("INSERT INTO events SELECT g, g, 1, 1.25, 0.5 FROM generate_series(1, 10) g")
    expected = table_stats(database_url, "public", "events")
    assert compare(expected, database_url, "public", "events") == ""

    with psycopg.connect(database_url) as connection:
        connection.execute("UPDATE events SET quantity = 2 WHERE id = 3")
        connection.execute("INSERT INTO events VALUES (3, 3, 1, 1.25, 0.5)")
    wrong = compare(expected, database_url, "public", "events")
    assert "rows 11 != 10" in wrong and "distinct id" not in wrong and "sum quantity 12.0000 != 10.0000" in wrong
    assert compare(expected, database_url, "public", "missing").startswith("target unreadable:")

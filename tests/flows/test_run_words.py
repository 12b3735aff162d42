"""What a run says, from the shell: true words for what happened, the failure once, the traceback in the log."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

VISITS = "visit_id,page\n" + "".join(f"{n},/p/{n % 7}\n" for n in range(1, 1001))


def daily(project, env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.daily", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_run_says_what_happened_and_a_failure_once(shop_project, database_url, prefect_api):
    env = {**os.environ, "HEADWATER_DATABASE_URL": database_url, "PREFECT_API_URL": prefect_api,
           "COLUMNS": "200", "HEADWATER_CONFIG": str(shop_project / "headwater.yaml")}
    first = daily(shop_project, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    # A table no dbt model reads gets 1,000 rows; every table with a contract gets none.
    config = shop_project / "headwater.yaml"
    orders = '        orders: "orders/*"\n'
    text = config.read_text().replace(orders, orders + '        visits: "visits/*"\n')
    config.write_text(text.replace("\n\n  shop_db:", "\n      visits: {}\n\n  shop_db:"))
    landing = shop_project / ".headwater" / "example" / "landing" / "visits"
    landing.mkdir(parents=True)
    (landing / "visits.csv").write_text(VISITS)
    second = daily(shop_project, env)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-3000:]
    assert "1,000 rows loaded into raw_shop_files.visits; no dbt model reads it" in out
    assert "dbt did not run: no model reads the tables that changed; the published marts are unchanged." in out
    assert "No new rows" not in out
    orders_line = next(line for line in second.stdout.splitlines() if "raw_shop_files.orders " in line)
    assert "0 / 0 / 0" in orders_line and "skipped (no new rows)" in orders_line
    visits_line = next(line for line in second.stdout.splitlines() if "raw_shop_files.visits " in line)
    assert "1,000 / 1,000 / 0" in visits_line and "no contract" in visits_line
    # PII reaching the marts is reported once: a table and one warning line, no log line per column.
    assert "PII reaches" not in out
    assert out.count("published column(s) carry unmasked PII") == 1

    # A model that fails: Headwater's summary says why, once; Prefect's traceback goes to the run log.
    (shop_project / "transform" / "models" / "marts" / "broken.sql").write_text("select * from nowhere_table\n")
    failed = daily(shop_project, env, "--full-build")
    out = failed.stdout + failed.stderr
    assert failed.returncode == 1, out[-3000:]
    assert out.count("Run failed in") == 1
    assert "  - dbt build: broken\n" in failed.stdout
    assert "Traceback" not in out and "RunFailed" not in out and "record_crash" not in out
    log = (shop_project / ".headwater" / "logs" / "runs.log").read_text()
    assert "Traceback (most recent call last)" in log
    assert "RunFailed: dbt build: broken" in log

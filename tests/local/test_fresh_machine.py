"""A machine with no database and no Prefect server: the embedded PostgreSQL and the project's own Prefect server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import copy_shop_project, query

pytestmark = pytest.mark.slow


def run(args: list[str], cwd, env, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def fresh_project():
    # Not under pytest's tmp_path: pytest makes that 0700 for root, and the embedded
    # server runs as its own OS user, which must be able to reach its data folder.
    root = Path(tempfile.mkdtemp(prefix="headwater-fresh-"))
    yield copy_shop_project(root / "shop")
    shutil.rmtree(root, ignore_errors=True)


def test_daily_starts_embedded_postgres_and_a_prefect_server_and_later_runs_reuse_them(fresh_project):
    shop_project = fresh_project
    env = {name: value for name, value in os.environ.items()
           if name not in ("HEADWATER_DATABASE_URL", "PREFECT_API_URL", "HEADWATER_CONFIG")}
    env["PREFECT_HOME"] = str(shop_project / "prefect-home")  # the user's ~/.prefect stays untouched
    headwater = [sys.executable, "-m", "headwater.cli"]
    try:
        daily = run([sys.executable, "-m", "flows.daily"], shop_project, env)
        assert daily.returncode == 0, daily.stdout[-3000:] + daily.stderr[-3000:]
        assert "Run succeeded" in daily.stdout
        assert "Starting the Prefect server on http://127.0.0.1:" in daily.stderr
        assert "Starting temporary server" not in daily.stdout + daily.stderr
        server = run([*headwater, "ps"], shop_project, env)
        assert "Server pid" in server.stdout, server.stdout
        assert (shop_project / ".headwater" / "postgres" / "PG_VERSION").exists()

        url = run([*headwater, "db", "url"], shop_project, env)
        assert url.returncode == 0, url.stderr
        database_url = url.stdout.strip()
        assert database_url.startswith("postgresql://postgres@127.0.0.1:")
        assert query(database_url, "select count(*) from raw_shop_files.orders") == [(200,)]
        assert query(database_url, "select count(*) from marts.customers") == [(60,)]

        # The next run reuses the same server and data: only the new day is loaded.
        again = run([sys.executable, "-m", "flows.daily", "--advance-example", "1"], shop_project, env)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert "Starting the Prefect server" not in again.stderr  # the first run's server is reused
        assert run([*headwater, "ps"], shop_project, env).stdout == server.stdout
        assert run([*headwater, "db", "url"], shop_project, env).stdout.strip() == database_url
        assert query(database_url, "select count(*) from raw_shop_db.customers")[0][0] > 60
    finally:
        down = run([*headwater, "down"], shop_project, env)
        stop = run([*headwater, "db", "stop"], shop_project, env)
    assert down.returncode == 0 and "Stopped: Prefect server." in down.stdout, down.stdout + down.stderr
    assert stop.returncode == 0, stop.stderr
    status = run([*headwater, "db", "status"], shop_project, env)
    assert "not running" in (status.stdout + status.stderr).lower()

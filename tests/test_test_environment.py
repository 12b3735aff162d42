"""The suite runs on a machine without database servers: Postgres tests use the embedded server, MariaDB ones skip."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import REPO
from tests.servers import MARIADB_URL_ENV, POSTGRES_URL_ENV, REQUIRE_MARIADB_ENV, mariadb_server

# Postgres-backed tests (fresh databases from tests/conftest.py and from the acceptance kit, in one process)
# and tests that need MariaDB as well.
SELECTION = [
    "tests/connectors/test_sql_database_nul.py",
    "tests/connectors/test_sql_database_backend.py::test_incremental_runs_read_only_rows_at_or_after_the_cursor",
    "tests/testing/test_acceptance_sql_database.py::TestSqlDatabasePostgres::test_loads_into_postgres",
    "tests/testing/test_acceptance_sql_database.py::TestSqlDatabaseMariaDB::test_loads_into_postgres",
]


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on: bound but not listening, so connections are refused and no one else takes it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def skip_message(port: int) -> str:
    return f"MariaDB not reachable at 127.0.0.1:{port}: set {MARIADB_URL_ENV} or start MariaDB"


def test_mariadb_tests_skip_with_the_reason_when_nothing_listens(closed_port, monkeypatch):
    monkeypatch.setenv(MARIADB_URL_ENV, f"mysql+pymysql://root@127.0.0.1:{closed_port}")
    monkeypatch.delenv(REQUIRE_MARIADB_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        mariadb_server()
    assert str(skipped.value) == skip_message(closed_port)


def test_where_mariadb_is_required_its_absence_fails_the_tests(closed_port, monkeypatch):
    monkeypatch.setenv(MARIADB_URL_ENV, f"mysql+pymysql://root@127.0.0.1:{closed_port}")
    monkeypatch.setenv(REQUIRE_MARIADB_ENV, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        mariadb_server()
    assert str(failed.value) == f"{skip_message(closed_port)} ({REQUIRE_MARIADB_ENV}=1: its tests must run here)"


@pytest.mark.slow
def test_without_shared_servers_postgres_tests_pass_on_the_embedded_server_and_mariadb_tests_skip(closed_port):
    env = {
        **os.environ,
        POSTGRES_URL_ENV: f"postgresql://postgres@127.0.0.1:{closed_port}",
        MARIADB_URL_ENV: f"mysql+pymysql://root@127.0.0.1:{closed_port}",
        REQUIRE_MARIADB_ENV: "0",  # a bare machine: MariaDB's tests skip
    }
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", *SELECTION], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]

    assert f"PostgreSQL: nothing listens at 127.0.0.1:{closed_port}; the embedded PostgreSQL is started" in output
    assert f"MariaDB: nothing listens at 127.0.0.1:{closed_port}; its tests are skipped" in output
    assert re.search(r"^PostgreSQL: the tests ran against the embedded PostgreSQL 18\.\d+ at "
                     r"postgresql://postgres@127\.0\.0\.1:\d+$", output, re.MULTILINE), output[-4000:]
    skips = re.findall(r"^SKIPPED \[(\d+)\] \S+:\d+: (.*)$", output, re.MULTILINE)
    assert {reason for _, reason in skips} == {skip_message(closed_port)}, output[-4000:]
    assert sum(int(count) for count, _ in skips) == 4
    assert re.search(r"= 3 passed, 4 skipped in [\d.]+s", output), output[-4000:]

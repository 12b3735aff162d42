"""Shared test fixtures: real Postgres databases, one Prefect server, isolated copies of the shop project."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from headwater.common.runtime import quiet_telemetry
from tests.servers import (
    MariaDB,
    describe_embedded,
    describe_mariadb,
    describe_postgres,
    mariadb_server,
    postgres_server_url,
    prepare_postgres_environment,
)

quiet_telemetry()

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("headwater.yaml", "transform", "quality", "flows", "prefect.yaml")


def pytest_configure(config):
    prepare_postgres_environment()


def pytest_report_header(config):
    return [describe_postgres(), describe_mariadb()]


def pytest_terminal_summary(terminalreporter):
    embedded = describe_embedded()
    if embedded is not None:
        terminalreporter.write_line(embedded)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def fresh_database(prefix: str = "hw_test"):
    """A new, empty database on the test server (tests/servers.py), dropped on exit; yields its URL."""
    server = postgres_server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mariadb() -> MariaDB:
    """The tests' MariaDB server; a test that uses it is skipped, saying why, when none is reachable."""
    return mariadb_server()


# The change-feed tests' source database (a fresh one on the logical server), as headwater.yaml references it.
CDC_SOURCE_VARIABLE = "HW_TEST_CDC_URL"


@pytest.fixture(scope="session")
def logical_server(tmp_path_factory):
    """A PostgreSQL with wal_level=logical the suite starts itself (tests/connectors/logical_server.py)."""
    from tests.connectors.logical_server import start_logical_server

    server, url = start_logical_server(tmp_path_factory.mktemp("logical") / "postgres")
    yield url
    server.stop()


@pytest.fixture
def cdc_source(logical_server, monkeypatch):
    """A fresh database on the logical server, as ${HW_TEST_CDC_URL}; its slots and itself dropped afterwards."""
    from tests.connectors.logical_server import logical_database

    with logical_database(logical_server) as url:
        monkeypatch.setenv(CDC_SOURCE_VARIABLE, url)
        yield url


@pytest.fixture
def database_url():
    """A fresh, empty database on the test server, dropped afterwards."""
    with fresh_database() as url:
        yield url


def query(url: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(url) as connection:
        return connection.execute(sql, params or None).fetchall()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """`headwater up` for the whole session (Prefect server only; the database is the test server).

    Yields the stack's project folder and status; flows started in that folder find the server.
    """
    from headwater.local import stack

    root = tmp_path_factory.mktemp("stack-project")
    state = root / ".headwater"
    state.mkdir()
    previous = {name: os.environ.get(name) for name in ("PREFECT_API_URL", "HEADWATER_DATABASE_URL")}
    os.environ["HEADWATER_DATABASE_URL"] = f"{postgres_server_url()}/postgres"  # only Prefect starts
    try:
        # No warm runner: flows started in that folder by the tests run in-process (tests/local/test_warm_runner.py
        # starts its own runners).
        status = stack.up(state, port=free_port(), runner=False)
    finally:
        _restore(previous)
    yield root, status
    stack.down(state)


@pytest.fixture(scope="session")
def prefect_api(local_stack):
    """The session's Prefect server, also set as PREFECT_API_URL for flows run in this process."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    _, status = local_stack
    os.environ["PREFECT_API_URL"] = status.prefect_api_url  # for subprocesses
    # Prefect may already have read its settings (another test imported it): set them in-process too.
    with temporary_settings(updates={PREFECT_API_URL: status.prefect_api_url}):
        yield status.prefect_api_url
        _drain_prefect_workers()
    os.environ.pop("PREFECT_API_URL", None)


def _drain_prefect_workers() -> None:
    # Flow runs in this process queue logs and events for the server; send them while it is still up,
    # or Prefect retries against a stopped server for a minute at interpreter exit.
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=15)
    EventsWorker.drain_all(timeout=15)


def _restore(previous: dict[str, str | None]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def copy_shop_project(root: Path) -> Path:
    """Copy the bundled shop project (config, dbt project, contracts, flows) into root."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    return root


@pytest.fixture
def shop_project(tmp_path, monkeypatch):
    """A copy of the bundled shop project in a temporary folder, selected through HEADWATER_CONFIG."""
    root = copy_shop_project(tmp_path / "shop")
    monkeypatch.setenv("HEADWATER_CONFIG", str(root / "headwater.yaml"))
    monkeypatch.delenv("SHOP_API_TOKEN", raising=False)
    return root

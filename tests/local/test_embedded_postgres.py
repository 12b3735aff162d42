"""The embedded PostgreSQL: started on 127.0.0.1, reused across processes, data kept across restarts."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from headwater.local.embedded_postgres import LocalPostgres


@pytest.fixture
def workdir():
    """A temp folder outside pytest's own temp root.

    As root the server runs as another OS user, which must be able to reach the data directory;
    pytest takes that right away from its temp root whenever another pytest session starts.
    """
    path = Path(tempfile.mkdtemp(prefix="headwater-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def local(workdir, monkeypatch):
    monkeypatch.delenv("HEADWATER_DATABASE_URL", raising=False)
    server = LocalPostgres(workdir / ".headwater" / "postgres")
    yield server
    server.stop()


def test_start_reuse_stop_and_restart_keeps_data(local, workdir):
    # A port saved by an earlier run is used again; a private one keeps parallel sessions apart.
    port = _free_port()
    local.settings_file.parent.mkdir(parents=True)
    local.settings_file.write_text(json.dumps({"port": port}))

    url = local.start()
    assert url == f"postgresql://postgres@127.0.0.1:{port}/headwater"
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE kept (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO kept VALUES (1, 'one'), (2, 'two')")

    # A second handle (as another process would make) finds the running server.
    again = LocalPostgres(workdir / ".headwater" / "postgres")
    assert again.is_running()
    assert again.start() == url
    with psycopg.connect(again.url()) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (2,)

    assert local.stop() is True
    assert local.is_running() is False
    assert local.url() is None
    assert local.stop() is False

    assert local.start() == url  # same port after a restart, so saved connections keep working
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT name FROM kept ORDER BY id").fetchall() == [("one",), ("two",)]


def test_saved_port_taken_by_something_else_moves_to_a_free_one(local):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        local.settings_file.parent.mkdir(parents=True)
        local.settings_file.write_text(json.dumps({"port": taken}))

        url = local.start()

    port = urlsplit(url).port
    assert port != taken
    assert json.loads(local.settings_file.read_text()) == {"port": port}


def test_db_commands(workdir, monkeypatch, capsys):
    project = workdir / "project"
    project.mkdir()
    monkeypatch.setenv("HEADWATER_CONFIG", str(project / "headwater.yaml"))
    monkeypatch.delenv("HEADWATER_DATABASE_URL", raising=False)
    try:
        assert _cli(["db", "url"]) == 0
        url = capsys.readouterr().out.strip()
        # stdout is exactly the URL, so `psql "$(headwater db url)"` works.
        assert url.startswith("postgresql://postgres@127.0.0.1:") and "\n" not in url
        assert urlsplit(url).port != 5432  # never the machine's own PostgreSQL
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("headwater",)
        assert LocalPostgres(project / ".headwater" / "postgres").url() == url

        assert _cli(["db", "status"]) == 0
        assert "running at " + url in capsys.readouterr().out
    finally:
        assert _cli(["db", "stop"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert LocalPostgres(project / ".headwater" / "postgres").url() is None


def test_db_url_masks_external_password(monkeypatch, capsys):
    monkeypatch.setenv("HEADWATER_DATABASE_URL", "postgresql://etl:s3cret@db.example:5433/warehouse")
    assert _cli(["db", "url"]) == 0
    assert capsys.readouterr().out.strip() == "postgresql://etl:***@db.example:5433/warehouse"
    assert _cli(["db", "url", "--show-password"]) == 0
    assert capsys.readouterr().out.strip() == "postgresql://etl:s3cret@db.example:5433/warehouse"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cli(argv: list[str]) -> int:
    from headwater.cli import main

    return main(argv)

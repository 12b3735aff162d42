"""`headwater up` / `down`: a background Prefect server that outlives the command and is reused."""

from __future__ import annotations

import json
import socket

import httpx
import psutil
import pytest

from headwater.local import stack

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def state(tmp_path, monkeypatch):
    # An external database, so that only Prefect starts.
    monkeypatch.setenv("HEADWATER_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    state_dir = tmp_path / ".headwater"
    yield state_dir
    stack.down(state_dir)


def test_up_is_reused_and_down_stops_it(state):
    port = _free_port()  # not 4200, so a developer's own stack is left alone
    first = stack.up(state, port=port)

    assert first.prefect_api_url == f"http://127.0.0.1:{port}/api"
    assert first.prefect_ui_url == f"http://127.0.0.1:{port}"
    assert first.database_url == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert first.embedded is False
    api_url = stack.running_api_url(state)
    assert api_url == first.prefect_api_url
    assert httpx.get(f"{api_url}/health", timeout=5).json() is True
    # Its state lives in the project, not in the user's ~/.prefect.
    assert (state / "prefect" / "prefect.db").exists()
    assert (state / "logs" / "prefect-server.log").exists()
    recorded = json.loads((state / "stack.json").read_text())
    assert recorded["pid"] == first.prefect_pid and recorded["started_postgres"] is False

    second = stack.up(state)
    assert second.prefect_pid == first.prefect_pid
    assert second.prefect_api_url == first.prefect_api_url

    pid = first.prefect_pid
    after = stack.down(state)
    assert after.prefect_api_url is None and after.prefect_pid is None
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert stack.running_api_url(state) is None
    assert not (state / "stack.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api_url}/health", timeout=2)


def test_running_api_url_without_stack(tmp_path):
    assert stack.running_api_url(tmp_path / ".headwater") is None

"""`headwater up` / `down`: a background Prefect server that outlives the command and is reused."""

from __future__ import annotations

import http.server
import json
import socket
import threading

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


class _ForeignServer(http.server.BaseHTTPRequestHandler):
    """Another program on the port: it even answers Prefect's health check."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args):
        pass


def test_up_refuses_a_port_taken_after_its_check(state, monkeypatch):
    foreign = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ForeignServer)
    port = foreign.server_address[1]
    threading.Thread(target=foreign.serve_forever, daemon=True).start()
    # The moment between the free-port check and the server's own bind, when another program binds first.
    monkeypatch.setattr(stack, "_port_free", lambda candidate: True)
    try:
        with pytest.raises(stack.StackError) as failure:
            stack.up(state, port=port)
    finally:
        foreign.shutdown()
    assert str(failure.value) == (f"Port {port} on 127.0.0.1 was taken by another process while the Prefect "
                                  "server started; choose another with --port.")
    assert stack.running_api_url(state) is None  # the foreign server is never recorded as the project's
    assert stack.status(state).prefect_pid is None
    assert "pid" not in json.loads((state / "stack.json").read_text())


def test_a_run_starts_the_project_server_once_and_later_runs_reuse_it(state):
    lines = []
    api_url = stack.ensure_prefect_server(state, progress=lines.append)
    record = json.loads((state / "stack.json").read_text())
    assert api_url == record["api_url"] == stack.running_api_url(state)
    assert lines == [
        f"Starting the Prefect server on {record['ui_url']} (first start sets up its database)…",
        f"The Prefect server keeps running for the next runs (UI {record['ui_url']}); `headwater down` stops it.",
    ]
    assert stack.ensure_prefect_server(state, progress=lines.append) == api_url
    assert len(lines) == 2  # found running: nothing started, nothing said
    assert json.loads((state / "stack.json").read_text())["pid"] == record["pid"]


def test_ps_never_shows_a_dead_server_as_running(state):
    status = stack.up(state, port=_free_port())
    psutil.Process(status.prefect_pid).kill()
    psutil.Process(status.prefect_pid).wait(10)
    after = stack.status(state)
    assert after.prefect_pid is None and after.prefect_api_url is None and after.prefect_ui_url is None


class _RecordingServer(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bytes]] = []

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        type(self).seen.append((self.command, self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"[]")

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def test_warm_up_asks_what_a_run_asks_first_and_changes_nothing():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _RecordingServer.seen = []
    try:
        stack.warm_up(f"http://127.0.0.1:{server.server_address[1]}/api")
    finally:
        server.shutdown()
    assert _RecordingServer.seen == [("GET", "/api/admin/version", b""),
                                     ("POST", "/api/flow_runs/filter", b'{"limit": 1}'),
                                     ("POST", "/api/task_runs/filter", b'{"limit": 1}')]
    # Only reads: filters and the version, never a request that creates or changes anything on the server.
    assert all(method == "GET" or path.endswith("/filter") for method, path, _ in _RecordingServer.seen)


def test_warm_up_of_a_server_that_is_gone_says_nothing_and_returns():
    assert stack.warm_up(f"http://127.0.0.1:{_free_port()}/api", timeout=2) is None  # nothing listens there

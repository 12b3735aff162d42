"""The local stack behind `headwater up` / `headwater down`: a Prefect server, the embedded database and
the warm runner (headwater.local.warm_runner), which runs `headwater run` without its import cost.

Without a server, every Prefect flow run spins up a throw-away one, which costs 17-27 s and keeps
no history. `up` starts one Prefect server (with its UI) in the background, its state under
`.headwater/prefect`, plus the embedded PostgreSQL unless $HEADWATER_DATABASE_URL points
elsewhere. What was started is recorded in `.headwater/stack.json`; flows look there
(`running_api_url`) to report to the server, and `down` uses it to stop everything again.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import fasteners
import psutil

from headwater.common import runtime
from headwater.local import warm_runner
from headwater.local.process_identity import STARTED_KEY, is_recorded_process, start_mark
from headwater.postgres.address import DATABASE_URL_ENV, PostgresAddress

PREFERRED_PORT = 4200
HOST = "127.0.0.1"
STACK_FILE = "stack.json"
SERVER_LOG = Path("logs") / "prefect-server.log"
STOP_GRACE_SECONDS = 10
SERVER_MODE_ENV = "HEADWATER_PREFECT_SERVER"  # "temporary": no project server, Prefect's per-run one

Progress = Callable[[str], None]


class StackError(RuntimeError):
    """The stack could not be started or stopped."""


@dataclass(frozen=True)
class StackStatus:
    prefect_api_url: str | None
    prefect_ui_url: str | None
    prefect_pid: int | None
    database_url: str | None  # password masked
    embedded: bool  # True when the database is Headwater's own embedded server
    runner_pid: int | None = None  # the warm runner (headwater.local.warm_runner), when it listens


def up(
    state_dir: Path,
    *,
    port: int | None = None,
    timeout: float = 60,
    progress: Progress | None = None,
    runner: bool = True,
) -> StackStatus:
    """Start whatever part of the stack is not running yet and return its status; ``runner`` False leaves the
    warm runner out (runs then always start in-process)."""
    say = progress or (lambda message: None)
    state_dir = state_dir.resolve()
    with _locked(state_dir):
        record = _read_record(state_dir)
        started_postgres = bool(record.get("started_postgres"))
        if not os.environ.get(DATABASE_URL_ENV):
            local = _local_postgres(state_dir)
            if not local.is_running():
                say("Starting the embedded PostgreSQL…")
                local.start()
                started_postgres = True

        _ensure_prefect(state_dir, {**record, "started_postgres": started_postgres}, port=port, timeout=timeout,
                        say=say)
        if runner and not warm_runner.runner_pid(state_dir):
            say("Starting the warm runner…")
            warm_runner.start_runner(state_dir, state_dir.parent)
    return status(state_dir)


def ensure_prefect_server(state_dir: Path, *, timeout: float = 90, progress: Progress | None = None) -> str:
    """The API URL of this project's Prefect server, started in the background first if it is not running.

    A run that finds no server starts one and leaves it running, as it does with the embedded
    PostgreSQL: Prefect's temporary per-run server costs 15-30 s of every run, a running one a second.
    `headwater down` stops it; `headwater ps` shows it.
    """
    url = running_api_url(state_dir)
    if url:
        return url
    say = progress or (lambda message: None)
    state_dir = state_dir.resolve()
    with _locked(state_dir):
        record = _ensure_prefect(state_dir, _read_record(state_dir), port=None, timeout=timeout, say=say)
    say(f"The Prefect server keeps running for the next runs (UI {record['ui_url']}); `headwater down` stops it.")
    return record["api_url"]


def prefect_server_for_runs(state_dir: Path, *, progress: Progress | None = None) -> str | None:
    """The Prefect API a local run reports to, started if needed; None when Prefect is set up to use another.

    PREFECT_API_URL (environment or Prefect profile) naming a server other than this project's wins;
    HEADWATER_PREFECT_SERVER=temporary keeps Prefect's own temporary server per run (nothing left running).
    """
    from prefect.settings import get_current_settings

    if os.environ.get(SERVER_MODE_ENV, "").lower() == "temporary":
        return None

    configured = get_current_settings().api.url
    ours = running_api_url(state_dir)
    if configured and configured != ours:
        return None
    return ours or ensure_prefect_server(state_dir, progress=progress)


# How Prefect's client words an API it cannot connect to (prefect.client.orchestration).
_UNREACHABLE_API = "Failed to reach API at "


def unreachable_api_problem(error: BaseException) -> str | None:
    """One line for a run whose Prefect API did not answer, or None when ``error`` is something else.

    Prefect says it in a traceback of a hundred lines; the user needs the address, where it was set, and
    the two ways out."""
    message = str(error)
    if not isinstance(error, RuntimeError) or not message.startswith(_UNREACHABLE_API):
        return None
    url = message[len(_UNREACHABLE_API):].strip()
    cause = error.__cause__ or error.__context__
    reason = f" ({type(cause).__name__}: {cause})" if cause is not None and str(cause) else ""
    where = "the environment" if "PREFECT_API_URL" in os.environ else "the active Prefect profile"
    return (f"Prefect's API at {url} does not answer{reason}; PREFECT_API_URL is set to it in {where}. "
            "Start that server, or unset PREFECT_API_URL so that runs report to this project's own server "
            "(headwater up starts it). Nothing was loaded.")


def _ensure_prefect(state_dir: Path, record: dict[str, Any], *, port: int | None, timeout: float,
                    say: Progress) -> dict[str, Any]:
    """Keep the recorded server when it answers, else start one; the record is written either way."""
    alive = is_recorded_process(record)
    if alive and _healthy(record["api_url"]):
        _write_record(state_dir, record)
        return record
    if alive:
        # Still there but not answering (hung, or its port was lost): replace it.
        _terminate_group(record["pid"])
    kept = {"started_postgres": bool(record.get("started_postgres"))}
    try:
        started = _start_prefect(state_dir, port=port, timeout=timeout, say=say)
    except BaseException:
        # Recorded even when Prefect failed, so that `down` still stops the database.
        _write_record(state_dir, kept)
        raise
    record = {**started, **kept}
    _write_record(state_dir, record)
    return record


def down(state_dir: Path) -> StackStatus:
    """Stop the Prefect server and, if `up` started it, the embedded PostgreSQL."""
    state_dir = state_dir.resolve()
    with _locked(state_dir):
        warm_runner.stop_runner(state_dir)
        record = _read_record(state_dir)
        if is_recorded_process(record):
            _terminate_group(record["pid"])
        elif record.get("pid"):
            # The server's own process died; what it spawned (uvicorn) may still hold the port.
            _signal_group(record["pid"], signal.SIGTERM)
        if record.get("started_postgres"):
            _local_postgres(state_dir).stop()
        (state_dir / STACK_FILE).unlink(missing_ok=True)
    return status(state_dir)


def status(state_dir: Path) -> StackStatus:
    """What is running now, as far as this project is concerned."""
    record = _read_record(state_dir)
    api_url = running_api_url(state_dir)
    external = os.environ.get(DATABASE_URL_ENV)
    if external:
        database_url: str | None = PostgresAddress.from_url(external).safe_url
    else:
        database_url = _local_postgres(state_dir).url()
    return StackStatus(
        prefect_api_url=api_url,
        prefect_ui_url=record.get("ui_url") if api_url else None,
        prefect_pid=record.get("pid") if api_url else None,
        database_url=database_url,
        embedded=not external,
        runner_pid=warm_runner.runner_pid(state_dir),
    )


def use_local_stack() -> str | None:
    """Point Prefect at the server `headwater up` started, unless PREFECT_API_URL already names one."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    url = running_api_url(runtime.state_dir())
    if url:
        os.environ["PREFECT_API_URL"] = url
    return url


def running_api_url(state_dir: Path) -> str | None:
    """The Prefect API URL of this project's running server, or None. Takes at most about a second."""
    record = _read_record(state_dir)
    if is_recorded_process(record) and _healthy(record["api_url"], timeout=1.0):
        return record["api_url"]
    return None


# -- Prefect server --------------------------------------------------------------------


def _start_prefect(state_dir: Path, *, port: int | None, timeout: float, say: Progress) -> dict[str, Any]:
    chosen = port is not None
    if port is None:
        port = PREFERRED_PORT if _port_free(PREFERRED_PORT) else _free_port()
    elif not _port_free(port):
        raise StackError(f"Port {port} on {HOST} is already in use; choose another with --port.")
    base = f"http://{HOST}:{port}"
    api_url = f"{base}/api"

    prefect_home = state_dir / "prefect"
    prefect_home.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / SERVER_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)

    env = runtime.child_environ(
        {"PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
         "PREFECT_SERVER_UI_API_URL": api_url}
    )
    # The server must not think of itself as a client of some other server.
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n--- {datetime.now(timezone.utc).isoformat(timespec='seconds')} {' '.join(command)}\n")
        log.flush()
        # A session of its own: the server survives this command and Ctrl-C in the terminal,
        # and `down` can signal it together with anything it spawned.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=state_dir,
            start_new_session=True,
        )

    say(f"Starting the Prefect server on {base} (first start sets up its database)…")
    deadline = time.monotonic() + timeout
    taken = StackError(
        f"Port {port} on {HOST} was taken by another process while the Prefect server started; "
        + ("choose another with --port." if chosen else "run the command again (it picks a free port).")
    )
    while not _healthy(api_url):
        if process.poll() is not None:
            if not _port_free(port):
                raise taken
            raise StackError(_failure(f"The Prefect server exited with code {process.returncode}", log_path))
        if time.monotonic() >= deadline:
            _terminate_group(process.pid)
            raise StackError(_failure(f"The Prefect server did not answer within {timeout:g}s", log_path))
        time.sleep(0.5)
    if not _listens_on(process.pid, port):
        # Something else took the port between the check and the bind: what answered is not ours.
        _terminate_group(process.pid)
        raise taken
    warm_up(api_url)

    return {
        "pid": process.pid,
        STARTED_KEY: start_mark(process.pid),
        "port": port,
        "api_url": api_url,
        "ui_url": base,
        "log": str(log_path),
    }


def _listens_on(pid: int, port: int) -> bool:
    """The server process (or one it spawned) holds the listening socket of the port."""
    try:
        leader = psutil.Process(pid)
        processes = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return False
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections):
            return True
    return False


def _connection(api_url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection to the server of ``api_url`` (not yet opened) and the API's path prefix."""
    parts = urllib.parse.urlsplit(api_url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return kind(parts.hostname or HOST, parts.port, timeout=timeout), parts.path.rstrip("/")


def _healthy(api_url: str, timeout: float = 2.0) -> bool:
    """The server at ``api_url`` answers its health check. Asked with http.client: the server is this
    machine's, over plain HTTP, and httpx builds a TLS context for every request (25-90 ms of each run's
    start); no proxy settings apply either, so a proxy configured for the internet never intercepts it."""
    connection, base = _connection(api_url, timeout)
    try:
        connection.request("GET", base + "/health")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


# Read-only requests down the paths a run takes first (its API version check, then flow and task runs).
WARM_UP_REQUESTS = (("GET", "/admin/version", None), ("POST", "/flow_runs/filter", b'{"limit": 1}'),
                    ("POST", "/task_runs/filter", b'{"limit": 1}'))


def warm_up(api_url: str, timeout: float = 10.0) -> None:
    """Ask a freshly started server what a run asks first, so that the first run does not wait for it.

    A Prefect server answers its health check at once but sets up its database session and routes on the
    first request that needs them: about 0.5 s here, which the first run after `up` paid on top of its own
    work. A request that fails changes nothing: the run asks again and reports what it finds.
    """
    connection, base = _connection(api_url, timeout)
    try:
        for method, path, body in WARM_UP_REQUESTS:
            headers = {"Content-Type": "application/json"} if body else {}
            connection.request(method, base + path, body=body, headers=headers)
            connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()


def _terminate_group(pid: int) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left after a grace period."""
    # The server was started as a session leader, so its process group id is its pid.
    try:
        leader = psutil.Process(pid)
        members = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        members = []
    _signal_group(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=STOP_GRACE_SECONDS)
    if alive:
        _signal_group(pid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)


def _signal_group(group: int, sig: signal.Signals) -> None:
    try:
        os.killpg(group, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _failure(what: str, log_path: Path, lines: int = 20) -> str:
    try:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        tail = "(no output)"
    return f"{what}. Last lines of {log_path}:\n{tail}"


# -- helpers -----------------------------------------------------------------------------


def _local_postgres(state_dir: Path):
    from headwater.local.embedded_postgres import LocalPostgres

    return LocalPostgres(state_dir / "postgres")


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Serialise `up` and `down` so two of them cannot start two servers."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(state_dir / "stack.lock")):
        yield


def _read_record(state_dir: Path) -> dict[str, Any]:
    try:
        record = json.loads((state_dir / STACK_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(state_dir: Path, record: dict[str, Any]) -> None:
    path = state_dir / STACK_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)  # readers never see a half-written file


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((HOST, port)) == 0:
            return False
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]

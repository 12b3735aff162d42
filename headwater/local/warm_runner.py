"""The warm runner of `headwater up`: a process with Prefect, dlt and Headwater imported, which runs
`headwater run` and `python -m flows.daily` for callers on a Unix socket, like Gradle's daemon.

Importing Prefect and dlt alone costs more than a second of every run; the runner pays it once. Per call:

    caller ──(argv, cwd, environment, umask, stdin/stdout/stderr by SCM_RIGHTS)──▶ runner (single thread)
    runner: declines (stale code, another interpreter, other import-time settings) or hands the call on to
    its spare ──▶ supervisor ──fork──▶ worker: takes the caller's process state, runs `main()`, exits
    supervisor: forwards the caller's signals, stops the worker when the caller dies, sends the exit status

Fork is only safe without threads: the runner imports nothing that starts one (Polars starts a spill
cleaner thread at import, pyarrow's jemalloc a background thread unless told not to), checks that it has
one thread, and forks the spare's supervisor before anything else happens in it. The worker imports Polars
and the rest of the run's modules in the background, while it waits for a call; it never forks again
without exec. A spare is made again after each call; it waits to import until no run is going on (a
run's supervisor holds a shared lock on `runner.busy`), so that its imports, about a core-second, do
not take a core from the run that has just started; a call that reaches it first starts its imports.

A call is declined, and the caller runs in-process, when the code or the installed packages changed since
the runner started (`code_stamp`; the runner then starts a fresh one in the background and exits), when the
caller uses another interpreter or `flows` package, or when an environment variable read at import time
differs (`import_time_environment`). The worker takes Prefect's settings and logging from the caller's
environment and terminal (`take_callers_process`), as a process starting from scratch would read them; its
spare has read them ahead for a call like the last one (headwater.local.prepared_settings).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from headwater.common.runtime import PREFECT_DEFAULTS, TELEMETRY_OFF
from headwater.local.prepared_settings import prefect_variables
from headwater.local.process_identity import STARTED_KEY, is_recorded_process, start_mark
from headwater.local.warm_client import RECORD_FILE, RunnerUnavailable, receive_message, send_message, socket_path
from headwater.local.warm_worker import STOP_GRACE_SECONDS, busy_lock_path, hold_busy_lock, log, supervise_spare

LOG_FILE = Path("logs") / "warm-runner.log"
READY_TIMEOUT_SECONDS = 60
SOCKET_PATH_LIMIT = 100  # sun_path holds 108 bytes on Linux

# The commands a caller may ask for, by module; each has `main()` reading sys.argv. Named as strings: the
# runner hosts the commands above it in the layout (headwater.cli, flows) and must not import them itself.
ENTRIES = ("headwater.cli", "flows.daily")
# Imported by the runner before it forks: none of them starts a thread (checked in `serve`).
RUNNER_PRELOAD = ("pyarrow", "dlt", "prefect", "prefect.flow_engine", "prefect.artifacts",
                  "prefect.client.orchestration", "rich.console", "rich.table", "httpx", "psutil", "psycopg",
                  "headwater.local.stack")
# Read once, when a module is imported: a caller whose values differ gets an in-process run.
IMPORT_TIME_PREFIXES = ("PREFECT_", "PYTHON", "RUNTIME__", "DLT_", "POLARS_", "ARROW_", "HEADWATER_PLUGINS")
# Prefect's settings are rebuilt from the caller's environment in the worker, so these may differ.
REFRESHED = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")
# pyarrow's jemalloc starts a background thread at import unless configured otherwise (runner only).
NO_ALLOCATOR_THREADS = {"JE_ARROW_MALLOC_CONF": "background_thread:false"}


# -- the caller of `headwater up` / `down` / `status` ------------------------------------------------------


def start_runner(state_dir: Path, project_root: Path, *, wait: bool = True) -> int | None:
    """Start the project's runner in the background unless it runs; its pid once it listens (None: it did not
    come up within the timeout, see .headwater/logs/warm-runner.log)."""
    running = runner_pid(state_dir)
    if running:
        return running
    if len(str(socket_path(state_dir))) > SOCKET_PATH_LIMIT:
        return None  # a Unix socket path that long cannot be bound; runs stay in-process
    log_path = state_dir / LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True)
    _spawn(state_dir, project_root, dict(os.environ), log_path)
    if not wait:
        return None
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        pid = runner_pid(state_dir)
        if pid:
            return pid
        time.sleep(0.1)
    return None


def _spawn(state_dir: Path, project_root: Path, environ: dict[str, str], log_path: Path) -> None:
    command = [sys.executable, "-c", "from headwater.local.warm_runner import main; main()", str(state_dir)]
    with open(log_path, "a", encoding="utf-8") as log:
        # A session of its own: it outlives the command that started it and the terminal's Ctrl-C.
        subprocess.Popen(command, cwd=project_root, env=environ, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)


def runner_pid(state_dir: Path) -> int | None:
    """The pid of the project's runner when it is alive and listening."""
    record = _read_record(state_dir)
    if record.get("ready") and is_recorded_process(record) and socket_path(state_dir).exists():
        return record["pid"]
    return None


def stop_runner(state_dir: Path) -> bool:
    """Stop the runner (runs it serves finish on their own); True when one was running."""
    record = _read_record(state_dir)
    if not is_recorded_process(record):
        (state_dir / RECORD_FILE).unlink(missing_ok=True)
        return False
    import psutil

    try:
        process = psutil.Process(record["pid"])
        process.terminate()
        process.wait(STOP_GRACE_SECONDS)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        process.kill()
    socket_path(state_dir).unlink(missing_ok=True)
    (state_dir / RECORD_FILE).unlink(missing_ok=True)
    return True


def _read_record(state_dir: Path) -> dict:
    try:
        record = json.loads((state_dir / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(state_dir: Path, record: dict) -> None:
    path = state_dir / RECORD_FILE
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record) + "\n")
    temporary.replace(path)


# -- the runner ----------------------------------------------------------------------------------------------


def main() -> None:
    state_dir = Path(sys.argv[1]).resolve()
    launch_environ = dict(os.environ)
    # Modules resolve as for the `headwater` script, not from the folder the runner started in.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)
    record = {"pid": os.getpid(), STARTED_KEY: start_mark(os.getpid()), "ready": False}
    _write_record(state_dir, record)  # `headwater down` finds it while it still imports
    os.environ.update(NO_ALLOCATOR_THREADS)
    for name in RUNNER_PRELOAD:
        importlib.import_module(name)
    threads = _thread_names()
    if len(threads) > 1:
        log(f"not serving: threads {threads} exist after the imports, and fork is unsafe with threads")
        (state_dir / RECORD_FILE).unlink(missing_ok=True)
        sys.exit(1)
    Runner(state_dir, launch_environ, record).serve()


def _thread_names() -> list[str]:
    names = []
    for task in sorted(os.listdir("/proc/self/task")):
        try:
            names.append(Path(f"/proc/self/task/{task}/comm").read_text().strip())
        except OSError:
            pass
    return names


class Runner:
    def __init__(self, state_dir: Path, launch_environ: dict[str, str], record: dict):
        self.state_dir = state_dir
        self.launch_environ = launch_environ
        self.record = record
        self.imports = import_time_environment(launch_environ)
        self.code_roots = _code_roots()
        self.stamp = code_stamp(self.code_roots)
        self.flows_origin = _module_origin("flows")
        self.path = socket_path(state_dir)
        self.listener: socket.socket | None = None
        self.spare: socket.socket | None = None
        # Where the next call most likely comes from, for its spare to read Prefect's settings ahead: at
        # first where `headwater up` ran, then where the last call came from (prepared_settings).
        self.expected = {"prefect": prefect_variables(launch_environ), "cwd": os.getcwd()}

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, _exit_on_signal)
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
        self.listener = _listen(self.path)
        self.spare = self._fork_spare()
        _write_record(self.state_dir, {**self.record, "ready": True})
        log(f"serving {self.path}")
        try:
            while True:
                connection, _ = self.listener.accept()
                with connection:
                    handed_on = self._answer(connection)
                if handed_on:  # after the connection closed here, so that no other process holds it
                    self.spare.close()
                    self.spare = self._fork_spare()
        finally:
            self._close()

    def _answer(self, connection: socket.socket) -> bool:
        """Decline the call or hand it to the spare; True when the spare took it."""
        connection.settimeout(5)  # a caller that stalls must not hold up the next one
        try:
            request = receive_message(connection, max_descriptors=3)
        except (OSError, ValueError, RunnerUnavailable):
            return False
        descriptors = request.pop("_fds")
        caller, uid = _peer(connection)
        try:
            reason = self.decline_reason(request, uid)
            if reason:
                log(f"declined the call of pid {caller}: {reason}")
                send_message(connection, {"declined": reason})
                if reason == STALE:
                    self._replace_self()
                return False
            # The spare's supervisor takes over the connection, the run's busy lock and the caller's descriptors.
            busy = hold_busy_lock(self.state_dir)
            try:
                send_message(self.spare, {**request, "caller": caller}, [connection.fileno(), busy, *descriptors])
            finally:
                os.close(busy)
            self.expected = {"prefect": prefect_variables(request.get("env") or {}), "cwd": request.get("cwd")}
            return True
        except OSError as error:
            log(f"could not hand a call on: {error}")
            return True  # the spare may be gone: make a new one
        finally:
            for descriptor in descriptors:
                os.close(descriptor)

    def decline_reason(self, request: dict, uid: int) -> str | None:
        if uid != os.getuid():
            return "another user"
        if request.get("entry") not in ENTRIES:
            return "unknown command"
        if request.get("executable") != os.path.realpath(sys.executable) or request.get("prefix") != sys.prefix:
            return "another interpreter or virtual environment"
        if request.get("flows") != self.flows_origin:
            return "another flows package"
        differing = _differing_names(import_time_environment(request.get("env") or {}), self.imports)
        if differing:
            # Names only: a value may be a secret.
            return f"environment read at import time differs ({', '.join(differing)})"
        if code_stamp(self.code_roots) != self.stamp:
            return STALE
        return None

    def _fork_spare(self) -> socket.socket:
        runner_end, supervisor_end = socket.socketpair()
        if os.fork() == 0:
            runner_end.close()
            self.listener.close()
            supervise_spare(supervisor_end, busy_lock_path(self.state_dir), self.expected)  # never returns
        supervisor_end.close()
        return runner_end

    def _replace_self(self) -> None:
        """Code or packages changed: start a fresh runner in the background (the caller runs in-process)."""
        log("code or installed packages changed: starting a fresh runner")
        self._close()
        _spawn(self.state_dir, Path.cwd(), self.launch_environ, self.state_dir / LOG_FILE)
        os._exit(0)

    def _close(self) -> None:
        if self.spare is not None:
            self.spare.close()  # its supervisor and worker exit when they see it closed
        if self.listener is not None:
            self.listener.close()
            self.path.unlink(missing_ok=True)
        if _read_record(self.state_dir).get("pid") == os.getpid():
            (self.state_dir / RECORD_FILE).unlink(missing_ok=True)


STALE = "code or installed packages changed"


def _exit_on_signal(signum, frame):
    raise SystemExit(0)


def _listen(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # 0600 from the start: no moment where another user could connect
    try:
        listener.bind(str(path))
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    listener.listen(16)
    return listener


def _peer(connection: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of the connection, as the kernel knows them."""
    import struct

    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", credentials)
    return pid, uid


def import_time_environment(environ: dict[str, str]) -> dict[str, str]:
    """The variables Prefect, dlt, Polars, pyarrow and Headwater's plugins read when they are imported, with
    Headwater's defaults filled in as every run fills them (an environment without them runs the same way)."""
    with_defaults = {**TELEMETRY_OFF, **PREFECT_DEFAULTS, **environ}
    return {name: value for name, value in with_defaults.items()
            if name.startswith(IMPORT_TIME_PREFIXES) and name not in REFRESHED}


def _differing_names(caller: dict[str, str], runner: dict[str, str]) -> list[str]:
    """The variables set differently (or only on one side) in the caller's and the runner's environment."""
    return sorted(name for name in caller.keys() | runner.keys() if caller.get(name) != runner.get(name))


def _module_origin(name: str) -> str | None:
    from importlib.util import find_spec

    module = sys.modules.get(name)
    if module is not None:
        return getattr(module, "__file__", None)
    spec = find_spec(name)
    return spec.origin if spec else None


def _code_roots() -> list[Path]:
    """Folders of the code a run executes from source: Headwater, the built-in connectors, the flows."""
    from importlib.util import find_spec

    roots = []
    for name in ("headwater", "connectors", "flows"):
        spec = find_spec(name)
        roots += [Path(location) for location in (spec.submodule_search_locations or [])] if spec else []
    return roots


def code_stamp(roots: list[Path]) -> str:
    """Every source file's mtime and size, and the site-packages folders' mtimes (an install or upgrade adds
    or renames a folder there); any change makes a new stamp."""
    import site

    digest = hashlib.sha256()
    for root in roots:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
            for name in sorted(files):
                if name.endswith((".py", ".yml", ".yaml")):
                    info = os.stat(os.path.join(folder, name))
                    digest.update(f"{folder}/{name} {info.st_mtime_ns} {info.st_size}\n".encode())
    for folder in [*site.getsitepackages(), site.getusersitepackages()]:
        try:
            digest.update(f"{folder} {os.stat(folder).st_mtime_ns}\n".encode())
        except OSError:
            pass
    return digest.hexdigest()



"""The caller's side of the warm runner (headwater.local.warm_runner): hand this command to it, or say it cannot.

`headwater run` and `python -m flows.daily` call `run_in_warm_runner` before importing anything heavy. When
the project's runner is up, it runs the command in a process that has Prefect, dlt and Headwater imported
already, on this process's terminal (its stdin, stdout and stderr travel over the socket), in its folder,
with its environment and umask; this process only waits, forwards Ctrl-C and SIGTERM, and exits with the
run's exit code. Anything else (no runner, another interpreter, stale code, a socket error) returns None
at once and the caller runs the command itself. Only the standard library is imported here: this module
is on the path of every run, and its cost is the cost of asking.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

SOCKET_FILE = "runner.sock"
RECORD_FILE = "runner.json"
DISABLE_ENV = "HEADWATER_WARM_RUNNER"  # "off": always run in-process
CONNECT_TIMEOUT_SECONDS = 2.0
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STDIO = (0, 1, 2)

# Set in the runner's child: the command it runs must not ask the runner again.
inside_runner = False


class RunnerUnavailable(Exception):
    """The runner cannot serve this call; the caller runs the command in-process."""


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_FILE


def run_in_warm_runner(entry: str, state_dir: Path, argv0: str | None = None) -> int | None:
    """The exit code of `entry` (a module whose `main()` the runner calls) run by the project's warm runner
    with this process's argv (its first item ``argv0`` when given), or None when it cannot serve the call
    (then nothing has run)."""
    if inside_runner or os.environ.get(DISABLE_ENV, "").lower() in ("off", "0", "false", "no"):
        return None
    path = socket_path(state_dir)
    if not path.exists():
        return None
    try:
        connection = _connect(path)
    except OSError:
        return None
    with connection:
        try:
            _send_request(connection, entry, [argv0, *sys.argv[1:]] if argv0 else sys.argv)
            answer = receive_message(connection)
        except (OSError, ValueError, RunnerUnavailable):
            return None
        if "pid" not in answer:  # declined: stale code, another interpreter or environment
            return None
        return _wait_for_exit(connection)


def _connect(path: Path) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(CONNECT_TIMEOUT_SECONDS)
        connection.connect(str(path))
    except OSError:
        connection.close()
        raise
    return connection


def _send_request(connection: socket.socket, entry: str, argv: list[str]) -> None:
    umask = os.umask(0)
    os.umask(umask)
    descriptors = [fd for fd in STDIO if _is_open(fd)]
    request = {
        "entry": entry,
        "argv": argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "umask": umask,
        "stdio": descriptors,
        "executable": os.path.realpath(sys.executable),
        "prefix": sys.prefix,
        "flows": _flows_origin(),
        "encoding": getattr(sys.stdout, "encoding", None),
    }
    send_message(connection, request, descriptors)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _flows_origin() -> str | None:
    """Where this process would import the `flows` package from: the runner must have imported the same one."""
    module = sys.modules.get("flows")
    if module is not None:
        return getattr(module, "__file__", None)
    from importlib.util import find_spec  # finds without importing: the package's __init__ does not run

    try:
        spec = find_spec("flows")
    except (ImportError, ValueError):
        return None
    return spec.origin if spec else None


def _wait_for_exit(connection: socket.socket) -> int:
    """Forward signals to the run until its exit status arrives; a run killed by a signal kills us alike."""
    connection.settimeout(None)

    def forward(signum, frame):
        try:
            connection.sendall(bytes([signum]))
        except OSError:
            pass

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        status = receive_message(connection)
    except (OSError, ValueError, RunnerUnavailable):
        print("error: the warm runner's run ended without an exit status", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if "signal" in status:
        # The shell sees what it would have seen in-process: Ctrl-C ends the command with SIGINT.
        signal.signal(status["signal"], signal.SIG_DFL)
        os.kill(os.getpid(), status["signal"])
        return 128 + status["signal"]
    return int(status.get("exit", 1))


# -- messages: a 4-byte length, then JSON; file descriptors ride on the first byte -----------------------


def send_message(connection: socket.socket, message: dict, descriptors: list[int] = ()) -> None:
    payload = json.dumps(message).encode()
    data = struct.pack("!I", len(payload)) + payload
    if descriptors:
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", descriptors).tobytes())]
        sent = connection.sendmsg([data[:4]], rights)
        data = data[sent:]
    connection.sendall(data)


def receive_message(connection: socket.socket, max_descriptors: int = 0) -> dict:
    """One message; with ``max_descriptors`` it returns the received descriptors under "_fds"."""
    descriptors: list[int] = []
    if max_descriptors:
        header, ancillary, _, _ = connection.recvmsg(4, socket.CMSG_SPACE(max_descriptors * 4))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                descriptors += array.array("i", data[: len(data) - len(data) % 4]).tolist()
        header += _receive_exactly(connection, 4 - len(header))
    else:
        header = _receive_exactly(connection, 4)
    (length,) = struct.unpack("!I", header)
    message = json.loads(_receive_exactly(connection, length))
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    if max_descriptors:
        message["_fds"] = descriptors
    return message


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = connection.recv(size)
        if not chunk:
            raise RunnerUnavailable("the connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)

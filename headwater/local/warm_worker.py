"""The spare of the warm runner (headwater.local.warm_runner): a supervisor and the worker it forks, made
ready before a call comes, then one call run as the caller's own process would run it.

The supervisor is forked from the runner, which has no threads; it forks the worker at once. The worker
imports Polars (which starts a thread) and the modules of a run while it waits, once no other run is going
on (``_wait_for_quiet``). When the runner hands the
supervisor a call (the caller's connection and descriptors), the worker takes the caller's process state
(`take_callers_process`) and runs the entry's `main()`; the supervisor forwards the caller's signals, stops
the worker when the caller dies (its connection closes) and sends the caller the exit status.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib
import os
import select
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

import psutil

from headwater.local.prepared_settings import PreparedSettings, prepare
from headwater.local.warm_client import FORWARDED_SIGNALS, RunnerUnavailable, receive_message, send_message

STOP_GRACE_SECONDS = 10
# Held (shared) by the supervisor of each call until its worker ends; a spare imports once none holds it.
BUSY_LOCK_FILE = "runner.busy"
QUIET_POLL_SECONDS = 0.05
# Imported by each spare worker while it waits: Polars first (it starts a thread), then what a run uses.
WORKER_PRELOAD = ("polars", "connectors", "headwater.cli", "flows.daily", "headwater.load.pipeline",
                  "headwater.postgres.loader", "adbc_driver_postgresql.dbapi", "dlt.destinations",
                  "prefect.task_engine", "prefect.concurrency.sync", "prefect.utilities.visualization",
                  "fastapi.encoders", "headwater.load.read_ahead", "connectorx")


def log(line: str) -> None:
    """One line of the runner's log (.headwater/logs/warm-runner.log), from the runner or a spare."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} warm runner {os.getpid()}: {line}", flush=True)


def busy_lock_path(state_dir: Path) -> Path:
    return state_dir / BUSY_LOCK_FILE


def hold_busy_lock(state_dir: Path) -> int:
    """A descriptor holding a shared lock on the busy file: a run is going on while any is open."""
    descriptor = os.open(busy_lock_path(state_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_SH)
    return descriptor


def _run_going_on(path: Path) -> bool:
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)  # closing releases the lock, if taken
    return False


def _wait_for_quiet(worker_end: socket.socket, busy_path: Path) -> None:
    """Wait while a run goes on, unless a call arrives first (it needs the imports now)."""
    while not select.select([worker_end], [], [], QUIET_POLL_SECONDS)[0]:
        if not _run_going_on(busy_path):
            return


def supervise_spare(runner_end: socket.socket, busy_path: Path, expected: dict | None = None) -> None:
    """In the supervisor (forked from the runner, no threads): fork the worker, wait for a call, see it through.

    The supervisor of a call holds the run's busy lock (``hold_busy_lock``, from the runner) until its
    worker ends: the next spare's worker waits for it before importing. ``expected`` is where the runner
    expects the next call from (``prepared_settings.prepare``'s arguments), or None."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # so that waitpid sees the worker's status
    supervisor_end, worker_end = socket.socketpair()
    worker = os.fork()
    if worker == 0:
        supervisor_end.close()
        runner_end.close()
        _wait_as_worker(worker_end, busy_path, expected)  # never returns
    worker_end.close()
    try:
        call = receive_message(runner_end, max_descriptors=5)
    except (OSError, ValueError, RunnerUnavailable):  # the runner stopped: so does the spare
        os.kill(worker, signal.SIGKILL)
        os._exit(0)
    runner_end.close()
    descriptors = call.pop("_fds")
    caller = socket.socket(fileno=descriptors[0])
    # descriptors[1] is the busy lock: kept open (so held) until this supervisor exits after its worker.
    try:
        preloading_cpu = _cpu_seconds(worker)  # what the worker spent getting ready is not the call's
        send_message(supervisor_end, call, descriptors[2:])
        for descriptor in descriptors[2:]:
            os.close(descriptor)
        send_message(caller, {"pid": worker})
        log(f"runs {call['entry']} for pid {call.get('caller')} in worker {worker}")
        status = _see_through(caller, worker, preloading_cpu)
        log(f"worker {worker} for pid {call.get('caller')} ended: {status}")
        send_message(caller, status)
    except OSError:
        pass
    os._exit(0)


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) the process has used so far; 0.0 when that cannot be read."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def _see_through(caller: socket.socket, worker: int, preloading_cpu: float = 0.0) -> dict:
    """Forward the caller's signals to the worker until it exits; a caller gone (EOF) stops the worker."""
    caller.setblocking(True)
    exited = os.pidfd_open(worker)
    allowed = {int(signum) for signum in FORWARDED_SIGNALS}
    while True:
        readable, _, _ = select.select([caller, exited], [], [])
        if exited in readable:
            break
        data = caller.recv(64)
        if not data:  # the caller died (or was killed): nobody waits for this run any more
            os.kill(worker, signal.SIGTERM)
            if not select.select([exited], [], [], STOP_GRACE_SECONDS)[0]:
                os.kill(worker, signal.SIGKILL)
            os.waitpid(worker, 0)
            os._exit(0)
        for signum in data:
            if signum in allowed:
                os.kill(worker, signum)
    _, status, usage = os.wait4(worker, 0)
    code = os.waitstatus_to_exitcode(status)
    # The run's peak memory and CPU time are the worker's, not the caller's: said in the log for whoever
    # measures them.
    ending = {"signal": -code} if code < 0 else {"exit": code}
    call_cpu = usage.ru_utime + usage.ru_stime - preloading_cpu
    return {**ending, "peak_rss_kib": usage.ru_maxrss, "cpu_seconds": round(call_cpu, 2)}


def _wait_as_worker(worker_end: socket.socket, busy_path: Path, expected: dict | None) -> None:
    """In the worker: import what a run uses and read Prefect's settings for the call ``expected``, wait for
    the call, run it as the caller's process would."""
    _wait_for_quiet(worker_end, busy_path)
    for name in WORKER_PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as error:  # an optional driver missing only costs its import in the run
            log(f"could not preload {name}: {type(error).__name__}: {error}")
    try:
        # The plugins (connector modules, their drivers) load on the registry's first use, cached: now.
        importlib.import_module("headwater.plugins.manager").connector_registry()
    except Exception as error:  # the run reports a broken plugin itself
        log(f"could not load the plugins: {type(error).__name__}: {error}")
    try:
        importlib.import_module("headwater.cli").build_parser()  # imports every subcommand's module
    except Exception as error:  # the run reports it itself
        log(f"could not build the command's parser: {type(error).__name__}: {error}")
    prepared = prepare(expected["prefect"], expected["cwd"]) if expected else None
    try:
        importlib.import_module("headwater.common.prefect_tls").share_api_tls_contexts(preload_default=True)
    except Exception as error:  # the run builds its contexts itself
        log(f"could not build Prefect's TLS context: {type(error).__name__}: {error}")
    log(f"spare worker {os.getpid()} is ready")
    try:
        call = receive_message(worker_end, max_descriptors=3)
    except (OSError, ValueError, RunnerUnavailable):
        os._exit(0)
    worker_end.close()
    take_callers_process(call, prepared)
    os._exit(_run_entry(call["entry"]))


def take_callers_process(call: dict, prepared: PreparedSettings | None = None) -> None:
    """Become the caller: signals as Python sets them, its umask, folder, environment, argv and terminal;
    then Prefect's settings and logging as a fresh process reads them from that environment (those
    ``prepared`` when they are what it would read)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    os.umask(call["umask"])
    os.chdir(call["cwd"])
    os.environ.clear()
    os.environ.update(call["env"])
    for target, descriptor in zip(call["stdio"], call.pop("_fds"), strict=True):
        os.dup2(descriptor, target)
        os.close(descriptor)
    sys.argv = list(call["argv"])
    _fresh_stdio(call.get("encoding") or sys.stdout.encoding, call["stdio"])

    import prefect.context
    import prefect.logging.configuration

    from headwater.common.runtime import quiet_telemetry
    from headwater.local import warm_client

    # The caller has set up its environment as a run does before Prefect is imported (telemetry off, the
    # project's server in PREFECT_API_URL for `python -m flows.daily`; `headwater run` sets it in the command).
    warm_client.inside_runner = True
    quiet_telemetry()
    if prepared is not None and prepared.fits(os.environ, call["cwd"]):
        prefect.context.GLOBAL_SETTINGS_CONTEXT = prepared.context
        logging_configuration = prepared.logging_configuration()
    else:
        prefect.context.refresh_global_settings_context()
        logging_configuration = contextlib.nullcontext()
    with logging_configuration:
        prefect.logging.configuration.setup_logging(incremental=False)  # handlers on the caller's stderr


def _fresh_stdio(encoding: str, descriptors: list[int]) -> None:
    """sys.stdin, stdout and stderr over the caller's descriptors, buffered as Python buffers them at start-up
    (stdout by line on a terminal only). The old objects wrote to the runner's log file; references to them
    still write to the caller's descriptors, now behind the same numbers."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if 0 in descriptors:
        sys.stdin = sys.__stdin__ = open(0, encoding=encoding, closefd=False)
    if 1 in descriptors:
        sys.stdout = sys.__stdout__ = open(1, "w", buffering=1 if os.isatty(1) else -1, encoding=encoding,
                                           closefd=False)
    if 2 in descriptors:
        sys.stderr = sys.__stderr__ = open(2, "w", buffering=1, encoding=encoding, errors="backslashreplace",
                                           closefd=False)


def _run_entry(entry: str) -> int:
    """`main()` of the entry with the exit semantics of `sys.exit(main())`; Ctrl-C ends it by SIGINT."""
    try:
        code = importlib.import_module(entry).main()
    except SystemExit as exit_:
        code = exit_.code
    except KeyboardInterrupt:
        traceback.print_exc()
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    _finish()
    return code


def _finish() -> None:
    """What the interpreter does at exit: atexit handlers (Prefect sends its last logs and events), flush."""
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass

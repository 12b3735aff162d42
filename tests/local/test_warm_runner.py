"""The warm runner (headwater.local.warm_runner): `headwater run` handed to it runs as it does in-process.

Real processes throughout: the runner of a project folder, `headwater run` started from the shell's point
of view (a child process with its own environment and folder), the session's Prefect server, a fresh database.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from headwater.load.source_lock import source_lock
from headwater.local import warm_runner
from headwater.local.warm_client import socket_path
from headwater.postgres.address import PostgresAddress
from tests.conftest import fresh_database, query

pytestmark = pytest.mark.slow

HEADWATER = str(Path(sys.executable).with_name("headwater"))
PROJECT = """project: warm
sources:
  files:
    connector: filesystem
    settings: {bucket_url: "${HW_WARM_LANDING}", files: {events: "*.csv"}}
    tables: {events: {}}
run: {lock_wait: 2m}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory, prefect_api):
    """(folder, environment of a caller, database URL) of a project whose warm runner is up."""
    root = tmp_path_factory.mktemp("warm")
    landing = root / "landing"
    landing.mkdir()
    (landing / "day1.csv").write_text("id,name\n1,a\n2,b\n3,c\n")
    (root / "headwater.yaml").write_text(PROJECT)
    state = root / ".headwater"
    state.mkdir()
    with fresh_database("hw_fixed_cost") as url:
        env = {name: value for name, value in os.environ.items() if name != "HEADWATER_CONFIG"}
        # The landing folder is a reference the child must resolve from the caller's environment.
        env.update(HEADWATER_DATABASE_URL=url, HW_WARM_LANDING=str(landing))
        assert warm_runner.start_runner(state, root), _log(root)
        try:
            yield root, env, url
        finally:
            warm_runner.stop_runner(state)


def _log(root: Path) -> str:
    path = root / ".headwater" / warm_runner.LOG_FILE
    return path.read_text() if path.exists() else ""


def _start(root: Path, env: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen([HEADWATER, "run", *args], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _run(root: Path, env: dict) -> tuple[subprocess.CompletedProcess, int]:
    process = _start(root, env)
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), process.pid


def _served(root: Path, pid: int) -> bool:
    return f"for pid {pid} in worker" in _log(root)


def _worker_of(root: Path, pid: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(rf"for pid {pid} in worker (\d+)", _log(root))
        if found:
            return int(found.group(1))
        time.sleep(0.2)
    raise AssertionError(f"the runner did not take the call of pid {pid}:\n{_log(root)}")


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


def _without_timings(text: str) -> list[list[str]]:
    """The output's words, durations left out (they differ between any two runs, and so do column widths)."""
    text = re.sub(r"\d+(\.\d+)?s\b", "", text)
    return [line.split() for line in text.splitlines() if line.strip()]


def _run_record(url: str, run_id: str) -> tuple:
    runs = query(url, "select flow_name, parameters, status, started_by, headwater_version, rows_loaded, failures "
                      "from headwater_ops.runs where run_id = %s", run_id)
    loads = query(url, "select source, table_name, rows_read, rows_loaded, rows_quarantined, error "
                       "from headwater_ops.table_loads where run_id = %s order by table_name", run_id)
    audit = query(url, "select kind, db_user, os_user, deployment from headwater_ops.audit_log "
                       "where details->>'run_id' = %s order by seq", run_id)
    return runs, loads, audit


def _latest_run_id(url: str) -> str:
    return query(url, "select run_id from headwater_ops.runs order by started_at desc limit 1")[0][0]


def test_a_run_through_the_runner_prints_and_records_what_an_in_process_run_does(project):
    root, env, url = project
    in_process = {**env, "HEADWATER_WARM_RUNNER": "off"}
    first, _ = _run(root, in_process)  # loads day1.csv
    assert first.returncode == 0, first.stderr
    assert query(url, "select count(*) from raw_files.events")[0][0] == 3

    alone, alone_pid = _run(root, in_process)
    alone_run = _latest_run_id(url)
    warm, warm_pid = _run(root, env)
    warm_run = _latest_run_id(url)

    assert alone.returncode == warm.returncode == 0, warm.stderr
    assert not _served(root, alone_pid) and _served(root, warm_pid), _log(root)
    assert _without_timings(warm.stdout) == _without_timings(alone.stdout)
    assert "raw_files.events" in warm.stdout and "0 / 0 / 0" in warm.stdout
    assert warm_run != alone_run
    assert _run_record(url, warm_run) == _run_record(url, alone_run)
    runs, loads, audit = _run_record(url, warm_run)
    assert runs[0][2] == "succeeded" and loads == [("files", "events", 0, 0, 0, None)]
    assert [kind for kind, *_ in audit] == ["run.start", "run.end"]
    # The runner's log says what the run cost its worker: the call's CPU, not the imports made before it
    # (a spare's imports alone take more than a second of CPU).
    ended = re.search(rf"for pid {warm_pid} ended: {{'exit': 0, 'peak_rss_kib': \d+, 'cpu_seconds': ([\d.]+)}}",
                      _log(root))
    assert ended and 0 < float(ended.group(1)) < 1.0, _log(root)


def test_the_callers_environment_and_folder_reach_the_run(project, tmp_path):
    root, env, url = project
    # Another landing folder, named only in the caller's environment; the config is found in the caller's folder.
    other = tmp_path / "other-landing"
    other.mkdir()
    (other / "day2.csv").write_text("id,name\n10,x\n11,y\n")
    result, pid = _run(root, {**env, "HW_WARM_LANDING": str(other)})

    assert result.returncode == 0, result.stderr
    assert _served(root, pid), _log(root)
    assert sorted(query(url, "select id from raw_files.events where _file_name like %s", "%day2.csv")) == [(10,), (11,)]


def test_python_m_flows_daily_is_served_too(project):
    root, env, _ = project
    process = subprocess.Popen([sys.executable, "-m", "flows.daily"], cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=300)

    assert process.returncode == 0, stderr
    assert "Run succeeded" in stdout
    assert f"runs flows.daily for pid {process.pid} in worker" in _log(root)


def test_a_failing_run_exits_with_its_code_and_says_why_on_the_callers_stderr(project):
    root, env, _ = project
    without_landing = {name: value for name, value in env.items() if name != "HW_WARM_LANDING"}
    warm, pid = _run(root, without_landing)
    alone, _ = _run(root, {**without_landing, "HEADWATER_WARM_RUNNER": "off"})

    assert _served(root, pid), _log(root)
    assert warm.returncode == alone.returncode == 2
    assert "HW_WARM_LANDING" in warm.stderr
    assert warm.stderr == alone.stderr


def test_ctrl_c_of_the_caller_stops_the_run(project):
    root, env, url = project
    with source_lock(PostgresAddress.from_url(url), "files", 0, "test"):  # the run waits for it
        caller = _start(root, env)
        worker = _worker_of(root, caller.pid)
        time.sleep(2)  # into the run, waiting for the source
        caller.send_signal(signal.SIGINT)
        caller.communicate(timeout=60)

    assert caller.returncode == -signal.SIGINT  # as an in-process run interrupted by Ctrl-C
    assert _gone(worker, 10)
    ended = f"worker {worker} for pid {caller.pid} ended: {{'signal': {int(signal.SIGINT)}, 'peak_rss_kib': "
    assert ended in _log(root)


def _ready_spares(root: Path, after: str, running: int) -> list[str]:
    """Spare workers other than the ``running`` one that finished their imports, logged after ``after``."""
    log = _log(root)
    return [pid for pid in re.findall(r"spare worker (\d+) is ready", log[log.index(after):]) if pid != str(running)]


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_the_next_spare_imports_only_once_the_run_has_ended(project):
    """Its imports (about a core-second) would otherwise take a core from the run that just started."""
    root, env, url = project
    with source_lock(PostgresAddress.from_url(url), "files", 0, "test"):  # the run waits for it: it goes on
        caller = _start(root, env)
        worker = _worker_of(root, caller.pid)
        taken = f"for pid {caller.pid} in worker {worker}"
        time.sleep(3)  # a spare importing at once is ready in well under this
        assert _ready_spares(root, taken, worker) == [], _log(root)
    _, stderr = caller.communicate(timeout=120)
    assert caller.returncode == 0, stderr
    assert _wait_for(lambda: len(_ready_spares(root, taken, worker)) == 1, 60), _log(root)


def test_a_call_while_a_run_goes_on_is_served_at_once(project):
    root, env, url = project
    with source_lock(PostgresAddress.from_url(url), "files", 0, "test"):
        first = _start(root, env)
        _worker_of(root, first.pid)
        second = _start(root, env)  # its spare has not imported: the call starts its imports
        _worker_of(root, second.pid, timeout=30)
    for caller in (first, second):
        _, stderr = caller.communicate(timeout=120)
        assert caller.returncode == 0, stderr


def test_a_call_naming_another_prefect_server_than_the_last_call_reports_to_its_own(project):
    """The spare reads Prefect's settings ahead for a call like the last one; a call with another
    PREFECT_API_URL (which the runner accepts) must not run on the settings read for the last."""
    root, env, _ = project
    first, first_pid = _run(root, env)
    assert first.returncode == 0 and _served(root, first_pid), first.stderr
    unreachable = "http://127.0.0.1:9/api"
    elsewhere, elsewhere_pid = _run(root, {**env, "PREFECT_API_URL": unreachable})
    assert _served(root, elsewhere_pid), _log(root)
    assert elsewhere.returncode == 1
    assert elsewhere.stderr.startswith(f"error: Prefect's API at {unreachable}/ does not answer"), elsewhere.stderr
    # ...and the call after it, back to the project's server, does not run on the unreachable one's settings.
    again, again_pid = _run(root, env)
    assert again.returncode == 0 and _served(root, again_pid), again.stderr


def test_a_caller_killed_outright_takes_its_run_with_it(project):
    root, env, url = project
    with source_lock(PostgresAddress.from_url(url), "files", 0, "test"):
        caller = _start(root, env)
        worker = _worker_of(root, caller.pid)
        time.sleep(2)
        caller.kill()  # SIGKILL: nothing of the caller runs; its connection closes
        caller.communicate(timeout=60)
        assert _gone(worker, 20), _log(root)


def test_a_caller_whose_import_time_environment_differs_runs_in_process(project):
    root, env, _ = project
    result, pid = _run(root, {**env, "PREFECT_LOGGING_LEVEL": "WARNING"})

    assert result.returncode == 0, result.stderr
    assert not _served(root, pid)
    assert (f"declined the call of pid {pid}: environment read at import time differs (PREFECT_LOGGING_LEVEL)"
            in _log(root))


def test_without_a_runner_the_run_is_in_process(project, tmp_path):
    _, env, url = project
    root = tmp_path / "plain"
    (root / ".headwater").mkdir(parents=True)
    (root / "headwater.yaml").write_text(PROJECT)
    # A socket file nobody listens on (a runner killed outright leaves one): refused at once.
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(socket_path(root / ".headwater")))
    dead.close()
    result, _ = _run(root, env)

    assert result.returncode == 0, result.stderr
    assert "Run succeeded" in result.stdout
    assert not (root / ".headwater" / warm_runner.LOG_FILE).exists()


def test_a_stale_runner_is_bypassed_and_replaced(project):
    root, env, _ = project
    state = root / ".headwater"
    before = warm_runner.runner_pid(state)
    source = Path(warm_runner.__file__)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # as an edit would
    try:
        result, pid = _run(root, env)
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    assert result.returncode == 0, result.stderr
    assert "Run succeeded" in result.stdout
    assert not _served(root, pid)
    assert f"declined the call of pid {pid}: code or installed packages changed" in _log(root)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and warm_runner.runner_pid(state) in (None, before):
        time.sleep(0.5)
    assert warm_runner.runner_pid(state) not in (None, before), _log(root)

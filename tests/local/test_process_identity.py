"""A recorded pid is its process while that process runs, whatever the wall clock did since
(headwater.local.process_identity), and the stack and the warm runner use that to find and stop theirs."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest

from headwater.local import warm_runner
from headwater.local.process_identity import STARTED_KEY, is_recorded_process, start_mark


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_the_start_mark_is_the_kernels_start_in_ticks_and_names_one_process(sleeper):
    mark = start_mark(sleeper.pid)
    stat = open(f"/proc/{sleeper.pid}/stat").read()
    assert mark.endswith(":" + stat.rsplit(")", 1)[1].split()[19])
    assert start_mark(sleeper.pid) == mark != start_mark(psutil.Process().pid)
    assert is_recorded_process({"pid": sleeper.pid, STARTED_KEY: mark})
    # The same pid with another start is another process (a reused pid).
    other = mark.rsplit(":", 1)[0] + ":" + str(int(mark.rsplit(":", 1)[1]) + 1)
    assert not is_recorded_process({"pid": sleeper.pid, STARTED_KEY: other})
    sleeper.kill()
    sleeper.wait()
    assert not is_recorded_process({"pid": sleeper.pid, STARTED_KEY: mark})
    assert not is_recorded_process({}) and not is_recorded_process({"pid": "12", STARTED_KEY: mark})


def test_a_record_from_before_start_marks_is_compared_by_create_time(sleeper):
    created = psutil.Process(sleeper.pid).create_time()
    assert is_recorded_process({"pid": sleeper.pid, "create_time": created})
    assert not is_recorded_process({"pid": sleeper.pid, "create_time": created - 30})


def test_a_stepped_clock_does_not_hide_the_stacks_processes(tmp_path, sleeper):
    """A record whose create_time the clock moved 11 s (seen on this kind of machine) still finds its process,
    so `headwater down` stops the runner instead of leaving it running."""
    created = psutil.Process(sleeper.pid).create_time()
    record = {"pid": sleeper.pid, STARTED_KEY: start_mark(sleeper.pid), "create_time": created - 11, "ready": True}
    assert is_recorded_process(record)  # what the stack asks of its server's record

    (tmp_path / warm_runner.RECORD_FILE).write_text(json.dumps(record))
    assert warm_runner.stop_runner(tmp_path)
    deadline = time.monotonic() + 10
    while sleeper.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sleeper.returncode is not None  # terminated
    assert not (tmp_path / warm_runner.RECORD_FILE).exists()

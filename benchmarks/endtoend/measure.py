"""One whole shell command timed from spawn to exit, with the peak RSS of its largest process and the CPU
seconds of its whole process tree."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TIME = "/usr/bin/time"  # GNU time (Debian package `time`)


@dataclass
class Timing:
    seconds: float
    peak_rss_mb: float
    returncode: int
    log: Path
    cpu_seconds: float = 0.0  # user and system time of the command's processes, children included


def run_command(command: str, env: dict, cwd: Path, log: Path, timeout: float) -> Timing:
    """``command`` through bash; stdout and stderr to ``log``. A command past ``timeout`` is killed (code -9).

    GNU time reports the largest single process of the command's tree (a pipeline's biggest stage) and the
    tree's CPU time. It, not this process, forks the shell: a child forked from this Python would start with
    Python's own RSS.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    usage_file = log.with_suffix(".usage")
    with open(log, "wb") as out:
        started = time.perf_counter()
        timed = [TIME, "-f", "%M %U %S", "-o", str(usage_file), "bash", "-o", "pipefail", "-c", command]
        process = subprocess.Popen(timed, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
        timer.start()
        try:
            returncode = process.wait()
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
    kib, cpu = _usage(usage_file)
    return Timing(seconds, kib / 1024, returncode, log, cpu)


def _usage(usage_file: Path) -> tuple[float, float]:
    """(peak RSS KiB, CPU seconds) from GNU time's last line (a "Command exited with non-zero status" line
    may come before it); zeros when it wrote none (a killed command)."""
    try:
        lines = usage_file.read_text().splitlines()
    except OSError:
        return 0.0, 0.0
    try:
        kib, user, system = lines[-1].split()
        return float(kib), float(user) + float(system)
    except (IndexError, ValueError):
        return 0.0, 0.0


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Most telling first: the cause (a download refused, a missing feature) before the generic "failed".
CAUSES = ("unable to reach", "no such host", "not supported", "unsupported", "could not", "cannot")
ERRORS = ("error", "exception", "fatal", "failed")


def log_error(log: Path) -> str:
    """The line of the log that best says why the command failed, else its last line."""
    lines = [ANSI.sub("", line).strip() for line in log.read_text(errors="replace").splitlines()]
    lines = [line for line in lines if line]
    for words in (CAUSES, ERRORS):
        for line in lines:
            if any(word in line.lower() for word in words):
                return line[:240]
    return (lines[-1] if lines else "(no output)")[:240]

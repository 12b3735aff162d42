"""Whether a recorded pid is still the process that was recorded, whatever the wall clock did since.

A pid alone can be reused by another process; a pid and its start cannot. psutil's ``create_time`` is
the boot time plus the process's start in ticks since boot, and Linux derives the boot time from the
wall clock: when the clock is stepped (NTP correcting a virtual machine's clock, a machine resumed), the
``create_time`` of every running process moves with it. Compared within a second, the stack's own
Prefect server and warm runner then looked like strangers after an 11 s step: `headwater down` left them
running and the next command started a second server. On Linux the start is therefore compared in ticks
since boot (``/proc/<pid>/stat``), with the boot's id, which no clock change moves; elsewhere
``create_time`` is all there is.
"""

from __future__ import annotations

from pathlib import Path

import psutil

# Key of the start mark in the stack's and the runner's records.
STARTED_KEY = "started"
# What records written before the start mark held: psutil's create_time, compared within a second.
LEGACY_KEY = "create_time"


def start_mark(pid: int) -> str:
    """The start of process ``pid``, in a form that compares equal for that process and no other."""
    ticks = _start_ticks(pid)
    if ticks is not None:
        return f"linux:{_boot_id()}:{ticks}"
    return f"time:{psutil.Process(pid).create_time():.2f}"


def is_recorded_process(record: dict) -> bool:
    """The process of ``record`` (its ``pid`` and start mark) is still running, and not a zombie."""
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if STARTED_KEY in record:
            same = start_mark(pid) == record[STARTED_KEY]
        else:  # a record from before start marks
            same = abs(process.create_time() - float(record.get(LEGACY_KEY, 0))) < 1
        return same and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied, OSError, TypeError, ValueError):
        return False


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            raise psutil.NoSuchProcess(pid) from None  # Linux, and the process is gone
        return None  # no procfs: not Linux
    # Field 2 is the command in parentheses, which may itself hold spaces and parentheses; field 22 is
    # the start time, the 20th field after it.
    return int(stat.rsplit(")", 1)[1].split()[19])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""

"""CPU seconds spent on a command's behalf outside its own process tree: by the database servers it reads
and writes, and by a tool's long-running helpers (Headwater's Prefect server).

On a 2-core machine the servers' share decides much of a load's time: a COPY that the server parses as
text costs the server's core, a load that the client encodes costs the client's. The suite reads these
counters before and after each command and reports the difference beside the wall time.
"""

from __future__ import annotations

import time

import psutil

DATABASE_SERVERS = ("postgres", "mariadbd", "mysqld")


def _own_and_reaped(process: psutil.Process) -> float:
    """CPU of ``process`` and of its children that have ended (the kernel adds them when they are reaped):
    a PostgreSQL backend's time lands on its postmaster when the connection closes."""
    times = process.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def _alive(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def database_seconds() -> float:
    """CPU seconds used so far by the database servers' processes (ended backends included)."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] not in DATABASE_SERVERS:
                continue
            parent = process.parent()
            if parent is not None and parent.name() in DATABASE_SERVERS:
                total += _alive(process)  # a live backend: its time reaches the postmaster only when it ends
            else:
                total += _own_and_reaped(process)
        except psutil.Error:  # gone between listing and reading: its time is on its parent now
            continue
    return total


def settled_database_seconds(step: float = 0.1, limit: float = 2.0) -> float:
    """``database_seconds`` once it stops moving: read right after a command, a backend that has exited but
    not been reaped yet is on neither side of the count, and its seconds would be missed."""
    deadline = time.monotonic() + limit
    last = database_seconds()
    while time.monotonic() < deadline:
        time.sleep(step)
        now = database_seconds()
        if now - last < 0.01:
            return now
        last = now
    return last


def prefect_server_seconds() -> float:
    """CPU seconds used so far by running Prefect servers (`prefect server start`)."""
    total = 0.0
    for process in psutil.process_iter(["cmdline"]):
        try:
            command = " ".join(process.info["cmdline"] or ())
            if "prefect" in command and "server start" in command:
                total += _own_and_reaped(process)
        except psutil.Error:
            continue
    return total

"""SIGKILL a source's loads at random points, again and again, checking after each kill that a clean load leaves
raw exactly as the source (test harness of the streaming connectors).

Each round changes the source, forks a child of the test process that loads the source over and over (forked,
so each round costs no interpreter start and the kill lands inside a load, not in imports), kills it after a
random delay, and runs one clean load in the test process; the caller's check then compares source and raw.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path

# A child whose load fails writes why here and exits with this code: the parent reports it.
FAILED = 3


def _load_until_killed(load: Callable[[bool], None], refresh: bool, report: str) -> None:
    try:
        load(refresh)
        while True:
            load(False)
    except BaseException:  # noqa: B036 - whatever ends a load is the report
        Path(report).write_text(traceback.format_exc())
        os._exit(FAILED)


def kill_repeatedly(load: Callable[[bool], None], change: Callable[[int], None], check: Callable[[int], None],
                    kills: int, seed: int, workdir: Path, refresh_rounds: tuple[int, ...] = (),
                    delay: tuple[float, float] = (0.05, 1.2), clean: Callable[[], None] | None = None) -> int:
    """``kills`` rounds of: ``change(round)``, a child running ``load(refresh)`` then ``load(False)`` until killed
    after a random delay, a clean load here (``clean()``, else ``load(False)``), ``check(round)``. Returns the
    rounds whose child was still loading when killed."""
    rng = random.Random(seed)
    context = multiprocessing.get_context("fork")
    killed = 0
    for number in range(1, kills + 1):
        change(number)
        report = workdir / f"child-{number}.txt"
        child = context.Process(target=_load_until_killed, args=(load, number in refresh_rounds, str(report)))
        child.start()
        time.sleep(rng.uniform(*delay))
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
            killed += 1
        child.join()
        assert child.exitcode != FAILED, f"round {number}: the child's load failed:\n{report.read_text()}"
        clean() if clean is not None else load(False)
        check(number)
    return killed

"""Run one measurement in a child process of its own: fresh dlt state, and a peak RSS that is that case's alone.

Children fork from a server that has already imported dlt and Headwater, so a case pays neither the
interpreter start nor the imports; ``benchmarks.work.startup`` measures those separately.
"""

from __future__ import annotations

import cProfile
import io
import multiprocessing
import pstats
import resource
import traceback
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

PRELOAD = ["benchmarks.work"]
PROFILE_LINES = 20


def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _measured(function: Callable[..., dict], kwargs: dict, profile: bool) -> dict:
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    try:
        result = function(**kwargs)
    except Exception as error:
        # Not every exception pickles back to the parent (ConfigError does not): send its text instead.
        raise RuntimeError(f"{type(error).__name__}: {error}\n{traceback.format_exc()}") from None
    if profiler:
        profiler.disable()
        text = io.StringIO()
        # Own time: where the CPU of the calling thread went (cumulative time only lists dlt's wrappers).
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(PROFILE_LINES)
        result["profile"] = _trim_profile(text.getvalue())
    # ru_maxrss is in KiB on Linux: the child's high-water mark, imports included.
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _trim_profile(text: str) -> str:
    # pstats opens with a header naming the file it sorted; keep the table only.
    lines = text.strip().splitlines()
    start = next((index for index, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
    return "\n".join(line.rstrip() for line in lines[start:])


def run_isolated(function: Callable[..., dict], profile: bool = False, **kwargs: Any) -> dict:
    """``function(**kwargs)`` in a new child; its result dict gains ``peak_rss_mb`` (and ``profile``)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=_context()) as pool:
        return pool.submit(_measured, function, kwargs, profile).result()

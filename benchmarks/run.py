"""Measure Headwater against raw COPY and plain dlt, and write the results as Markdown.

    python -m benchmarks.run                              # 1M and 5M rows, writes benchmarks/results.md
    python -m benchmarks.run --sizes 1000000              # one size only
    python -m benchmarks.run --quick                      # tiny sizes, every case, in well under a minute
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cases import Benchmark, Settings
from benchmarks.databases import POSTGRES_SERVER
from benchmarks.machine import describe
from benchmarks.report import Report, write

DEFAULT_SIZES = [1_000_000, 5_000_000]
DEFAULT_OUT = Path(__file__).resolve().parent / "results.md"
API_RECORDS = 200_000
QUICK_SIZES, QUICK_API_RECORDS = [2_000, 10_000], 2_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="one size: rows per file (same as --sizes ROWS)")
    parser.add_argument("--sizes", help="comma-separated sizes, e.g. 1000000,5000000 (default)")
    parser.add_argument("--api-records", type=int, help=f"records served by the local API (default {API_RECORDS:,})")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes for CI; writes to a temporary file unless --out is given")
    parser.add_argument("--out", type=Path, help=f"results file (default {DEFAULT_OUT})")
    parser.add_argument("--repeats", type=int, help="runs of each full load and COPY; the median is reported "
                                                  "(default 3, 1 with --quick)")
    return parser.parse_args(argv)


def sizes_of(args: argparse.Namespace) -> list[int]:
    if args.sizes:
        return sorted({int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()})
    if args.rows:
        return [args.rows]
    return QUICK_SIZES if args.quick else DEFAULT_SIZES


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sizes_of(args)
    api_records = args.api_records or (QUICK_API_RECORDS if args.quick else API_RECORDS)
    with tempfile.TemporaryDirectory(prefix="headwater-bench-") as scratch:
        out = args.out or (Path(scratch).parent / f"headwater-bench-{int(time.time())}.md" if args.quick
                           else DEFAULT_OUT)
        report = Report(
            title="Headwater benchmarks" + (" (quick: tiny sizes, numbers are not meaningful)" if args.quick else ""),
            command=shlex.join(["python", "-m", "benchmarks.run", *(sys.argv[1:] if argv is None else argv)]),
            sizes=sizes,
            machine=describe(f"{POSTGRES_SERVER}/postgres"),
        )
        say(f"Headwater benchmarks: sizes {', '.join(f'{size:,}' for size in sizes)}, "
            f"{api_records:,} API records; results to {out}")
        started = time.perf_counter()
        repeats = args.repeats or (1 if args.quick else 3)
        Benchmark(Settings(sizes=sizes, api_records=api_records, work=Path(scratch), profile=not args.quick,
                           flow_warmup=not args.quick, repeats=repeats), report, say).run()
        report.total_seconds = time.perf_counter() - started
        # Other work on the machine (a CI run, say) slows every case; the load averages show whether there was any.
        report.machine["Load average at end (1, 5, 15 min)"] = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        report.notes += [
            "Every case runs in a child process forked from one that has imported dlt and Headwater, so seconds "
            "exclude interpreter start and imports (the fixed start-up row measures them). Each case starts after "
            "the server's autovacuum workers are idle and after a CHECKPOINT, so neither the vacuum of a table an "
            "earlier case loaded nor its WAL runs in the middle of it. Raw COPY and every "
            f"full Headwater load ran {repeats} time(s), each from scratch; the table shows the median run.",
            "Raw COPY hands the server a CSV it parses in one pass. Headwater reads the same file on the client "
            "(Arrow's CSV reader, one block ahead in a second thread), types it and runs the three steps (dlt's "
            "extract step); from 200,000 rows on, copy ahead sends the batches into binary COPYs encoded by pgpq, "
            "one connection per core, while it reads, and writes the Parquet load file only until then; dlt's load "
            "step ends and commits those COPYs (a smaller table's load file is streamed to the server after "
            "extract). The per-target details below give each step's share. Parquet landing files skip the CSV "
            "parse.",
            "The API case serves flat JSON records (no nested values): the rest_api connector parses each page "
            "once (orjson) and hands dlt Arrow tables of 10,000 records, fetching the next pages in a second "
            "thread, so dlt's extract writes Parquet and its normalize step only moves the file (pages with "
            "nested values would stay rows, normalized one by one). The httpx row is the ceiling of fetching "
            "and parsing the pages alone (standard json).",
        ]
        write(report, out)
    missed = [target.name for target in report.targets if not target.met]
    say(f"Finished in {report.total_seconds:.0f} s; {len(report.targets) - len(missed)} of {len(report.targets)} "
        f"targets met. Results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A large PostgreSQL table's first load into Postgres: Headwater passing it through in parallel streams vs one
raw binary COPY pipe of the same rows, with single-stream Headwater for reference.

    python -m benchmarks.parallel_full_load                       # 10,000,000 rows, its section of results.md
    python -m benchmarks.parallel_full_load --rows 20000 --out /tmp/results.md

The source table is generated on the benchmark's PostgreSQL server (``HEADWATER_BENCH_POSTGRES``) in a database
of its own, its cursor column ``updated_at`` indexed as an incremental source's should be, vacuumed and frozen
(no reader then sets hint bits); each contender copies it into a new database
on the same server, checked against the source (rows, distinct ids, sums of the numeric columns), then dropped.

- **raw pipe**: ``psql -c "COPY (SELECT ...) TO STDOUT (FORMAT binary)" | psql -c "COPY events FROM STDIN (FORMAT
  binary)"``, one stream, into a table created beforehand: the floor a single COPY sets.
- **Headwater, 1 stream**: ``load_source`` of a sql_database source (incremental on ``updated_at``, append) with
  ``HEADWATER_PARALLEL_STREAMS=1``, the default on a 2-core machine (connectors.sql_database.parallel_ranges).
- **Headwater, 2 streams**: the same, the table passed through in 2 parallel streams.

Headwater's seconds are ``load_source``'s (in a process of its own, after its imports); the pipe's are the
pipeline's wall time. Contenders run in a rotated order each round, after the server's autovacuum workers are
idle and a CHECKPOINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks.data import POSTGRES_DDL
from benchmarks.databases import POSTGRES_SERVER, checkpoint, create_postgres_database, drop_postgres_database
from benchmarks.endtoend.cpu import database_seconds, settled_database_seconds
from benchmarks.machine import describe
from benchmarks.sections import markers, replace_section

DEFAULT_OUT = Path(__file__).resolve().parent / "results.md"
START, END = markers("parallel-full-load")
# The benchmark's events columns, computed from the id on the server (10 columns, the cursor one second per id).
FILL_SQL = """
INSERT INTO events
SELECT i, 1 + i * 7919 % 100000, 1 + i % 50, (i * 31 % 50000) / 100.0, (i % 300) / 1000.0,
       '  Customer ' || i * 13 % 1000 || ' ', 'User.' || i * 17 % 1000 || '@Example.COM',
       timestamptz '2026-01-01 00:00:00+00' + (i * 7 % 31536000) * interval '1 second',
       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 second', i % 10 < 8
FROM generate_series(1::bigint, {rows}) i"""
CHECK_SQL = ("SELECT count(*), count(DISTINCT id), sum(quantity), sum(customer_id), round(sum(price)::numeric, 2), "
             "round(sum(discount)::numeric, 3) FROM {table}")
SELECT_ALL = ("SELECT id, customer_id, quantity, price, discount, name, email, created_at, updated_at, is_active "
              "FROM events")
CONTENDERS = {
    "raw pipe: psql COPY TO STDOUT into psql COPY FROM STDIN, binary, 1 stream": None,
    "Headwater, 1 stream": {"HEADWATER_PARALLEL_STREAMS": "1"},
    "Headwater, 2 streams": {"HEADWATER_PARALLEL_STREAMS": "2"},
}
PLAN = re.compile(r"passed through to the destination in (\d+) stream")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parallel_full_load",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows of the source table (default 10,000,000)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each contender; the median is reported")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"results file (default {DEFAULT_OUT})")
    parser.add_argument("--load", nargs=2, metavar=("CONFIG", "DESTINATION"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def fill_source(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(POSTGRES_DDL.format(name="events"))
        connection.execute(FILL_SQL.format(rows=rows))
        connection.execute("CREATE INDEX ON events (updated_at)")
        connection.execute("VACUUM (FREEZE, ANALYZE) events")


def raw_pipe(source_url: str, destination_url: str) -> dict:
    with psycopg.connect(destination_url, autocommit=True) as connection:
        connection.execute(POSTGRES_DDL.format(name="events"))
    out = f"COPY ({SELECT_ALL}) TO STDOUT (FORMAT binary)"
    pipe = (f"set -o pipefail; psql -X -q -v ON_ERROR_STOP=1 -d '{source_url}' -c '{out}' | "
            f"psql -X -q -v ON_ERROR_STOP=1 -d '{destination_url}' -c 'COPY events FROM STDIN (FORMAT binary)'")
    before = _children_cpu()
    started = time.perf_counter()
    subprocess.run(["bash", "-c", pipe], check=True)
    return {"seconds": time.perf_counter() - started, "client_cpu": _children_cpu() - before, "table": "events",
            "streams": 1}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def headwater(source_url: str, destination_url: str, settings: dict[str, str], folder: Path) -> dict:
    from benchmarks.projects import SOURCE_URL_SECRET, write_project

    source = {"db": {"connector": "sql_database",
                     "settings": {"credentials": f"${{{SOURCE_URL_SECRET}}}", "table_names": ["events"]},
                     "tables": {"events": {"cursor": "updated_at", "write_disposition": "append"}}}}
    config = write_project(folder, source, {SOURCE_URL_SECRET: source_url.replace("postgresql://",
                                                                                  "postgresql+psycopg://")})
    child = subprocess.run([sys.executable, "-m", "benchmarks.parallel_full_load", "--load", str(config),
                            destination_url], env={**os.environ, **settings}, capture_output=True, text=True)
    if child.returncode != 0:
        raise RuntimeError(f"Headwater's load failed:\n{child.stderr[-3000:]}")
    return {**json.loads(child.stdout.strip().splitlines()[-1]), "table": "raw_db.events"}


def load_once(config: str, destination_url: str) -> None:
    """The child of ``headwater``: one load, its seconds and the streams it used printed as JSON."""
    from headwater.load.pipeline import load_source
    from headwater.plugins.manager import connector_registry
    from headwater.postgres.address import PostgresAddress
    from headwater.project.config import load_project

    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("connectors.sql_database.pass_through")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    registry = connector_registry()
    project = load_project(Path(config), registry)
    configured = project.source("db")
    started, cpu = time.perf_counter(), os.times()
    loaded = load_source(project, configured, registry.get(configured.connector),
                         PostgresAddress.from_url(destination_url))
    seconds, ended = time.perf_counter() - started, os.times()
    if not loaded.ok:
        raise SystemExit(f"the load failed: {loaded.error}")
    streams = [int(found.group(1)) for found in map(PLAN.search, messages) if found]
    client_cpu = ended.user + ended.system - cpu.user - cpu.system  # its threads included
    print(json.dumps({"seconds": seconds, "client_cpu": client_cpu, "streams": streams[0] if streams else 0}))


def check(url: str, table: str) -> tuple:
    with psycopg.connect(url) as connection:
        return connection.execute(CHECK_SQL.format(table=table)).fetchone()


def measure(rows: int, rounds: int) -> dict[str, list[dict]]:
    """Every contender ``rounds`` times, in rotated order; name -> its runs."""
    runs: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
    source_url = create_postgres_database("pfl_src")
    try:
        print(f"filling the source table: {rows:,} rows", flush=True)
        fill_source(source_url, rows)
        expected = check(source_url, "events")
        names = list(CONTENDERS)
        with tempfile.TemporaryDirectory(prefix="headwater-pfl-") as scratch:
            for round_ in range(rounds):
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    destination_url = create_postgres_database("pfl_dst")
                    try:
                        checkpoint()
                        settings = CONTENDERS[name]
                        folder = Path(scratch) / f"round-{round_}-contender-{names.index(name)}"
                        database_cpu = database_seconds()
                        run = (raw_pipe(source_url, destination_url) if settings is None else
                               headwater(source_url, destination_url, settings, folder))
                        run["database_cpu"] = settled_database_seconds() - database_cpu
                        run["verified"] = check(destination_url, run["table"]) == expected
                        runs[name].append(run)
                        print(f"{name}: {run['seconds']:.2f} s, CPU s {run['client_cpu']:.2f} + "
                              f"{run['database_cpu']:.2f}, {run['streams']} stream(s), verified {run['verified']}",
                              flush=True)
                    finally:
                        drop_postgres_database(destination_url)
    finally:
        drop_postgres_database(source_url)
    return runs


def render(rows: int, rounds: int, runs: dict[str, list[dict]], machine: dict[str, str], load_at_end: str) -> str:
    def median(found: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in found)

    medians = {name: median(found, "seconds") for name, found in runs.items()}
    pipe = medians[next(iter(CONTENDERS))]
    lines = [START, f"## Parallel full load: one PostgreSQL table, {rows:,} rows", "",
             f"Command: `python -m benchmarks.parallel_full_load --rows {rows} --rounds {rounds}` (median of "
             f"{rounds} round(s), in rotated order)", "",
             "A first load of one table of the benchmark's 10 columns, its cursor column `updated_at` indexed, source"
             " and destination databases on the same server. Ratio to the raw pipe is the pipe's seconds over the "
             "contender's (above 1: faster than the pipe). Headwater's seconds are `load_source`'s, after its "
             "imports; the pipe's are its wall time. CPU s (medians): the client's (Headwater's process with its "
             "threads; bash and both psql for the pipe) and the PostgreSQL server's, whose count includes anything "
             "else the shared server ran meanwhile. Streams: the COPY streams the table was passed through in. See "
             "`benchmarks/parallel_full_load.py`.",
             "",
             "| contender | median s | runs s | rows/s | ratio to raw pipe | CPU s: client + database | streams | "
             "verified |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for name, found in runs.items():
        verified = sum(run["verified"] for run in found)
        each = ", ".join(f"{run['seconds']:.2f}" for run in found)
        lines.append(f"| {name} | {medians[name]:.2f} | {each} | {rows / medians[name]:,.0f} | "
                     f"{pipe / medians[name]:.2f} | {median(found, 'client_cpu'):.2f} + "
                     f"{median(found, 'database_cpu'):.2f} | {found[0]['streams']} | "
                     f"{'yes' if verified == len(found) else 'no'} ({verified}/{len(found)}) |")
    lines += ["", "Machine: " + "; ".join(f"{key} {machine[key]}" for key in (
        "Date", "CPU", "Cores", "RAM", "PostgreSQL", "Load average at start (1, 5, 15 min)"))
        + f"; load average at end {load_at_end}", END]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load:
        load_once(*args.load)
        return 0
    machine = describe(f"{POSTGRES_SERVER}/postgres")
    runs = measure(args.rows, args.rounds)
    load_at_end = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    replace_section(args.out, "parallel-full-load", render(args.rows, args.rounds, runs, machine, load_at_end))
    print(f"results: {args.out}")
    return 0 if all(run["verified"] for found in runs.values() for run in found) else 1


if __name__ == "__main__":
    sys.exit(main())

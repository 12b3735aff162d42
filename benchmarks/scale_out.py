"""Scale-out figures: a run's sources loaded 1, 2 and 4 at a time, and what an incremental run costs as the table grows.

    python -m benchmarks.scale_out                   # 4 sources x 500,000 rows; incremental on 1M and 10M rows
    python -m benchmarks.scale_out --quick           # tiny sizes, in well under a minute
    python -m benchmarks.scale_out --out FILE        # the results file (default benchmarks/results.md)

Every figure is a whole `python -m flows.daily` on the project's Prefect server (started once, as after
`headwater up`), from spawn to exit, into a fresh destination database; each load is checked row for row
against the source by count and checksum afterwards.

**Parallel sources.** Four PostgreSQL tables of the same rows, one source each, loaded with
`run.max_parallel_sources` 1, 2 and 4: the same 4 x N rows each time. Then four sources of one local API
that answers each page after 100 ms, as a remote API does: loads that wait rather than compute.

**Incremental cost.** One source table of 1M rows and one of 10M, each loaded once; then the same number
of new rows is added to each and one incremental run times taking them. The two times should be alike:
an incremental run reads from its cursor on, not the table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import yaml

from benchmarks.databases import POSTGRES_SERVER, checkpoint, create_postgres_database, drop_postgres_database
from benchmarks.machine import describe
from benchmarks.sections import marked, replace_section

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results.md"
API_RECORDS, API_LATENCY = 50_000, 0.1  # 50 pages a source, each 100 ms away, as a remote API
SOURCE_SECRET = "BENCH_SOURCE_URL"
COLUMNS = "id, kind, amount, note, updated_at"
# The cursor column is indexed, as the cursor of an incremental source should be: the source then finds the new
# rows without reading the table.
TABLE_DDL = ("create table {name} (id bigint primary key, kind text, amount numeric(12, 2), note text, "
             "updated_at timestamptz not null); create index on {name} (updated_at)")
ROWS_SQL = ("insert into {name} select i, 'kind-' || (i % 17), (i % 100000) / 100.0, md5(i::text), "
            "timestamptz '2024-01-01' + i * interval '1 second' from generate_series({first}, {last}) i")


def say(line: str) -> None:
    print(line, flush=True)


def execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


def fingerprint(url: str, relation: str) -> tuple:
    with psycopg.connect(url) as connection:
        return connection.execute(f"select count(*), md5(string_agg(({COLUMNS})::text, ',' order by id)) "
                                  f"from {relation}").fetchone()


def write_project(folder: Path, tables: list[str], parallel: int) -> None:
    sources = {f"s_{table}": {"connector": "sql_database",
                              "settings": {"credentials": f"${{{SOURCE_SECRET}}}", "table_names": [table]},
                              "tables": {table: {"cursor": "updated_at"}}} for table in tables}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "headwater.yaml").write_text(yaml.safe_dump(
        {"project": "scale", "sources": sources, "run": {"max_parallel_sources": parallel}}, sort_keys=False))


def run_flow(project: Path, env: dict) -> float:
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "flows.daily"], cwd=project, env=env, capture_output=True,
                         text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"flows.daily exited {run.returncode}: {(run.stderr or run.stdout)[-3000:]}")
    return seconds


def flow_env(source_url: str, target_url: str) -> dict:
    env = {name: value for name, value in os.environ.items() if name != "HEADWATER_CONFIG"}
    env.update({SOURCE_SECRET: source_url, "HEADWATER_DATABASE_URL": target_url,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))})
    return env


def parallel_sources(work: Path, source_url: str, rows: int, counts: list[int]) -> list[dict]:
    tables = [f"events_{index}" for index in range(1, 5)]
    for table in tables:
        execute(source_url, TABLE_DDL.format(name=table) + ";" + ROWS_SQL.format(name=table, first=1, last=rows))
    execute(source_url, "vacuum analyze")
    results = []
    for parallel in counts:
        project = work / "parallel"
        write_project(project, tables, parallel)
        target = create_postgres_database("scale")
        try:
            checkpoint()
            seconds = run_flow(project, flow_env(source_url, target))
            for table in tables:
                assert fingerprint(target, f"raw_s_{table}.{table}") == fingerprint(source_url, table), table
        finally:
            drop_postgres_database(target)
        results.append({"parallel": parallel, "rows": rows * len(tables), "seconds": seconds})
        say(f"  {parallel} at a time: {seconds:.2f} s, {rows * len(tables) / seconds:,.0f} rows/s")
    return results


def parallel_api_sources(work: Path, records: int, latency: float, counts: list[int]) -> list[dict]:
    """Four sources of one local API that answers each page after ``latency`` seconds, as a remote API does."""
    from benchmarks.api_server import ApiServer
    from benchmarks.projects import api_source

    results = []
    with ApiServer(records, latency=latency) as api:
        for parallel in counts:
            project = work / "parallel_api"
            sources = {f"api_{index}": api_source(api.url)["api"] for index in range(1, 5)}
            project.mkdir(parents=True, exist_ok=True)
            (project / "headwater.yaml").write_text(yaml.safe_dump(
                {"project": "scale", "sources": sources, "run": {"max_parallel_sources": parallel}}, sort_keys=False))
            target = create_postgres_database("scale")
            try:
                checkpoint()
                seconds = run_flow(project, flow_env("", target))
                for name in sources:
                    with psycopg.connect(target) as connection:
                        landed = connection.execute(f"select count(*), count(distinct id) from raw_{name}.events")
                        assert landed.fetchone() == (records, records), name
            finally:
                drop_postgres_database(target)
            results.append({"parallel": parallel, "rows": records * len(sources), "seconds": seconds})
            say(f"  {parallel} at a time: {seconds:.2f} s, {records * len(sources) / seconds:,.0f} rows/s")
    return results


def incremental_cost(work: Path, source_url: str, sizes: list[int], new_rows: int) -> list[dict]:
    """Per table size: its first load, then ``new_rows`` new rows; on the largest, ten times as many next."""
    results = []
    for size in sizes:
        table = f"grown_{size}"
        execute(source_url, TABLE_DDL.format(name=table) + ";" + ROWS_SQL.format(name=table, first=1, last=size))
        execute(source_url, f"vacuum analyze {table}")
        project = work / f"incremental_{size}"
        write_project(project, [table], 1)
        target = create_postgres_database("scale")
        try:
            env = flow_env(source_url, target)
            first = run_flow(project, env)
            last = size
            for added in [new_rows] + ([new_rows * 10] if size == sizes[-1] else []):
                execute(source_url, ROWS_SQL.format(name=table, first=last + 1, last=last + added))
                last += added
                checkpoint()
                seconds = run_flow(project, env)
                assert fingerprint(target, f"raw_s_{table}.{table}") == fingerprint(source_url, table), table
                results.append({"table_rows": size, "new_rows": added, "first_load": first, "seconds": seconds})
                say(f"  {size:,}-row table: first load {first:.1f} s; {added:,} new rows in {seconds:.2f} s")
        finally:
            drop_postgres_database(target)
    return results


def _parallel_table(title: str, results: list[dict]) -> list[str]:
    one = results[0]["seconds"]
    lines = [title, "", "| at a time | seconds | rows/s | vs one at a time |", "|---|---|---|---|"]
    for result in results:
        lines.append(f"| {result['parallel']} | {result['seconds']:.2f} | "
                     f"{result['rows'] / result['seconds']:,.0f} | {one / result['seconds']:.2f}x |")
    return lines + [""]


def render(parallel: list[dict], api: list[dict], incremental: list[dict], per_source: int, records: int,
           latency: float) -> str:
    lines = ["## Scale out: parallel sources, incremental cost as the table grows", "",
             "`python -m benchmarks.scale_out`; each figure one whole `python -m flows.daily` on the project's "
             "Prefect server, spawn to exit, into a fresh database, every table checked against its source "
             "(count and checksum of every column; for the API, rows and distinct keys).", ""]
    lines += _parallel_table(f"### Four PostgreSQL sources of {per_source:,} rows each, `run.max_parallel_sources`",
                             parallel)
    lines += ["Source and destination share this machine's two cores, and one such load already keeps both busy "
              "(its source's COPY out, its COPY streams in): more at once cannot go faster here.", ""]
    lines += _parallel_table(f"### Four API sources of {records:,} records each, every page of 1,000 answered after "
                             f"{latency * 1000:.0f} ms, `run.max_parallel_sources`", api)
    lines += ["### An incremental run as the table grows (the same new rows)", "",
              "| table rows | new rows | first load, s | incremental run, s |", "|---|---|---|---|"]
    for result in incremental:
        lines.append(f"| {result['table_rows']:,} | {result['new_rows']:,} | {result['first_load']:.1f} | "
                     f"{result['seconds']:.2f} |")
    small, large, more = incremental[0], incremental[-2], incremental[-1]
    larger = (f"The same new rows from a {large['table_rows'] // small['table_rows']}x larger table took "
              f"{large['seconds'] / small['seconds']:.2f}x the time; " if large is not small else "")
    lines += ["", f"{larger}{more['new_rows'] // large['new_rows']}x the new rows from the "
                  f"{large['table_rows']:,}-row table, {more['seconds'] / large['seconds']:.2f}x. The source tables "
                  f"have an index on their cursor column.", "", "Machine:", ""]
    lines += [f"- {name}: {value}" for name, value in describe(POSTGRES_SERVER).items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_out", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500_000, help="rows per source table (default 500,000)")
    parser.add_argument("--sizes", default="1000000,10000000", help="table sizes of the incremental case")
    parser.add_argument("--new-rows", type=int, default=10_000, help="rows added before the timed incremental run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes; printed only, unless --out is given")
    parser.add_argument("--out", type=Path,
                        help="results file whose scale-out section is replaced (default benchmarks/results.md)")
    args = parser.parse_args(argv)
    rows, sizes, new_rows = args.rows, [int(size) for size in args.sizes.split(",")], args.new_rows
    records, counts = API_RECORDS, [1, 2, 4]
    if args.quick:  # every table and figure, from as few runs as make them
        rows, sizes, new_rows, records, counts = 2_000, [2_000], 100, 2_000, [1, 4]
    from headwater.local import stack

    source_url = create_postgres_database("scale_src")
    with tempfile.TemporaryDirectory(prefix="headwater-scale-") as scratch:
        work = Path(scratch)
        state = work / "parallel" / ".headwater"
        try:
            say("Parallel sources")
            state.mkdir(parents=True)
            # One Prefect server for every run, as after `headwater up`; each run's project folder is told of it.
            os.environ["PREFECT_API_URL"] = stack.ensure_prefect_server(state)
            parallel = parallel_sources(work, source_url, rows, counts)
            say("Parallel API sources")
            api = parallel_api_sources(work, records, API_LATENCY, counts)
            say("Incremental cost")
            incremental = incremental_cost(work, source_url, sizes, new_rows)
        finally:
            stack.down(state)
            drop_postgres_database(source_url)
    markdown = render(parallel, api, incremental, rows, records, API_LATENCY)
    print(markdown)
    out = args.out or (None if args.quick else RESULTS)
    if out is not None:
        replace_section(out, "scale_out", marked("scale_out", markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Whole-command benchmark of Headwater against raw COPY, plain dlt, ingestr, Sling and Singer.

    python -m benchmarks.endtoend                         # 1M rows, 3 interleaved rounds, into benchmarks/results.md
    python -m benchmarks.endtoend --rows 200000 --api-rows 50000
    python -m benchmarks.endtoend --quick --out /tmp/e2e.md   # tiny sizes, one round: a smoke test
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from benchmarks.api_server import ApiServer
from benchmarks.databases import checkpoint
from benchmarks.endtoend import cpu
from benchmarks.endtoend import sources as source_data
from benchmarks.endtoend.contenders import WORKLOAD_TITLES, WORKLOADS, Contender, contenders
from benchmarks.endtoend.measure import log_error, run_command
from benchmarks.endtoend.report import Attempt, Outcome, Section, write
from benchmarks.endtoend.verify import compare, table_stats

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results.md"
QUICK_ROWS = 2_000
LEFT_OUT = "not run in this invocation (left out by --only)"
QUIET = {"RUNTIME__DLTHUB_TELEMETRY": "false", "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
         "SODA_CORE_TELEMETRY_ENABLED": "false"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.endtoend", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of every workload (default 1,000,000)")
    parser.add_argument("--api-rows", type=int, help="records the local API serves (default: --rows)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds; medians are reported (default 3)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, one round: a smoke test")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of " +
                        ", ".join(WORKLOADS))
    parser.add_argument("--only", help="comma-separated contender name prefixes to run (others are left out)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a command is killed")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (commands' logs) and say where")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results file; only its end-to-end "
                        "section is replaced")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.api_rows, args.rounds = QUICK_ROWS, args.api_rows or QUICK_ROWS, args.rounds or 1
    args.api_rows = min(args.api_rows or args.rows, args.rows)  # the API serves a prefix of the same rows
    args.rounds = args.rounds or 3
    return args


def say(line: str) -> None:
    print(line, flush=True)


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Runner:
    def __init__(self, sources: source_data.Sources, work: Path, timeout: float, api_rows: int):
        self.sources, self.work, self.timeout, self.api_rows = sources, work, timeout, api_rows
        self.expected_api = self._prefix_stats(api_rows)

    def _prefix_stats(self, rows: int) -> dict[str, str]:
        if rows == self.sources.rows:
            return self.sources.expected
        with psycopg.connect(self.sources.postgres_url, autocommit=True) as connection:
            connection.execute(f"CREATE OR REPLACE VIEW api_prefix AS SELECT * FROM events WHERE id < {rows}")
        return table_stats(self.sources.postgres_url, "public", "api_prefix")

    def _run(self, contender: Contender, command: str, log: Path):
        env = {**os.environ, **QUIET, **contender.env}
        return run_command(command, env, contender.cwd, log, self.timeout)

    def attempt(self, workload: str, contender: Contender, round_number: int) -> Attempt:
        """One timed run from a fresh target schema, verified against the source."""
        sources = self.sources
        logs = self.work / "logs" / workload
        slug = contender.name.split()[0].lower()
        drop_schema(sources.target_url, contender.schema)
        expected = self.expected_api if workload == "api" else sources.expected
        try:
            if workload == "incremental":
                source_data.reset_incremental(sources)
            if contender.prepare:
                contender.prepare()
            if contender.initial:
                first = self._run(contender, contender.initial, logs / f"{slug}-{round_number}-initial.log")
                if first.returncode == -9:
                    return Attempt(first.seconds, first.peak_rss_mb,
                                   f"first (untimed) load killed at the {self.timeout:.0f} s timeout")
                if first.returncode != 0:
                    return Attempt(first.seconds, first.peak_rss_mb,
                                   f"first load failed: {log_error(first.log)}")
            if workload == "incremental":
                expected = source_data.change_incremental(sources)
        except Exception as error:  # a preparation step of the contender failed: it is reported, not raised
            return Attempt(0.0, 0.0, f"preparation failed: {str(error).splitlines()[0] if str(error) else error!r}")
        checkpoint()
        databases, prefect = cpu.database_seconds(), cpu.prefect_server_seconds()
        timing = self._run(contender, contender.command, logs / f"{slug}-{round_number}.log")
        database_cpu = cpu.settled_database_seconds() - databases
        # Headwater's Prefect server works for its run (states, logs); for other commands it sits idle.
        tool_cpu = timing.cpu_seconds + cpu.prefect_server_seconds() - prefect
        if timing.returncode == -9:  # its log ends wherever it was; the timeout is the whole story
            return Attempt(timing.seconds, timing.peak_rss_mb, f"killed at the {self.timeout:.0f} s timeout",
                           timed_out=True)
        if timing.returncode != 0:
            return Attempt(timing.seconds, timing.peak_rss_mb,
                           f"failed, exit {timing.returncode}: {log_error(timing.log)}")
        helper_mb, helper_cpu = contender.helper_usage() if contender.helper_usage else (0.0, 0.0)
        wrong = compare(expected, sources.target_url, contender.schema, "events")
        # Verified, the landed rows go: left, their table's autovacuum would run during the next command.
        drop_schema(sources.target_url, contender.schema)
        return Attempt(timing.seconds, max(timing.peak_rss_mb, helper_mb), f"wrong: {wrong}" if wrong else "",
                       tool_cpu_s=tool_cpu + helper_cpu, database_cpu_s=database_cpu)


def select(all_contenders: list[Contender], only: str | None) -> list[Contender]:
    if not only:
        return all_contenders
    prefixes = [prefix.strip().lower() for prefix in only.split(",") if prefix.strip()]
    return [c for c in all_contenders if any(c.name.lower().startswith(prefix) for prefix in prefixes)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from headwater.local import stack

    section = Section(command=shlex.join(["python", "-m", "benchmarks.endtoend",
                                          *(sys.argv[1:] if argv is None else argv)]),
                      rows=args.rows, api_rows=args.api_rows, rounds=args.rounds, timeout=args.timeout,
                      load_start=load_average())
    started = time.perf_counter()
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    work = Path(tempfile.mkdtemp(prefix="headwater-e2e-"))
    if args.keep:
        say(f"Scratch folder (kept): {work}")
    try:
        say(f"End-to-end benchmark: {args.rows:,} rows, {args.rounds} round(s), workloads {', '.join(workloads)}")
        sources = source_data.create(args.rows, work / "data")
        state = work / "prefect-stack" / ".headwater"
        state.mkdir(parents=True)
        # The warm runner serves only callers whose import-time environment equals its own: it starts with the
        # environment every timed command gets.
        os.environ.update(QUIET)
        previous = os.environ.get("HEADWATER_DATABASE_URL")
        os.environ["HEADWATER_DATABASE_URL"] = sources.target_url  # the stack then starts Prefect only
        try:
            stack.up(state, port=free_port())  # other Prefect servers may hold the default port
            prefect_url = stack.running_api_url(state)
            runner = Runner(sources, work, args.timeout, args.api_rows)
            with ApiServer(args.api_rows) as api:
                for workload in workloads:
                    title = WORKLOAD_TITLES[workload]
                    every = contenders(workload, sources, api.url, work, prefect_url, state.parent)
                    chosen = select(every, args.only)
                    outcomes = [Outcome(c.name, c.note, c.unavailable if c in chosen else LEFT_OUT) for c in every]
                    runnable = [(c, o) for c, o in zip(every, outcomes, strict=True) if not o.unavailable]
                    for round_number in range(args.rounds):
                        shift = round_number % max(1, len(runnable))
                        for contender, outcome in runnable[shift:] + runnable[:shift]:
                            if outcome.attempts and outcome.attempts[-1].problem.startswith(
                                    ("killed at the", "first (untimed) load killed")):
                                continue  # it ran past the timeout once: another round would only do it again
                            result = runner.attempt(workload, contender, round_number)
                            outcome.attempts.append(result)
                            say(f"  {title} round {round_number + 1}: {contender.name} {result.seconds:.2f} s, "
                                f"{result.peak_rss_mb:.0f} MB{', ' + result.problem if result.problem else ''}")
                    for outcome in outcomes:
                        if outcome.unavailable and outcome.unavailable != LEFT_OUT:
                            say(f"  {title}: {outcome.name} cannot run here: {outcome.unavailable}")
                    section.workloads[workload] = (title, outcomes)
                    section.seconds, section.load_end = time.perf_counter() - started, load_average()
                    write(section, args.out)  # after each workload: a long run that stops keeps what it measured
        finally:
            stack.down(state)
            if previous is None:
                os.environ.pop("HEADWATER_DATABASE_URL", None)
            else:
                os.environ["HEADWATER_DATABASE_URL"] = previous
            source_data.drop(sources)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    section.seconds = time.perf_counter() - started
    section.load_end = load_average()
    write(section, args.out)
    say(f"Finished in {section.seconds:.0f} s. Results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark plan: references and cases in order, each measured in a child process, collected into a Report."""

from __future__ import annotations

import functools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmarks import work
from benchmarks.api_server import ApiServer
from benchmarks.data import TABLE, changed_events, events, write_csv, write_parquet
from benchmarks.databases import (
    checkpoint,
    copy_csv,
    create_mariadb_source,
    create_postgres_database,
    drop_mariadb_database,
    drop_postgres_database,
    key_source_table,
    mariadb_url,
    upsert_csv,
)
from benchmarks.fixed_cost import measure as measure_fixed_cost
from benchmarks.flow_startup import measure as measure_flow_startup
from benchmarks.isolate import run_isolated
from benchmarks.projects import (
    SOURCE_URL_SECRET,
    api_source,
    file_merge_source,
    file_source,
    sql_merge_source,
    sql_source,
    write_project,
)
from benchmarks.report import Report, Row, Target
from headwater.postgres.copy_streams import copy_streams

COPY_BASIS = "raw COPY, same rows"
PLAIN_DLT_CAP = 1_000_000  # plain dlt runs at most this many rows; larger sizes are extrapolated from its rate
SQL_CAP = 1_000_000  # the database cases run at the smallest size, at most this many rows
PROFILE_CAP = 1_000_000  # profiles of missed targets are taken at most at this size (cProfile slows the run)
FILE_TARGET, SQL_TARGET, MEMORY_TARGET = 0.8, 0.6, 1.2
API_TARGET = 0.4  # flat API records: Headwater's rate against fetching and parsing the pages alone
FLOW_TARGET, FIRST_RUN_TARGET = 5.0, 10.0  # wall seconds of a nothing-new run of the example, from the shell
MERGE_TARGET = 2.0  # a run that merges 1% changed rows, in at most this many times those rows merged by hand
BY_HAND_BASIS = "by hand, same rows"
FIXED_COST_TARGET = 1.5  # wall seconds of `headwater run` with nothing new, beyond the interpreter's start


@dataclass
class Settings:
    sizes: list[int]
    api_records: int
    work: Path  # scratch folder: data files, projects, state
    profile: bool = True  # re-run cases that miss their target under cProfile (off for --quick: sizes too small)
    flow_warmup: bool = True  # time the second flow run against the server, not the one that registers the flow
    repeats: int = 3  # full loads and COPY run this many times, each from scratch; the median run is reported


def append_rows(url: str, frame, csv_path: Path) -> None:
    """Add rows to the source table, as an application writing to it would."""
    import psycopg

    write_csv(frame, csv_path)
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        with cursor.copy(f"COPY {TABLE} FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
            copy.write(csv_path.read_bytes())


def median_run(runs: list[tuple]) -> tuple:
    """Of (config, url, result) runs of one case, the one with the median seconds (lower middle if even)."""
    ordered = sorted(runs, key=lambda run: run[2]["seconds"])
    return ordered[(len(ordered) - 1) // 2]


def streams_note(rows: int) -> str:
    """How many COPY streams load a file of ``rows`` rows here (headwater.postgres.copy_streams): the
    benchmark's columns all take pgpq's path (headwater.postgres.binary_copy), a stream per core."""
    streams = copy_streams(rows, cores_per_stream=1)
    return f"{streams} COPY stream{'s' if streams > 1 else ''} (pgpq)"


def stages_note(result: dict) -> str:
    """dlt's steps of a Headwater load, e.g. "extract 1.50 s, normalize 0.03 s, load 1.20 s"."""
    return ", ".join(f"{step} {seconds:.2f} s" for step, seconds in result.get("stages", {}).items())


class Benchmark:
    """Runs every case; ``say`` receives one progress line per step."""

    def __init__(self, settings: Settings, report: Report, say: Callable[[str], None]):
        self.settings = settings
        self.report = report
        self.say = say
        self.copy_rate: dict[int, float] = {}
        self.databases: list[str] = []
        self.mariadb_databases: list[str] = []
        self.rss: dict[tuple[str, int], float] = {}

    # -- helpers -------------------------------------------------------------------------------------------------

    def database(self, prefix: str) -> str:
        url = create_postgres_database(prefix)
        self.databases.append(url)
        return url

    def measure(self, label: str, function: Callable[..., dict], before: Callable[[], object] | None = None,
                **kwargs) -> dict:
        """``function`` in a child process; ``before`` prepares its input, outside the measured time."""
        if before is not None:
            before()
        # WAL the previous case wrote is flushed now, not by a checkpoint in the middle of this case.
        checkpoint()
        self.say(f"  running  {label} ...")
        result = run_isolated(function, **kwargs)
        rate = result["rows"] / result["seconds"] if result["seconds"] else 0
        self.say(f"  done     {label}: {result['rows']:,} rows in {result['seconds']:.2f} s ({rate:,.0f} rows/s)")
        return result

    def add(self, case: str, result: dict, ratio: float, basis: str, note: str = "") -> Row:
        row = Row(case=case, rows=result["rows"], seconds=result["seconds"], ratio=ratio, basis=basis,
                  peak_rss_mb=result.get("peak_rss_mb"), note=note)
        self.report.rows.append(row)
        return row

    def vs_copy(self, result: dict, size: int) -> float:
        rate = result["rows"] / result["seconds"] if result["seconds"] else 0.0
        return rate / self.copy_rate[size] if self.copy_rate.get(size) else 0.0

    def data(self, size: int) -> tuple[Path, Path]:
        folder = self.settings.work / "data" / str(size)
        csv_path, parquet_path = folder / "csv" / f"{TABLE}.csv", folder / "parquet" / f"{TABLE}.parquet"
        if not csv_path.exists():
            self.say(f"  generate {size:,} rows x 10 columns (CSV and Parquet)")
            frame = events(size)
            write_csv(frame, csv_path)
            write_parquet(frame, parquet_path)
        return csv_path, parquet_path

    def headwater(self, name: str, sources: dict, profile: bool = False,
                  secrets: dict[str, str] | None = None) -> tuple[Path, str, dict]:
        """A full Headwater load of the source, each repeat with a fresh project and database; the median run."""
        runs = []
        for attempt in range(1 if profile else self.settings.repeats):
            config = write_project(self.settings.work / "projects" / f"{name}-{attempt}", sources, secrets)
            url = self.database(name.replace("-", "_")[:30])
            result = self.measure(f"{name}", work.headwater_load, profile=profile,
                                  config_path=str(config), source=next(iter(sources)), url=url)
            runs.append((config, url, result))
        return median_run(runs)

    # -- cases ---------------------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.copies()
            self.files()
            self.incremental_files()
            self.memory()
            self.databases_cases()
            self.incremental_merges()
            self.plain_dlt()
            self.api()
            self.flow_startup()
            self.fixed_cost()
        finally:
            self.cleanup()

    def copies(self) -> None:
        self.say("Reference: raw COPY ... FROM STDIN (psycopg)")
        for size in self.settings.sizes:
            csv_path, _ = self.data(size)
            result = median_run([(None, None, self.measure(f"COPY {size:,}", work.raw_copy, url=self.database("copy"),
                                                           csv_path=str(csv_path)))
                                 for _ in range(self.settings.repeats)])[2]
            self.copy_rate[size] = result["rows"] / result["seconds"]
            self.add(f"raw COPY, CSV {size:,}", result, 1.0, COPY_BASIS, "reference")
            _, parquet_path = self.data(size)
            floor = median_run([(None, None, self.measure(f"landed rows by hand {size:,}", work.landed_rows_by_hand,
                                                          url=self.database("by_hand"), parquet_path=str(parquet_path)))
                                for _ in range(self.settings.repeats)])[2]
            self.add(f"by hand: Headwater's landed rows from Parquet, 2 binary COPY streams {size:,}", floor,
                     self.vs_copy(floor, size), COPY_BASIS,
                     "the file's columns plus the 4 Headwater adds (line, file, modified, load id); no dlt, "
                     "no steps, no state: the floor of a Headwater load of this file")

    def files(self) -> None:
        self.say("Case 1: files -> Postgres through Headwater (trim, normalise lower, derive)")
        self.file_loads: dict[tuple[str, int], tuple[Path, str, dict]] = {}
        for kind in ("csv", "parquet"):
            for size in self.settings.sizes:
                csv_path, parquet_path = self.data(size)
                landing = (csv_path if kind == "csv" else parquet_path).parent
                loaded = self.headwater(f"file-{kind}-{size}", file_source(landing, f"*.{kind}"))
                self.file_loads[kind, size] = loaded
                result = loaded[2]
                self.rss[kind, size] = result["peak_rss_mb"]
                ratio = self.vs_copy(result, size)
                self.add(f"Headwater file {kind.upper()} {size:,}", result, ratio, COPY_BASIS,
                         f"3 enrichment steps; {streams_note(size)}; " + stages_note(result))
                self.report.targets.append(Target(f"file {kind.upper()} {size:,} vs COPY", ratio, FILE_TARGET, "x",
                                                  detail=self.time_budget(result, size, FILE_TARGET)))
        self.profile_missed("file", lambda kind: file_source(self.data(self.profile_size())[kind == "parquet"]
                                                              .parent, f"*.{kind}"))

    def time_budget(self, result: dict, size: int, goal: float) -> str:
        """Where a load's time went, against the time the goal allows for the same rows."""
        stages = result.get("stages", {})
        if not stages or not self.copy_rate.get(size):
            return ""
        budget = size / self.copy_rate[size] / goal
        outside = result["seconds"] - sum(stages.values())
        return (f"{goal}x of COPY allows {budget:.2f} s for these rows; the load took {result['seconds']:.2f} s: "
                f"dlt's extract step {stages.get('extract', 0):.2f} s (read, type, enrich; COPY ahead, or write "
                f"Parquet), normalize {stages.get('normalize', 0):.2f} s, load step {stages.get('load', 0):.2f} s "
                f"(the COPYs copy ahead started, ending and committed, or Parquet to binary COPY), and "
                f"{outside:.2f} s around them (pipeline state, schema, recovery check). dlt runs the steps one "
                f"after the other, so their times add up; the load step alone is "
                f"{stages.get('load', 0) / budget:.0%} of the allowance.")

    def profile_size(self) -> int:
        return min(self.settings.sizes[0], PROFILE_CAP)

    def profile_missed(self, prefix: str, sources_of: Callable[[str], dict],
                       secrets_of: Callable[[str], dict] | None = None) -> None:
        """Re-run each missed case of ``prefix`` once under cProfile and attach the top of the profile."""
        if not self.settings.profile:
            return
        done: dict[str, str] = {}
        for target in self.report.targets:
            if target.met or not target.name.startswith(prefix) or target.profile:
                continue
            kind = target.name.split()[1].lower()
            if kind not in done:
                secrets = secrets_of(kind) if secrets_of else None
                _, _, result = self.headwater(f"profile-{prefix}-{kind}", sources_of(kind), profile=True,
                                              secrets=secrets)
                done[kind] = f"(profiled at {self.profile_size():,} rows)\n" + result["profile"]
            target.profile = done[kind]

    def incremental_files(self) -> None:
        size = self.settings.sizes[-1]
        self.say(f"Cases 4 and 5: incremental runs on the {size:,}-row Parquet source")
        config, url, full = self.file_loads["parquet", size]
        startup = self.measure("fixed start-up (fresh interpreter)", work.startup, config_path=str(config))
        nodata = self.measure("no new data", work.headwater_load, config_path=str(config), source="files", url=url)
        self.add("fixed start-up: interpreter, imports, config", startup, startup["seconds"] / full["seconds"],
                 "time vs full load", f"of which {startup['in_process']:.2f} s imports and config")
        self.add(f"incremental, no new data, Parquet {size:,}", nodata, nodata["seconds"] / full["seconds"],
                 "time vs full load", "listing finds no new file; time excludes the start-up above")
        _, parquet_path = self.data(size)
        one = self.measure("1 new row", work.headwater_load, config_path=str(config), source="files", url=url,
                           before=lambda: write_parquet(events(1, first_id=size),
                                                        parquet_path.parent / f"{TABLE}-one.parquet"))
        self.add(f"incremental, 1 new row, Parquet {size:,}", one, one["seconds"] / full["seconds"],
                 "time vs full load", "the fixed cost of a run that loads something")
        delta = max(1, size // 100)
        write_parquet(events(delta, first_id=size + 1), parquet_path.parent / f"{TABLE}-delta.parquet")
        more = self.measure(f"1% new rows ({delta:,})", work.headwater_load, config_path=str(config),
                            source="files", url=url)
        self.add(f"incremental, 1% new rows, Parquet {size:,}", more, more["seconds"] / full["seconds"],
                 "time vs full load", f"{delta:,} new rows in a new file")
        self.proportional_target("file Parquet", full, one, more)

    def proportional_target(self, name: str, full: dict, one: dict, more: dict) -> None:
        # Proportional to the delta: beyond the fixed cost of a run that loads something (measured as a run
        # with one new row), 1% of the rows should cost about 1% of the full load; twice that allows for noise.
        allowed = one["seconds"] + 2 * 0.01 * full["seconds"]
        self.report.targets.append(Target(
            f"incremental 1% {name}: seconds", more["seconds"], round(allowed, 2), "s", higher_is_better=False,
            detail=f"Goal: a run with one new row ({one['seconds']:.2f} s: listing, package, load job, state) "
                   f"+ 2 x 1% of the full load ({full['seconds']:.2f} s)."))

    def memory(self) -> None:
        small, big = self.settings.sizes[0], self.settings.sizes[-1]
        if small == big:
            self.report.notes.append("Peak memory: only one size was run, so there is no ratio to report.")
            return
        for kind in ("csv", "parquet"):
            ratio = self.rss[kind, big] / self.rss[kind, small]
            _, _, result = self.file_loads[kind, big]
            self.add(f"peak RSS, file {kind.upper()} {big:,} vs {small:,}", result, ratio,
                     f"peak RSS vs {small:,}-row load", f"{self.rss[kind, small]:.0f} MB at {small:,} rows")
            self.report.targets.append(Target(
                f"peak RSS {kind.upper()} {big:,} / {small:,}", ratio, MEMORY_TARGET, "x", higher_is_better=False,
                detail="Peak RSS of the child process running the load (ru_maxrss), which starts from a "
                       "process with dlt and Headwater already imported. Landing files are read in blocks "
                       "(connectors/filesystem/blocks.py) and load files are copied batch by batch "
                       "(headwater/postgres/loader.py), so neither stage holds a whole file."))

    def databases_cases(self) -> None:
        size = min(self.settings.sizes[0], SQL_CAP)
        self.say(f"Case 2: database -> Postgres through Headwater (sql_database), {size:,} rows")
        csv_path, _ = self.data(size)
        source_url = self.database("source")
        copy_csv(source_url, TABLE, csv_path)
        mariadb = "hwb_source"
        self.mariadb_databases.append(mariadb)
        create_mariadb_source(mariadb, TABLE, csv_path)
        ratios = {}
        credentials_of = {"postgres": source_url.replace("postgresql://", "postgresql+psycopg://"),
                          "mariadb": mariadb_url(mariadb)}
        for kind, credentials in (("Postgres", credentials_of["postgres"]), ("MariaDB", credentials_of["mariadb"])):
            config, url, result = self.headwater(f"sql-{kind.lower()}", sql_source(),
                                                 secrets={SOURCE_URL_SECRET: credentials})
            ratios[kind] = self.vs_copy(result, size)
            self.add(f"Headwater sql_database, {kind} source", result, ratios[kind], COPY_BASIS,
                     f"backend chosen by database (connectorx), cursor updated_at; {streams_note(size)}; "
                     + stages_note(result))
            self.report.targets.append(Target(f"sql {kind} {size:,} vs COPY", ratios[kind], SQL_TARGET, "x",
                                              detail=self.time_budget(result, size, SQL_TARGET)))
            if kind == "Postgres":
                self.incremental_sql(config, url, source_url, size, result)
        self.profile_missed("sql", lambda kind: sql_source(),
                            secrets_of=lambda kind: {SOURCE_URL_SECRET: credentials_of[kind]})

    def incremental_sql(self, config: Path, url: str, source_url: str, size: int, full: dict) -> None:
        nodata = self.measure("sql no new data", work.headwater_load, config_path=str(config), source="db", url=url)
        self.add(f"incremental, no new data, sql_database Postgres {size:,}", nodata,
                 nodata["seconds"] / full["seconds"], "time vs full load", "cursor query returns nothing")
        one = self.measure("sql 1 new row", work.headwater_load, config_path=str(config), source="db", url=url,
                           before=lambda: append_rows(source_url, events(1, first_id=size),
                                                      self.settings.work / "data" / "sql-one.csv"))
        self.add(f"incremental, 1 new row, sql_database Postgres {size:,}", one, one["seconds"] / full["seconds"],
                 "time vs full load", "the fixed cost of a run that loads something")
        delta = max(1, size // 100)
        append_rows(source_url, events(delta, first_id=size + 1), self.settings.work / "data" / "sql-delta.csv")
        more = self.measure("sql 1% new rows", work.headwater_load, config_path=str(config), source="db", url=url)
        self.add(f"incremental, 1% new rows, sql_database Postgres {size:,}", more,
                 more["seconds"] / full["seconds"], "time vs full load", f"{delta:,} rows newer than the cursor")
        self.proportional_target("sql Postgres", full, one, more)

    def incremental_merges(self) -> None:
        """1% of a keyed table changed (half updated rows, half new ones), merged on id, against the same rows
        merged by hand; at every size, since the run should cost the changed rows, not the table. A run with one
        changed row first gives the fixed cost of a run that merges, as the appends' cases have it."""
        self.say("Case 6: 1% changed rows merged on id (sql_database Postgres, Parquet) vs the same rows by hand")
        for size in self.settings.sizes:
            csv_path, parquet_path = self.data(size)
            changed = max(2, size // 100)
            one, frame = changed_events(size, 2, round_=0), changed_events(size, changed, round_=1)
            folder = self.settings.work / "data" / str(size) / "changed"
            one_csv, changed_csv = write_csv(one, folder / "one.csv"), write_csv(frame, folder / f"{TABLE}.csv")
            reference = self.database("upsert")
            copy_csv(reference, TABLE, csv_path)
            key_source_table(reference, TABLE)
            hand = self.measure(f"by hand: {changed:,} changed rows into {size:,}", work.upsert_by_hand,
                                url=reference, csv_path=str(changed_csv))
            self.add(f"by hand: COPY 1% changed rows + INSERT ... ON CONFLICT, {size:,}", hand, 1.0, BY_HAND_BASIS,
                     "reference: temp table, then one upsert into a keyed table of the same size (psycopg)")

            source_url = self.database("merge_source")
            copy_csv(source_url, TABLE, csv_path)
            key_source_table(source_url, TABLE)
            secrets = {SOURCE_URL_SECRET: source_url.replace("postgresql://", "postgresql+psycopg://")}
            config = write_project(self.settings.work / "projects" / f"merge-sql-{size}", sql_merge_source(), secrets)
            self.merge_runs(f"sql_database Postgres {size:,}", config, "db", hand,
                            functools.partial(upsert_csv, source_url, TABLE, one_csv),
                            functools.partial(upsert_csv, source_url, TABLE, changed_csv),
                            "rows updated or added since the cursor")

            landing = folder / "landing"
            landing.mkdir(parents=True, exist_ok=True)
            shutil.copy(parquet_path, landing / f"{TABLE}.parquet")
            config = write_project(self.settings.work / "projects" / f"merge-files-{size}", file_merge_source(landing))
            self.merge_runs(f"Parquet {size:,}", config, "files", hand,
                            functools.partial(write_parquet, one, landing / f"{TABLE}-one.parquet"),
                            functools.partial(write_parquet, frame, landing / f"{TABLE}-changed.parquet"),
                            "one new file of the changed rows")

    def merge_runs(self, name: str, config: Path, source: str, hand: dict, change_one: Callable[[], object],
                   change_many: Callable[[], object], what: str) -> None:
        """A full merge load, a run with one changed row, then the measured run with 1% changed rows."""
        url = self.database(f"merge_{source}")
        self.measure(f"{name}: first load", work.headwater_load, config_path=str(config), source=source, url=url)
        one = self.measure(f"{name}: 1 changed row", work.headwater_load, before=change_one,
                           config_path=str(config), source=source, url=url)
        more = self.measure(f"{name}: 1% changed rows", work.headwater_load, before=change_many,
                            config_path=str(config), source=source, url=url)
        ratio = more["seconds"] / hand["seconds"] if hand["seconds"] else 0.0
        beyond = more["seconds"] - one["seconds"]
        self.add(f"incremental, 1% changed rows (merge), {name}", more, ratio, BY_HAND_BASIS,
                 f"{what}; {stages_note(more)}; {beyond:.2f} s beyond a run with 1 changed row "
                 f"({one['seconds']:.2f} s)")
        self.report.targets.append(Target(
            f"incremental 1% changed merge {name} vs by hand", ratio, MERGE_TARGET, "x", higher_is_better=False,
            detail=f"The run ({more['seconds']:.2f} s: {stages_note(more)}, and config, pipeline state, schema and "
                   f"Headwater's own work around them) against the same rows merged by hand "
                   f"({hand['seconds']:.2f} s). A run with one changed row takes {one['seconds']:.2f} s: the fixed "
                   f"cost of a run that merges; the 1% cost {beyond:.2f} s beyond it."))

    def plain_dlt(self) -> None:
        size = min(self.settings.sizes[0], PLAIN_DLT_CAP)
        self.say(f"Reference: plain dlt, dict rows, default loader format, {size:,} rows")
        _, parquet_path = self.data(self.settings.sizes[0])
        result = self.measure("plain dlt", work.plain_dlt, url=self.database("plain"), parquet_path=str(parquet_path),
                              limit=size, pipelines_dir=str(self.settings.work / "plain-dlt"))
        self.add(f"plain dlt (dicts, insert_values) {size:,}", result, self.vs_copy(result, size), COPY_BASIS,
                 "reference")
        rate = result["rows"] / result["seconds"]
        for bigger in self.settings.sizes[1:]:
            estimate = {"rows": bigger, "seconds": bigger / rate}
            self.add(f"plain dlt (dicts, insert_values) {bigger:,}", estimate, self.vs_copy(estimate, bigger),
                     COPY_BASIS, f"extrapolated from the {size:,}-row run, not measured")

    def api(self) -> None:
        records = self.settings.api_records
        self.say(f"Case 3: API -> Postgres, {records:,} records in pages of 1000 from a local server")
        with ApiServer(records) as server:
            ceiling = self.measure("httpx download only", work.http_download, base_url=server.url)
            self.add(f"httpx, download pages only, {records:,}", ceiling, 1.0, "httpx download", "network ceiling")
            _, _, result = self.headwater("api", api_source(server.url))
            ratio = (result["rows"] / result["seconds"]) / (ceiling["rows"] / ceiling["seconds"])
            self.add(f"Headwater rest_api {records:,}", result, ratio, "httpx download",
                     "cursor pagination, flat records as Arrow pages; " + stages_note(result))
            self.report.targets.append(Target(f"rest_api {records:,} flat records vs httpx download", ratio,
                                              API_TARGET, "x"))

    def flow_startup(self) -> None:
        self.say("Case 7: python -m flows.daily on the example with nothing new: temporary vs project server")
        started = time.perf_counter()
        result = measure_flow_startup(self.settings.work / "flow", FLOW_TARGET, self.settings.flow_warmup,
                                      self.settings.profile)
        temporary = result.get("temporary")
        self.say(f"  done     nothing-new runs in {time.perf_counter() - started:.0f} s: temporary server "
                 + (f"{temporary:.2f} s" if temporary else "not run (quick)")
                 + f", first on the project server {result['server_first']:.2f} s")
        base = temporary or result["server_first"]
        basis = "time vs temporary server" if temporary else "time vs first run on the project server"
        if temporary:
            self.add("flows.daily example, nothing new, Prefect's temporary server", {"rows": 0, "seconds": base},
                     1.0, basis, f"HEADWATER_PREFECT_SERVER=temporary; first load {result['first_load']:.1f} s")
        self.add("flows.daily example, nothing new, first run on the project server",
                 {"rows": 0, "seconds": result["server_first"]}, result["server_first"] / base,
                 basis, f"right after the server started ({result['server_start']:.1f} s)")
        self.report.targets.append(Target("flows.daily example, nothing new, first run after the server is up",
                                          result["server_first"], FIRST_RUN_TARGET, "s", higher_is_better=False))
        if "server" in result:
            self.add("flows.daily example, nothing new, project server running",
                     {"rows": 0, "seconds": result["server"]}, result["server"] / base, basis, "every later run")
            self.report.targets.append(Target("flows.daily example, nothing new, server running", result["server"],
                                              FLOW_TARGET, "s", higher_is_better=False,
                                              profile=result.get("profile", "")))

    def fixed_cost(self) -> None:
        self.say("Case 8: headwater run, one small Parquet source, nothing new, server up: in-process vs warm runner")
        result = measure_fixed_cost(self.settings.work / "fixed-cost", repeats=3 if self.settings.flow_warmup else 1)
        self.say(f"  done     in-process {result['in_process']:.2f} s, warm runner {result['runner']:.2f} s")
        base = result["in_process"]
        note = f"interpreter alone {result['interpreter']:.2f} s; medians"
        self.add("whole command, nothing new, server up: in-process", {"rows": 0, "seconds": base}, 1.0,
                 "time vs in-process", f"HEADWATER_WARM_RUNNER=off; {note}")
        self.add("whole command, nothing new, server up: warm runner", {"rows": 0, "seconds": result["runner"]},
                 result["runner"] / base, "time vs in-process", f"`headwater up`'s runner; {note}")
        self.report.targets.append(Target("headwater run, nothing new, server up, beyond the interpreter (warm runner)",
                                          result["runner"] - result["interpreter"], FIXED_COST_TARGET, "s",
                                          higher_is_better=False))

    def cleanup(self) -> None:
        for url in self.databases:
            try:
                drop_postgres_database(url)
            except Exception as error:  # cleaning up must not hide the result or the real error
                self.say(f"  could not drop {url}: {error}")
        for name in self.mariadb_databases:
            try:
                drop_mariadb_database(name)
            except Exception as error:
                self.say(f"  could not drop MariaDB database {name}: {error}")

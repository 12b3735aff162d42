"""The contenders of each workload as whole shell commands: raw COPY, plain dlt, Headwater and the peers.

A contender is a command line plus the schema it lands in. ``prepare`` runs before each timed command,
outside the timing (a fresh project folder, a fresh dlt pipelines folder); ``initial`` is the untimed first
load of the incremental workload, after which the timed command moves only the change.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from benchmarks.data import COLUMNS, POSTGRES_DDL, TABLE
from benchmarks.databases import MARIADB
from benchmarks.endtoend import peers
from benchmarks.endtoend.sources import Sources

REPO = Path(__file__).resolve().parents[2]
WORKLOADS = ("csv", "parquet", "postgres", "mariadb", "incremental", "api")
WORKLOAD_TITLES = {"csv": "CSV file", "parquet": "Parquet file", "postgres": "PostgreSQL table",
                   "mariadb": "MariaDB table", "incremental": "incremental, 1% changed (PostgreSQL)",
                   "api": "JSON API, paginated"}
COPY, HEADWATER, HEADWATER_IN_PROCESS = "raw COPY", "Headwater", "Headwater, in-process"
# The warm runner's switch (headwater.local.warm_client.DISABLE_ENV).
WARM_RUNNER_SWITCH = "HEADWATER_WARM_RUNNER"
HEADWATER_SOURCE = "e2e_hw"


@dataclass
class Contender:
    name: str
    schema: str
    command: str = ""
    unavailable: str = ""  # why it cannot run here; empty when it can
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO
    prepare: Callable[[], None] | None = None
    initial: str = ""  # incremental workload: the untimed first load
    note: str = ""
    # (peak MB, CPU seconds) of a process outside the command's tree that ran it (the warm runner's worker),
    # read after a run
    helper_usage: Callable[[], tuple[float, float]] | None = None


def q(text: str | Path) -> str:
    return shlex.quote(str(text))


def psql(url: str) -> str:
    return f"psql {q(url)} -X -q -v ON_ERROR_STOP=1"


def _reset_folder(folder: Path) -> Callable[[], None]:
    def reset():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    return reset


# -- raw COPY -------------------------------------------------------------------------------------------------------

def _create_table(schema: str, key: bool = False) -> str:
    ddl = f"CREATE SCHEMA {schema}; " + POSTGRES_DDL.format(name=f"{schema}.{TABLE}").strip() + ";"
    return ddl + (f" ALTER TABLE {schema}.{TABLE} ADD PRIMARY KEY (id);" if key else "")


def _copy_from_postgres(sources: Sources, url: str, schema: str, key: bool = False) -> str:
    return (f"{psql(url)} -c {q(chr(92) + f'copy (SELECT * FROM {TABLE}) TO STDOUT')} | "
            f"{psql(sources.target_url)} -c {q(_create_table(schema, key))} "
            f"-c {q(chr(92) + f'copy {schema}.{TABLE} FROM STDIN')}")


def raw_copy(workload: str, sources: Sources) -> Contender:
    schema = "e2e_copy"
    if workload in ("csv", "parquet"):
        command = (f"{psql(sources.target_url)} -c {q(_create_table(schema))} "
                   f"-c {q(chr(92) + f'copy {schema}.{TABLE} FROM {q(sources.csv)} CSV HEADER')}")
        note = "COPY of the same rows as CSV: PostgreSQL reads no Parquet" if workload == "parquet" else ""
        return Contender(COPY, schema, command, note=note)
    if workload == "postgres":
        return Contender(COPY, schema, _copy_from_postgres(sources, sources.postgres_url, schema))
    if workload == "mariadb":
        auth = f"-u {q(MARIADB['user'])}" + (f" -p{q(MARIADB['password'])}" if MARIADB["password"] else "")
        select = f"SELECT {', '.join(COLUMNS)} FROM {sources.mariadb_database}.{TABLE}"
        command = (f"mysql -h {MARIADB['host']} -P {MARIADB['port']} {auth} --batch --skip-column-names --quick "
                   f"-e {q(select)} | {psql(sources.target_url)} -c {q(_create_table(schema))} "
                   f"-c {q(chr(92) + f'copy {schema}.{TABLE} FROM STDIN')}")
        return Contender(COPY, schema, command, env={"PGTZ": "UTC"}, note="mysql client | psql")
    if workload == "incremental":
        updates = ", ".join(f"{column} = EXCLUDED.{column}" for column in COLUMNS if column != "id")
        upsert = f"INSERT INTO {schema}.{TABLE} SELECT * FROM delta ON CONFLICT (id) DO UPDATE SET {updates}"
        into_delta = f"CREATE TEMP TABLE delta (LIKE {schema}.{TABLE})"
        cursor = f"SELECT max(updated_at) FROM {schema}.{TABLE}"
        command = (f"since=$({psql(sources.target_url)} -Atc {q(cursor)}) && "
                   f"{psql(sources.incremental_url)} -c \"\\copy (SELECT * FROM {TABLE} WHERE updated_at > "
                   f"'$since') TO STDOUT\" | {psql(sources.target_url)} "
                   f"-c {q(into_delta)} -c {q(chr(92) + 'copy delta FROM STDIN')} -c {q(upsert)}")
        return Contender(COPY, schema, command, initial=_copy_from_postgres(sources, sources.incremental_url,
                                                                             schema, key=True),
                         note="by hand: changed rows COPY'd to a temp table, INSERT ... ON CONFLICT")
    return Contender(COPY, schema, unavailable="no COPY path from an HTTP API")


# -- plain dlt and Headwater ----------------------------------------------------------------------------------------

def _source_location(workload: str, sources: Sources, api_url: str) -> str:
    return {"csv": str(sources.csv), "parquet": str(sources.parquet), "postgres": sources.postgres_url,
            "mariadb": sources.mariadb_url.replace("mysql://", "mysql+pymysql://"),
            "incremental": sources.incremental_url, "api": api_url}[workload]


def plain_dlt(workload: str, sources: Sources, api_url: str, work: Path) -> Contender:
    schema, pipelines = "e2e_dlt", work / "dlt-pipelines" / workload
    command = shlex.join([sys.executable, "-m", "benchmarks.endtoend.plain_dlt", workload,
                          _source_location(workload, sources, api_url), sources.target_url, schema, str(pipelines)])
    how = "rest_api, dicts" if workload == "api" else "Arrow, CSV loader file format (COPY)"
    fresh = _reset_folder(pipelines)
    return Contender("plain dlt", schema, command, prepare=fresh, initial=command if workload == "incremental" else "",
                     note=how)


def _headwater_source(workload: str, sources: Sources, api_url: str) -> tuple[dict, dict[str, str]]:
    if workload in ("csv", "parquet"):
        path = sources.csv if workload == "csv" else sources.parquet
        return {"connector": "filesystem", "settings": {"bucket_url": str(path.parent), "files": {TABLE: path.name}},
                "tables": {TABLE: {}}}, {}
    if workload == "api":
        return {"connector": "rest_api", "settings": {
            "client": {"base_url": api_url, "paginator": {"type": "cursor", "cursor_path": "next_cursor",
                                                          "cursor_param": "cursor"}},
            "resources": [{"name": TABLE, "endpoint": {"path": TABLE, "data_selector": "data"}}]},
            "tables": {TABLE: {}}}, {}
    table = {"cursor": "updated_at", **({"primary_key": "id"} if workload == "incremental" else {})}
    return {"connector": "sql_database", "settings": {"credentials": "${E2E_SOURCE_URL}", "table_names": [TABLE]},
            "tables": {TABLE: table}}, {"E2E_SOURCE_URL": _source_location(workload, sources, api_url)}


def headwater(workload: str, sources: Sources, api_url: str, project: Path, prefect_api_url: str,
              warm: bool = True) -> Contender:
    """`headwater run` in ``project``, the folder where `headwater up` started the Prefect server and the warm
    runner. Each round writes the workload's headwater.yaml and removes dlt's working folder (a first load);
    the stack in `.headwater` stays, as it does for a user. ``warm`` False runs in-process instead."""
    source, secrets = _headwater_source(workload, sources, api_url)
    config = {"project": "bench", "sources": {HEADWATER_SOURCE: source},
              "transform": {"enabled": False}, "quality": {"enabled": False}}
    state = project / ".headwater"

    def fresh_project():
        shutil.rmtree(state / "pipelines", ignore_errors=True)
        (project / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (state / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))

    command = q(Path(sys.executable).parent / "headwater") + " run"
    env = {"HEADWATER_DATABASE_URL": sources.target_url, "PREFECT_API_URL": prefect_api_url}
    if not warm:
        env[WARM_RUNNER_SWITCH] = "off"
    how = ("`headwater run` after `headwater up` (Prefect server and warm runner running)" if warm
           else "`headwater run` in-process (HEADWATER_WARM_RUNNER=off), Prefect server up")
    return Contender(HEADWATER if warm else HEADWATER_IN_PROCESS, f"raw_{HEADWATER_SOURCE}", command, env=env,
                     cwd=project, prepare=fresh_project, initial=command if workload == "incremental" else "",
                     note=f"{how}, dbt and Soda off" + ("; peak RSS is the worker's that ran it" if warm else ""),
                     helper_usage=functools.partial(_last_worker_usage, state) if warm else None)


def _last_worker_usage(state: Path) -> tuple[float, float]:
    """(peak RSS MB, CPU seconds) of the warm runner's worker that ran the last call, from the runner's log."""
    try:
        lines = (state / "logs" / "warm-runner.log").read_text().splitlines()
    except OSError:
        return 0.0, 0.0
    for line in reversed(lines):
        found = re.search(r"ended: .*'peak_rss_kib': (\d+)(?:, 'cpu_seconds': ([\d.]+))?", line)
        if found:
            return int(found.group(1)) / 1024, float(found.group(2) or 0.0)
    return 0.0, 0.0


# -- peers ---------------------------------------------------------------------------------------------------------

def _tool(name: str) -> Path:
    return peers.executable(name)


def _tool_or_reason(tool: str, source: tuple | None, no_source: str) -> Path | str:
    """The tool's executable, or why it cannot run this workload (no such source, or no install)."""
    if source is None:
        return no_source
    try:
        return _tool(tool)
    except peers.Unavailable as error:
        return str(error)


def _database_streams(sources: Sources, postgres_params: str, files: dict) -> dict[str, tuple[str, str]]:
    """workload -> (source connection, stream) for a peer: its file streams plus the three database tables."""
    return {**files, "postgres": (sources.postgres_url + postgres_params, f"public.{TABLE}"),
            "mariadb": (sources.mariadb_url, f"{sources.mariadb_database}.{TABLE}"),
            "incremental": (sources.incremental_url + postgres_params, f"public.{TABLE}")}


def ingestr(workload: str, sources: Sources, work: Path) -> Contender:
    schema = "e2e_ingestr"
    source = _database_streams(sources, "", {"csv": (f"csv://{sources.csv}", TABLE),
                                             "parquet": (f"parquet://{sources.parquet}", TABLE)}).get(workload)
    exe = _tool_or_reason("ingestr", source, "ingestr 1.0 reads one file from an HTTP URL (csv, json, jsonl, "
                                             "parquet); it follows no pagination")
    if isinstance(exe, str):
        return Contender("ingestr 1.0", schema, unavailable=exe)
    command = (f"{q(exe)} ingest --yes --progress log --source-uri {q(source[0])} --source-table {q(source[1])} "
               f"--dest-uri {q(sources.target_url)} --dest-table {schema}.{TABLE}")
    if workload == "incremental":
        command += " --incremental-key updated_at --incremental-strategy merge --primary-key id"
    env = {"INGESTR_DISABLE_TELEMETRY": "true", "PIPELINES_DIR": str(work / "ingestr" / workload)}
    return Contender("ingestr 1.0", schema, command, env=env, initial=command if workload == "incremental" else "",
                     prepare=_reset_folder(work / "ingestr" / workload),
                     note=f"ingestr {peers.installed_version('ingestr')}")


def sling(workload: str, sources: Sources, work: Path) -> Contender:
    schema = "e2e_sling"
    # Sling's Postgres driver asks for TLS unless told not to; the local server has none.
    source = _database_streams(sources, "?sslmode=disable", {"csv": ("", f"file://{sources.csv}"),
                                                             "parquet": ("", f"file://{sources.parquet}")}
                               ).get(workload)
    exe = _tool_or_reason("sling", source, "Sling 1.4 reads no paginated JSON API (files and databases)")
    if isinstance(exe, str):
        return Contender("Sling", schema, unavailable=exe)
    command = (f"{q(exe)} run {('--src-conn ' + q(source[0])) if source[0] else ''} --src-stream {q(source[1])} "
               f"--tgt-conn {q(sources.target_url + '?sslmode=disable')} --tgt-object {schema}.{TABLE}")
    if workload == "incremental":
        command += " --mode incremental --primary-key id --update-key updated_at"
    else:
        command += " --mode full-refresh"
    env = {"SLING_HOME_DIR": str(work / "sling"), "SLING_DISABLE_TELEMETRY": "true", "SLING_LOADED_AT_COLUMN": "false"}
    return Contender("Sling", schema, command, env=env, initial=command if workload == "incremental" else "",
                     note="sling-linux-amd64 " + (exe.parent / "VERSION").read_text().strip()
                     if (exe.parent / "VERSION").exists() else "")


def _singer_catalog(tap: Path, config: Path, catalog: Path, stream_suffix: str, incremental: bool) -> str:
    """A shell step that discovers the tap's catalog and selects the events stream (incremental on updated_at)."""
    patch = (
        "import json,sys; c=json.load(open(sys.argv[1]));\n"
        "for s in c['streams']:\n"
        f"    chosen = s['tap_stream_id'].endswith({stream_suffix!r})\n"
        "    for m in s.get('metadata', []):\n"
        "        if m.get('breadcrumb') == []:\n"
        "            m['metadata']['selected'] = chosen\n"
        f"            m['metadata']['replication-method'] = {'INCREMENTAL' if incremental else 'FULL_TABLE'!r}\n"
        + ("            m['metadata']['replication-key'] = 'updated_at'\n" if incremental else "")
        + ("    if chosen: s['replication_method'] = 'INCREMENTAL'; s['replication_key'] = 'updated_at'\n"
           if incremental else "")
        + "json.dump(c, open(sys.argv[1], 'w'))\n"
    )
    return (f"{q(tap)} --config {q(config)} --discover > {q(catalog)} && "
            f"{q(sys.executable)} -c {q(patch)} {q(catalog)}")


def _shell(command: str) -> Callable[[], None]:
    def run():
        import subprocess

        done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(peers.first_line(done.stderr or done.stdout))
    return run


def _with_password(url: str, scheme: str) -> str:
    """The Singer SDK's Postgres connectors insist on a password even where the server trusts the client."""
    from benchmarks.endtoend.plain_dlt import with_password

    return scheme + "://" + with_password(url).split("://", 1)[1]


def _csv_tap_config(sources: Sources) -> dict:
    return {"filesystem": "local", "path": str(sources.csv.parent), "read_mode": "one_stream_per_file"}


def _rest_tap_config(api_url: str) -> dict:
    """The local API's cursor pagination: next_cursor in the body, sent back as ?cursor=."""
    return {"api_url": api_url, "pagination_request_style": "jsonpath_paginator", "pagination_response_style": "page",
            "next_page_token_path": "$.next_cursor", "pagination_next_page_param": "cursor",
            "streams": [{"name": TABLE, "path": f"/{TABLE}", "records_path": "$.data[*]", "primary_keys": ["id"]}]}


def singer(workload: str, sources: Sources, api_url: str, work: Path) -> Contender:
    name, schema = "Singer (MeltanoLabs)", "e2e_singer"
    if workload == "parquet":
        return Contender(name, schema, unavailable="the registry has no Singer tap for Parquet files")
    folder = work / "singer" / workload
    folder.mkdir(parents=True, exist_ok=True)
    tap_name = {"csv": "tap-csv", "mariadb": "tap-mysql", "api": "tap-rest"}.get(workload, "tap-postgres")
    try:
        tap = _tool(tap_name)
        target = _tool("target-postgres")
    except peers.Unavailable as error:
        return Contender(name, schema, unavailable=str(error))
    tap_config, target_config = folder / "tap.json", folder / "target.json"
    target_config.write_text(json.dumps({"sqlalchemy_url": _with_password(sources.target_url, "postgresql+psycopg"),
                                         "default_target_schema": schema, "add_record_metadata": False,
                                         "activate_version": False, "load_method": "upsert"}))
    if workload in ("csv", "api"):
        # SDK taps select every stream without a catalog; the only stream is events
        tap_config.write_text(json.dumps(_csv_tap_config(sources) if workload == "csv" else _rest_tap_config(api_url)))
        label = "tap-csv-folder 0.0.1a1 (no tap-csv on the registry)" if workload == "csv" else "tap-rest-api-msdk"
        return Contender(f"Singer ({label.split()[0]})", schema,
                         f"{q(tap)} --config {q(tap_config)} | {q(target)} --config {q(target_config)}",
                         note=f"{label} | target-postgres")
    if workload == "mariadb":
        name = "Singer (pipelinewise tap-mysql)"
        tap_config.write_text(json.dumps({"host": MARIADB["host"], "port": MARIADB["port"], "user": MARIADB["user"],
                                          "password": MARIADB["password"],
                                          "filter_dbs": sources.mariadb_database}))
    else:
        url = sources.incremental_url if workload == "incremental" else sources.postgres_url
        tap_config.write_text(json.dumps({"sqlalchemy_url": _with_password(url, "postgresql+psycopg2"),
                                          "filter_schemas": ["public"]}))
    catalog, state = folder / "catalog.json", folder / "state.json"
    incremental = workload == "incremental"
    discover = _singer_catalog(tap, tap_config, catalog, "events", incremental)
    run = (f"{q(tap)} --config {q(tap_config)} --catalog {q(catalog)}"
           + (f" --state {q(state)}" if incremental else "")
           + f" | {q(target)} --config {q(target_config)}")
    if incremental:
        # the first load writes the state the timed run starts from; the timed run's own state goes elsewhere
        return Contender(name, schema, f"{run} > {q(folder / 'state-after.json')}", prepare=_shell(discover),
                         initial=f"echo '{{}}' > {q(state)} && {run} | tail -n 1 > {q(state)}.new && "
                                 f"mv {q(state)}.new {q(state)}",
                         note="tap | target, state from the first load; discovery untimed")
    return Contender(name, schema, run, prepare=_shell(discover), note="tap | target; discovery untimed")


def contenders(workload: str, sources: Sources, api_url: str, work: Path, prefect_api_url: str,
               headwater_project: Path) -> list[Contender]:
    return [raw_copy(workload, sources), plain_dlt(workload, sources, api_url, work),
            headwater(workload, sources, api_url, headwater_project, prefect_api_url),
            headwater(workload, sources, api_url, headwater_project, prefect_api_url, warm=False),
            ingestr(workload, sources, work), sling(workload, sources, work),
            singer(workload, sources, api_url, work)]

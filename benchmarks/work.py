"""The measured work of each case; every function runs in a child process (benchmarks.isolate).

Each returns a dict with at least ``seconds`` (the work only, not the process start) and ``rows``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dlt
import httpx
import psycopg
import pyarrow.parquet as pq

from benchmarks.databases import copy_csv
from headwater.common.runtime import quiet_telemetry
from headwater.load.pipeline import load_source, pipelines_dir
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project

quiet_telemetry()
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
# Import every installed connector now, in the fork server that preloads this module: a case's seconds
# then exclude imports, which the fixed start-up row measures once (a run pays them once, not per source).
connector_registry()


def raw_copy(url: str, csv_path: str, table: str = "events") -> dict:
    """The reference: psycopg's COPY FROM STDIN of the CSV into a plain table."""
    started = time.perf_counter()
    rows = copy_csv(url, table, Path(csv_path))
    return {"seconds": time.perf_counter() - started, "rows": rows}


def landed_rows_by_hand(url: str, parquet_path: str, streams: int = 2, table: str = "events") -> dict:
    """The floor of Headwater's load of a Parquet file: the same rows it lands (the file's columns plus
    ``_line``, ``_file_name``, ``_file_modified_at`` and ``_dlt_load_id``) read and sent by binary COPY over
    ``streams`` connections, with nothing else: no dlt, no steps, no state, no run record."""
    import queue
    import threading

    import pyarrow as pa

    from headwater.postgres.binary_copy import copy_binary

    started = time.perf_counter()
    parquet = pq.ParquetFile(parquet_path)
    modified = int(os.stat(parquet_path).st_mtime * 1_000_000)
    load_id = f"{time.time():.7f}"
    sql_types = {pa.int64(): "bigint", pa.float64(): "double precision", pa.bool_(): "boolean",
                 pa.string(): "varchar", pa.large_string(): "varchar"}
    columns = [f"{field.name} {sql_types.get(field.type, 'timestamptz')}" for field in parquet.schema_arrow]
    with psycopg.connect(url) as connection:
        connection.execute(f"CREATE TABLE {table} (_line bigint, {', '.join(columns)}, _file_name varchar, "
                           f"_file_modified_at timestamptz, _dlt_load_id varchar(64) NOT NULL)")
    queues = [queue.Queue(maxsize=4) for _ in range(streams)]
    copied: list[int] = []

    def copy(batches: queue.Queue, schema: pa.Schema) -> None:
        with psycopg.connect(url) as connection, connection.cursor() as cursor:
            copied.append(copy_binary(cursor, "public", table, schema, iter(batches.get, None)))

    threads: list[threading.Thread] = []
    line = 0
    for number, batch in enumerate(parquet.iter_batches(batch_size=64 * 1024)):
        rows = batch.num_rows
        landed = pa.RecordBatch.from_arrays(
            [pa.array(range(line + 1, line + rows + 1), pa.int64()), *batch.columns,
             pa.repeat(Path(parquet_path).name, rows), pa.repeat(pa.scalar(modified, pa.timestamp("us", "UTC")), rows),
             pa.repeat(load_id, rows)],
            names=["_line", *batch.schema.names, "_file_name", "_file_modified_at", "_dlt_load_id"])
        line += rows
        if not threads:
            threads = [threading.Thread(target=copy, args=(batches, landed.schema)) for batches in queues]
            for thread in threads:
                thread.start()
        queues[number % streams].put(landed)
    for batches in queues:
        batches.put(None)
    for thread in threads:
        thread.join()
    if sum(copied) != line:
        raise RuntimeError(f"by hand: {sum(copied)} rows copied of {line} read (a COPY stream failed)")
    return {"seconds": time.perf_counter() - started, "rows": line}


def upsert_by_hand(url: str, csv_path: str, table: str = "events") -> dict:
    """The reference of a merge: the changed rows COPYed into a temporary table, then one
    INSERT ... ON CONFLICT (id) DO UPDATE into ``table`` (which has a primary key on id), in one process."""
    from benchmarks.data import COLUMNS

    started = time.perf_counter()
    others = [column for column in COLUMNS if column != "id"]
    with psycopg.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE changed (LIKE {table}) ON COMMIT DROP")
        with cursor.copy("COPY changed FROM STDIN WITH (FORMAT csv, HEADER true)") as copy, \
                open(csv_path, "rb") as file:
            while block := file.read(1 << 20):
                copy.write(block)
        rows = cursor.rowcount
        cursor.execute(f"INSERT INTO {table} SELECT * FROM changed ON CONFLICT (id) DO UPDATE SET "
                       + ", ".join(f"{column} = EXCLUDED.{column}" for column in others))
    return {"seconds": time.perf_counter() - started, "rows": rows}


def headwater_load(config_path: str, source: str, url: str) -> dict:
    """One Headwater load of ``source``: config read, dlt pipeline opened, extract, normalize, load."""
    started = time.perf_counter()
    registry = connector_registry()
    project = load_project(Path(config_path), registry)
    configured = project.source(source)
    loaded = load_source(project, configured, registry.get(configured.connector), PostgresAddress.from_url(url))
    if not loaded.ok:
        raise RuntimeError(f"{source}: {loaded.error}")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": loaded.rows, "stages": stage_seconds(project, configured, url),
            "quarantined": sum(table.quarantined for table in loaded.tables)}


def stage_seconds(project, source, url: str) -> dict[str, float]:
    """Seconds of dlt's extract, normalize and load steps in the source's last run, from dlt's own trace."""
    pipeline = dlt.attach(pipeline_name=f"headwater_{source.name}",
                          pipelines_dir=str(pipelines_dir(project.state_dir, PostgresAddress.from_url(url))))
    trace = pipeline.last_trace
    steps = trace.steps if trace else []
    return {step.step: (step.finished_at - step.started_at).total_seconds() for step in steps
            if step.step in ("extract", "normalize", "load") and step.finished_at}


def plain_dlt(url: str, parquet_path: str, limit: int, pipelines_dir: str) -> dict:
    """The reference a dlt user writes first: dict rows, default loader file format (insert_values)."""
    started = time.perf_counter()

    def rows():
        remaining = limit
        for batch in pq.ParquetFile(parquet_path).iter_batches(batch_size=10_000):
            batch = batch.slice(0, remaining)
            yield batch.to_pylist()
            remaining -= batch.num_rows
            if remaining <= 0:
                return

    pipeline = dlt.pipeline(pipeline_name="plain_dlt", destination=dlt.destinations.postgres(
                                credentials=PostgresAddress.from_url(url).dlt_credentials()),
                            dataset_name="raw_plain", pipelines_dir=pipelines_dir)
    info = pipeline.run(rows(), table_name="events")
    info.raise_on_failed_jobs()
    loaded = pipeline.last_trace.last_normalize_info.row_counts.get("events", 0)
    return {"seconds": time.perf_counter() - started, "rows": loaded}


def http_download(base_url: str) -> dict:
    """The network ceiling of the API case: fetch and parse every page, keep nothing."""
    started = time.perf_counter()
    records = 0
    cursor = None
    with httpx.Client(base_url=base_url) as client:
        while True:
            page = client.get("/events", params={"cursor": cursor} if cursor else None).json()
            records += len(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return {"seconds": time.perf_counter() - started, "rows": records}


def row_count(url: str, table: str) -> int:
    with psycopg.connect(url) as connection:
        return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def startup(config_path: str) -> dict:
    """The fixed start-up of a Headwater run in a fresh interpreter: imports and reading the config."""
    code = ("import time; t = time.perf_counter(); "
            "from pathlib import Path; import headwater.load.pipeline; "
            "from headwater.project.config import load_project; "
            "from headwater.plugins.manager import connector_registry; "
            f"load_project(Path({config_path!r}), connector_registry()); print(time.perf_counter() - t)")
    started = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return {"seconds": time.perf_counter() - started, "rows": 0, "in_process": float(output.strip().splitlines()[-1])}

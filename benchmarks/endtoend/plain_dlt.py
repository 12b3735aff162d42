"""Plain dlt, as its users write a load script: Arrow batches for files, sql_database and rest_api sources.

    python -m benchmarks.endtoend.plain_dlt WORKLOAD SOURCE DEST_URL SCHEMA PIPELINES_DIR

WORKLOAD is csv, parquet, postgres, mariadb, incremental or api; SOURCE is a file, a database URL or the
API's base URL. Files and tables go through Arrow and dlt's CSV loader file format, which Postgres takes
with COPY; the API yields dicts, as rest_api does.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

import dlt  # noqa: E402

BATCH_ROWS = 100_000


def csv_batches(path: str):
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=16 << 20))
    for batch in reader:
        yield batch


def parquet_batches(path: str):
    import pyarrow.parquet as pq

    yield from pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS)


def resource(workload: str, source: str):
    if workload in ("csv", "parquet"):
        batches = csv_batches(source) if workload == "csv" else parquet_batches(source)
        return dlt.resource(batches, name="events")
    if workload in ("postgres", "mariadb", "incremental"):
        from dlt.sources.sql_database import sql_table

        table = sql_table(credentials=source, table="events", backend="pyarrow", chunk_size=BATCH_ROWS,
                          incremental=dlt.sources.incremental("updated_at") if workload == "incremental" else None)
        if workload == "incremental":
            table.apply_hints(primary_key="id", write_disposition="merge")
        return table
    if workload == "api":
        from dlt.sources.rest_api import rest_api_source

        return rest_api_source({
            "client": {"base_url": source, "paginator": {"type": "cursor", "cursor_path": "next_cursor",
                                                          "cursor_param": "cursor"}},
            "resources": [{"name": "events", "endpoint": {"path": "events", "data_selector": "data"}}],
        })
    raise SystemExit(f"unknown workload {workload}")


def with_password(url: str) -> str:
    """dlt's Postgres credentials require a password even where the server trusts the client."""
    scheme, rest = url.split("://", 1)
    user, at, host = rest.partition("@")
    return url if not at or ":" in user else f"{scheme}://{user}:bench@{host}"


def main(argv: list[str]) -> int:
    workload, source, dest_url, schema, pipelines_dir = argv
    dest_url = with_password(dest_url)
    pipeline = dlt.pipeline(pipeline_name=f"plain_{workload}", destination=dlt.destinations.postgres(dest_url),
                            dataset_name=schema, pipelines_dir=pipelines_dir)
    file_format = None if workload == "api" else "csv"
    info = pipeline.run(resource(workload, source), loader_file_format=file_format)
    info.raise_on_failed_jobs()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Landing files (CSV, JSONL, Parquet) from a local folder or any fsspec URL, one table per glob."""

from __future__ import annotations

from typing import Literal

import dlt
from dlt.sources.filesystem import filesystem as list_files

from connectors.filesystem.helpers import read_landing_batches
from headwater.quarantine.naming import quarantine_table_name
from headwater.read_ahead import read_ahead


@dlt.source(name="filesystem")
def filesystem(
    bucket_url: str, files: dict[str, str], file_format: Literal["csv", "jsonl", "parquet"] | None = None
):
    """Load CSV, JSONL and Parquet files into one table per glob, taking only files new or changed since the last run.

    Args:
        bucket_url: Folder path or fsspec URL (file://, s3://, gs://, ...) the globs are relative to.
        files: Table name -> glob, e.g. {"orders": "orders/*"}.
        file_format: csv, jsonl or parquet for every file; by default taken from each file's extension.
    """
    for table, glob in files.items():
        # Incremental on modification time: a run reads only files that appeared or changed since the last one.
        listing = list_files(
            bucket_url=bucket_url,
            file_glob=glob,
            incremental=dlt.sources.incremental("modification_date"),
        ).with_name(f"{table}_files")
        yield (listing | _read_files(table, file_format)).with_name(table)


def _read_files(table: str, file_format: str | None):
    quarantine = dlt.mark.make_hints(
        table_name=quarantine_table_name(table), write_disposition="append", primary_key=[]
    )

    @dlt.transformer(name="read_files")
    def read_files(items):
        for item in items:
            # The next block is read while dlt writes this one.
            for landing in read_ahead(read_landing_batches(item, file_format)):
                if landing.good.num_rows:
                    yield landing.good
                # Malformed lines go to the table's quarantine in the same load, each with its file and line.
                if landing.rejected is not None:
                    yield dlt.mark.with_hints(landing.rejected, quarantine, create_table_variant=True)

    return read_files

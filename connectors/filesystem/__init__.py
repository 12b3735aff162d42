"""Landing files (CSV, JSONL, Parquet) from a local folder or any fsspec URL, one table per glob."""

from __future__ import annotations

from typing import Literal

import dlt

from connectors.filesystem.file_log import FileLog
from connectors.filesystem.helpers import FileReport, TableReading, read_landing_file
from connectors.filesystem.listing import table_listing
from connectors.filesystem.parsed import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_NESTING_DEPTH
from connectors.filesystem.settings import CsvSettings, FileTable, LineBytes, NestingDepth
from connectors.filesystem.table_options import table_reading
from headwater.common.file_rows import FILE_ROW_COLUMNS
from headwater.common.nul_characters import NulHandling
from headwater.load.read_ahead import read_ahead
from headwater.quarantine.naming import quarantine_table_name


@dlt.source(name="filesystem")
def filesystem(
    bucket_url: str,
    files: dict[str, str | FileTable],
    file_format: Literal["csv", "jsonl", "parquet"] | None = None,
    csv: CsvSettings | None = None,
    null_values: list[str] | None = None,
    nul_characters: NulHandling = "reject",
    max_line_bytes: LineBytes = DEFAULT_MAX_LINE_BYTES,
    max_nesting_depth: NestingDepth = DEFAULT_MAX_NESTING_DEPTH,
):
    """Load CSV, JSONL and Parquet files into one table per glob, taking only files new or changed since the last run.

    Args:
        bucket_url: Folder path or fsspec URL (file://, s3://, gs://, ...) the globs are relative to.
        files: Table name -> glob, e.g. {"orders": "orders/*"}, or -> {glob, format, csv, null_values, columns,
            nul_characters, max_line_bytes, max_nesting_depth} to say how that table's files are written and read.
        file_format: csv, jsonl or parquet for every file; by default taken from each file's extension.
        csv: The CSV dialect of every file (delimiter, quote, escape, encoding, header, skip_lines, comment,
            decimal, ...); what is not given is detected per file.
        null_values: The values that mean "missing" in CSV files; by default NA, N/A, NULL, NaN, \\N, ... and empty.
        nul_characters: What happens to a row holding a NUL character, which Postgres cannot store: reject (to
            the table's quarantine, with the column and file:line named) or strip them.
        max_line_bytes: A longer line (a JSONL line, or a CSV line that runs on without a break) is quarantined
            with its file:line, not read into memory; the default, 1 GiB, holds any value Postgres stores.
        max_nesting_depth: A JSONL line whose objects and arrays nest deeper is quarantined with its file:line.
    """
    for table, spec in files.items():
        glob = spec if isinstance(spec, str) else spec["glob"]
        # Incremental on modification time: a run reads only files that appeared or changed since the last one.
        listing = table_listing(bucket_url, glob, table)
        reading = table_reading(table, spec, file_format, csv, null_values, {
            "nul_characters": nul_characters, "max_line_bytes": max_line_bytes,
            "max_nesting_depth": max_nesting_depth})
        yield (listing | _read_files(reading)).with_name(table)


def _read_files(reading: TableReading):
    quarantine = dlt.mark.make_hints(
        table_name=quarantine_table_name(reading.table), write_disposition="append", primary_key=[]
    )

    @dlt.transformer(name="read_files")
    def read_files(items):
        log = FileLog.of_current_resource()
        reading.kinds.start_from(*_known_columns(reading.table))
        for item in items:
            # The next block is read while dlt writes this one.
            pieces = read_landing_file(item, reading, reread=log.was_loaded(item),
                                       was_unreadable=log.was_unreadable(item))
            for piece in read_ahead(pieces):
                if isinstance(piece, FileReport):
                    log.record(piece)
                    continue
                if piece.good.num_rows or piece.good.num_columns > len(FILE_ROW_COLUMNS):  # rows, or a header alone
                    yield piece.good
                # Malformed lines go to the table's quarantine in the same load, each with its file and line.
                if piece.rejected is not None:
                    yield dlt.mark.with_hints(piece.rejected, quarantine, create_table_variant=True)

    return read_files


def _known_columns(table: str):
    """The table's columns as the destination has them (dlt's schema of this source), and how dlt names
    a file's column in it."""
    try:
        schema = dlt.current.source_schema()
    except Exception:  # not inside a pipeline run (e.g. `headwater inspect`): nothing is known
        return {}, str
    columns = dict(schema.get_table_columns(table)) if table in schema.tables else {}
    return columns, schema.naming.normalize_identifier

"""Turn one landing file into Arrow batches with consistent types whatever its format and size."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.filesystem import tolerant
from connectors.filesystem.column_types import FileTypes
from connectors.filesystem.tolerant import LINE_COLUMN

FORMATS = ("csv", "jsonl", "parquet")
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
SOURCE_FILE_COLUMN = "_file_name"
# Rows per Parquet batch: bounded memory whatever the row group size of the file.
PARQUET_BATCH_ROWS = 100_000


def file_format_of(file_name: str, declared: str | None) -> str:
    if declared:
        if declared not in FORMATS:
            raise ValueError(f"file_format must be one of {', '.join(FORMATS)}, got {declared!r}")
        return declared
    suffix = "." + file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if suffix not in SUFFIXES:
        raise ValueError(
            f"cannot tell the format of {file_name!r} from its extension; "
            f"set file_format to one of {', '.join(FORMATS)}"
        )
    return SUFFIXES[suffix]


class MalformedFileError(ValueError):
    """A landing file could not be read at all (e.g. a corrupt Parquet file); the message names the file."""


@dataclass
class LandingFile:
    """One batch of a landing file read tolerantly: the rows that load, and the lines set aside with why."""

    good: pa.Table
    rejected: pa.Table | None  # REJECTED_SCHEMA, or None when every line was good


# Rejected lines as the connector hands them on: the headwater quarantine adds its bookkeeping columns.
REJECTED_SCHEMA = pa.schema(
    [
        (SOURCE_FILE_COLUMN, pa.string()),
        (LINE_COLUMN, pa.int64()),
        ("record", pa.string()),
        ("rule", pa.string()),
        ("reason", pa.string()),
        ("location", pa.string()),
    ]
)


def read_landing_batches(item, declared_format: str | None = None) -> Iterator[LandingFile]:
    """Read a dlt FileItem into Arrow batches of bounded size, every batch of a file with the same types.

    CSV and JSONL lines that are malformed (wrong field count, not UTF-8, not JSON) or hold a value
    that does not fit its column's type are returned as rejected, with file and line; the other
    rows load. Rows are never dropped silently. ISO timestamp text becomes UTC timestamps, so CSV,
    JSONL and Parquet agree.
    """
    # The path below bucket_url, so files of the same name in different folders stay apart.
    file_name = item.get("relative_path") or item["file_name"]
    file_format = file_format_of(file_name, declared_format)
    types = FileTypes(numbers=file_format == "csv")
    with item.open(mode="rb") as stream:
        if file_format == "parquet":
            parsed_blocks = _parquet_batches(stream, file_name)
        elif file_format == "csv":
            parsed_blocks = tolerant.csv_blocks(stream, types.arrow_types)
        else:
            parsed_blocks = tolerant.jsonl_blocks(stream)
        for parsed in parsed_blocks:
            typed = types.apply(parsed)
            good = typed.frame.with_columns(pl.lit(file_name).alias(SOURCE_FILE_COLUMN)).to_arrow()
            yield LandingFile(good=good, rejected=_rejected_table(file_name, typed.rejections))


def _parquet_batches(stream, file_name: str) -> Iterator[tolerant.ParsedFile]:
    """Row groups in batches; a row's line is its 1-based row number in the file."""
    try:
        # pre_buffer=False: with it, the reader keeps buffers of every batch already read.
        batches = pq.ParquetFile(stream, pre_buffer=False).iter_batches(batch_size=PARQUET_BATCH_ROWS)
        first_row = 1
        for batch in batches:
            frame = pl.from_arrow(batch).with_row_index(LINE_COLUMN, offset=first_row)
            first_row += frame.height
            yield tolerant.ParsedFile(frame.with_columns(pl.col(LINE_COLUMN).cast(pl.Int64)), [])
    except (pa.ArrowException, OSError) as error:  # a binary file cannot be split into good and bad rows
        raise MalformedFileError(
            f"{file_name}: cannot be read as parquet ({str(error).splitlines()[0]}); "
            "fix or remove the file, then run again"
        ) from error


def _rejected_table(file_name: str, rejections: list[tolerant.Rejection]) -> pa.Table | None:
    if not rejections:
        return None
    rejections = sorted(rejections, key=lambda rejection: rejection.line)
    return pa.Table.from_pylist(
        [
            {
                SOURCE_FILE_COLUMN: file_name,
                LINE_COLUMN: rejection.line,
                # Where the row came from is part of it, as for the rows that load.
                "record": json.dumps(
                    {**rejection.record, SOURCE_FILE_COLUMN: file_name, LINE_COLUMN: rejection.line},
                    default=str,
                    ensure_ascii=False,
                ),
                "rule": rejection.rule,
                "reason": rejection.reason,
                "location": f"{file_name}:{rejection.line}",
            }
            for rejection in rejections
        ],
        schema=REJECTED_SCHEMA,
    )

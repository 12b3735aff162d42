"""Turn one landing file into an Arrow table with consistent types whatever its format."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from connectors.filesystem import tolerant
from connectors.filesystem.tolerant import ISO_TIMESTAMP, LINE_COLUMN

FORMATS = ("csv", "jsonl", "parquet")
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
SOURCE_FILE_COLUMN = "_file_name"


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
    """One landing file read tolerantly: the rows that load, and the lines set aside with why."""

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


def read_landing_file(item, declared_format: str | None = None) -> LandingFile:
    """Read a dlt FileItem into Arrow; ISO timestamp strings become UTC timestamps so CSV, JSONL and Parquet agree.

    CSV and JSONL lines that are malformed (wrong field count, not UTF-8, not JSON) or hold a value
    that does not fit its column's type are returned as rejected, with file and line; the other
    rows load. Rows are never dropped silently.
    """
    # The path below bucket_url, so files of the same name in different folders stay apart.
    file_name = item.get("relative_path") or item["file_name"]
    file_format = file_format_of(file_name, declared_format)
    content = item.read_bytes()
    if file_format == "parquet":
        try:
            frame = pl.read_parquet(io.BytesIO(content)).with_row_index(LINE_COLUMN, offset=1)
        except Exception as error:  # a binary file cannot be split into good and bad rows
            raise MalformedFileError(
                f"{file_name}: cannot be read as parquet ({str(error).splitlines()[0]}); "
                "fix or remove the file, then run again"
            ) from error
        parsed = tolerant.ParsedFile(frame.with_columns(pl.col(LINE_COLUMN).cast(pl.Int64)), [])
    else:
        parsed = tolerant.read_csv(content) if file_format == "csv" else tolerant.read_jsonl(content)
    frame = normalise_timestamps(parsed.frame).with_columns(pl.lit(file_name).alias(SOURCE_FILE_COLUMN))
    return LandingFile(good=frame.to_arrow(), rejected=_rejected_table(file_name, parsed.rejections))


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


def normalise_timestamps(frame: pl.DataFrame) -> pl.DataFrame:
    """Parse ISO-8601 text columns as timestamps and put every timestamp in UTC."""
    conversions = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String and _all_iso_timestamps(frame[name]):
            parsed = frame[name].str.to_datetime(time_unit="us", strict=False)
            if parsed.null_count() == frame[name].null_count():  # only when every value is a real timestamp
                conversions.append(_in_utc(parsed).alias(name))
        elif isinstance(dtype, pl.Datetime):
            conversions.append(_in_utc(frame[name]).alias(name))
    return frame.with_columns(conversions) if conversions else frame


def _all_iso_timestamps(column: pl.Series) -> bool:
    values = column.drop_nulls()
    return len(values) > 0 and bool(values.str.contains(ISO_TIMESTAMP).all())


def _in_utc(column: pl.Series) -> pl.Series:
    if column.dtype.time_zone is None:  # naive timestamps in landing files are taken as UTC
        return column.dt.replace_time_zone("UTC")
    return column.dt.convert_time_zone("UTC")

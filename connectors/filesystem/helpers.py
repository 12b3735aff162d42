"""Turn one landing file into an Arrow table with consistent types whatever its format."""

from __future__ import annotations

import csv
import io
import json

import polars as pl
import pyarrow as pa

FORMATS = ("csv", "jsonl", "parquet")
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
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
    """A landing file could not be read; the message names the file and, where known, the line."""


def read_file_as_arrow(item, declared_format: str | None = None) -> pa.Table:
    """Read a dlt FileItem into Arrow; ISO timestamp strings become UTC timestamps so CSV, JSONL and Parquet agree.

    A file that cannot be read whole fails the load with its name and the first bad
    line: rows are never dropped to make a file fit.
    """
    # The path below bucket_url, so files of the same name in different folders stay apart.
    file_name = item.get("relative_path") or item["file_name"]
    file_format = file_format_of(file_name, declared_format)
    content = item.read_bytes()
    try:
        frame = _read(content, file_format)
    except Exception as error:
        where = first_bad_line(content, file_format)
        raise MalformedFileError(
            f"{file_name}{where}: cannot be read as {file_format} ({str(error).splitlines()[0]}); "
            "fix or remove the file, then run again"
        ) from error
    frame = normalise_timestamps(frame).with_columns(pl.lit(file_name).alias(SOURCE_FILE_COLUMN))
    return frame.to_arrow()


def _read(content: bytes, file_format: str) -> pl.DataFrame:
    data = io.BytesIO(content)
    if file_format == "csv":
        return pl.read_csv(data, try_parse_dates=True, infer_schema_length=10_000)
    if file_format == "jsonl":
        return pl.read_ndjson(data, infer_schema_length=10_000)
    return pl.read_parquet(data)


def first_bad_line(content: bytes, file_format: str) -> str:
    """Locate the first line a text file breaks on (only called once reading has failed)."""
    if file_format == "parquet":
        return ""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        return f" line {line}: not UTF-8"
    if file_format == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    return f" line {number}: not a JSON object"
        return ""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    for row in rows:
        if row and len(row) != len(header):
            return f" line {rows.line_num}: {len(row)} fields, the header has {len(header)}"
    return ""


def normalise_timestamps(frame: pl.DataFrame) -> pl.DataFrame:
    """Parse ISO-8601 text columns as timestamps and put every timestamp in UTC."""
    conversions = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String and _all_iso_timestamps(frame[name]):
            parsed = frame[name].str.to_datetime(time_unit="us", strict=True)
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

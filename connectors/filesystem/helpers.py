"""Turn one landing file into an Arrow table with consistent types whatever its format."""

from __future__ import annotations

import io

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


def read_file_as_arrow(item, declared_format: str | None = None) -> pa.Table:
    """Read a dlt FileItem into Arrow; ISO timestamp strings become UTC timestamps so CSV, JSONL and Parquet agree."""
    file_format = file_format_of(item["file_name"], declared_format)
    data = io.BytesIO(item.read_bytes())
    if file_format == "csv":
        frame = pl.read_csv(data, try_parse_dates=True, infer_schema_length=10_000)
    elif file_format == "jsonl":
        frame = pl.read_ndjson(data, infer_schema_length=10_000)
    else:
        frame = pl.read_parquet(data)
    frame = normalise_timestamps(frame).with_columns(pl.lit(item["file_name"]).alias(SOURCE_FILE_COLUMN))
    return frame.to_arrow()


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

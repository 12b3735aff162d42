"""Give the columns of one landing file one set of types, block after block.

Text columns take the type nearly all their values have in the first block that holds them
(numbers and booleans only for CSV, where everything is text; timestamps and dates for every
format). Later blocks are cast to the same types, so a file read in many blocks loads as one
table. A value that does not fit its column's type is rejected with its line, never nulled.
Timestamps end up in UTC (naive ones are taken as UTC).
"""

from __future__ import annotations

from typing import Callable

import polars as pl
import pyarrow as pa

from connectors.filesystem.tolerant import LINE_COLUMN, ParsedFile, Rejection
from headwater.timestamps import iso_timestamp

# A text column takes a type when at least this share of its non-empty values parse; the rest are quarantined.
TYPED_SHARE = 0.9
# The type is read from this many first rows of the first block that has the column; every row is then cast.
INFERENCE_ROWS = 10_000
ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
OFFSET = r"(Z|[+-]\d{2}:?\d{2})$"
UTC_MICROSECONDS = pl.Datetime("us", "UTC")


class FileTypes:
    """The column types of one file; ``apply`` types each of its blocks in turn."""

    def __init__(self, numbers: bool):
        self.numbers = numbers  # text may become numbers and booleans (CSV); JSON and Parquet carry their own
        self.kinds: dict[str, str | None] = {}  # text column -> the kind its values are parsed as (None: text)
        self.dtypes: dict[str, pl.DataType] = {}  # every column's type, fixed by the first block that had it
        self.offsets: dict[str, bool] = {}  # timestamp column -> its values carry a zone offset

    def arrow_types(self) -> dict[str, pa.DataType]:
        """The settled types as a CSV reader can apply them while parsing (text columns stay text)."""
        types = {}
        for name, kind in self.kinds.items():
            if kind == "timestamp":
                types[name] = pa.timestamp("us", "UTC") if self.offsets.get(name) else pa.timestamp("us")
            else:
                types[name] = ARROW_TYPES.get(kind, pa.string())
        return types

    def apply(self, parsed: ParsedFile) -> ParsedFile:
        frame = parsed.frame
        if frame.height == 0:
            return parsed
        for name, dtype in frame.schema.items():
            if name != LINE_COLUMN and name not in self.kinds and name not in self.dtypes and dtype == pl.String:
                self.kinds[name] = infer_kind(frame[name].head(INFERENCE_ROWS), self.numbers)
                if self.kinds[name] == "timestamp":
                    self.offsets[name] = bool(frame[name].drop_nulls().str.strip_chars().str.contains(OFFSET).all())
        typed, failures = self._typed(frame)
        for name, dtype in typed.schema.items():
            self.dtypes.setdefault(name, dtype)
        if not failures:
            return ParsedFile(typed, parsed.rejections)
        return ParsedFile(*_split_failures(frame, typed, failures, parsed.rejections))

    def _typed(self, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[str, str, pl.Series]]]:
        columns, failures = [], []
        for name, dtype in frame.schema.items():
            if name == LINE_COLUMN:
                continue
            values = frame[name]
            kind = self.kinds.get(name) if dtype == pl.String else None
            if kind is not None:
                typed = CONVERTERS[kind](values.str.strip_chars()).alias(name)
            elif isinstance(dtype, pl.Datetime) and dtype.time_zone != "UTC":
                typed, kind = in_utc(values), "timestamp"
            else:
                typed = values
            target = self.dtypes.get(name)
            if target is not None and typed.dtype != target:
                try:
                    typed, kind = typed.cast(target, strict=False), _type_name(target)
                except pl.exceptions.PolarsError:  # no cast between these: dlt keeps both (a variant column)
                    typed = values
            if typed is values:
                continue
            columns.append(typed)
            failed = values.is_not_null() & typed.is_null()
            if failed.any():
                failures.append((name, kind or _type_name(typed.dtype), failed))
        return (frame.with_columns(columns) if columns else frame), failures


def _split_failures(original: pl.DataFrame, typed: pl.DataFrame, failures, rejections: list[Rejection]):
    bad = pl.Series([False] * original.height)
    for _, _, failed in failures:
        bad = bad | failed
    rejections = list(rejections)
    # Only the few failing rows are turned into Python objects; their record shows the values as they were read.
    for index in bad.arg_true().to_list():
        row = original.row(index, named=True)
        reasons = [f"{name}: {row[name]!r} is not a valid {kind}" for name, kind, failed in failures if failed[index]]
        record = {key: value for key, value in row.items() if key != LINE_COLUMN}
        rejections.append(Rejection(row[LINE_COLUMN], record, "cast", "; ".join(reasons)))
    return typed.filter(~bad), rejections


def infer_kind(values: pl.Series, numbers: bool) -> str | None:
    """The kind nearly all present values parse as, or None to keep text."""
    present = values.is_not_null()
    count = int(present.sum())
    if count == 0:
        return None
    stripped = values.str.strip_chars()
    kinds = ["integer", "number", "boolean"] if numbers else []
    for kind in kinds + ["timestamp", "date"]:
        if kind in ("timestamp", "date") and not stripped.str.contains(PATTERNS[kind]).fill_null(False).any():
            continue
        typed = CONVERTERS[kind](stripped)
        if _mostly(int((typed.is_not_null() & present).sum()), count):
            return kind
    return None


def _mostly(parsed: int, count: int) -> bool:
    """Nearly all values parse: 90%, or in a small file all but one or two among many more that do."""
    failed = count - parsed
    return parsed >= TYPED_SHARE * count or (failed <= 2 and parsed >= 3 * failed)


def _booleans(values: pl.Series) -> pl.Series:
    lowered = values.str.to_lowercase()
    return pl.select(
        pl.when(lowered == "true").then(True).when(lowered == "false").then(False).otherwise(None)
    ).to_series()


def _timestamps(values: pl.Series) -> pl.Series:
    looks_right = values.str.contains(ISO_TIMESTAMP).fill_null(False)
    if not looks_right.any():
        return pl.Series(values.name, [None] * values.len(), dtype=UTC_MICROSECONDS)
    # The format is read per value so that "Z" and "+01:00" offsets can share a column.
    offsets = values.filter(looks_right).str.contains(OFFSET)
    try:
        parsed = values.str.to_datetime(time_unit="us", strict=False, time_zone="UTC" if offsets.all() else None)
    except pl.exceptions.ComputeError:  # Polars infers the format from one value; when that one is bad, ask Python
        parsed = pl.Series(values.name, [iso_timestamp(value) for value in values], dtype=UTC_MICROSECONDS)
    parsed = pl.select(pl.when(looks_right).then(parsed).otherwise(None)).to_series().alias(values.name)
    return in_utc(parsed)


def _dates(values: pl.Series) -> pl.Series:
    return values.str.to_date("%Y-%m-%d", strict=False)


def in_utc(column: pl.Series) -> pl.Series:
    if column.dtype.time_zone == "UTC":
        return column
    if column.dtype.time_zone is None:  # naive timestamps in landing files are taken as UTC
        return column.dt.replace_time_zone("UTC")
    return column.dt.convert_time_zone("UTC")


def _type_name(dtype: pl.DataType) -> str:
    return TYPE_NAMES.get(type(dtype), str(dtype).lower())


CONVERTERS: dict[str, Callable[[pl.Series], pl.Series]] = {
    "integer": lambda values: values.cast(pl.Int64, strict=False),
    "number": lambda values: values.cast(pl.Float64, strict=False),
    "boolean": _booleans,
    "timestamp": _timestamps,
    "date": _dates,
}
ARROW_TYPES = {"integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_(), "date": pa.date32()}
PATTERNS = {"timestamp": ISO_TIMESTAMP, "date": ISO_DATE}
TYPE_NAMES = {pl.Int64: "integer", pl.Int32: "integer", pl.Float64: "number", pl.Boolean: "boolean",
              pl.Datetime: "timestamp", pl.Date: "date", pl.String: "text"}

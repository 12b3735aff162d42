"""Read a CSV or JSONL landing file line by line where it breaks: good rows load, bad lines are set aside.

A clean file goes through vectorised Polars code only. The per-line Python path runs only when
the fast path finds a problem (or, for CSV, when quoting makes line counting unsafe), so a large
clean file costs what it cost before.

Every row, good or rejected, carries its 1-based line number so a rejection can say where it came from.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import polars as pl

from headwater.timestamps import iso_timestamp

LINE_COLUMN = "_line"
# In the record of a line that could not be read: its text, bad bytes shown as \xNN.
RAW_LINE = "_raw_line"
# A text column takes a type when at least this share of its non-empty values parse; the rest are quarantined.
TYPED_SHARE = 0.9
ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"


@dataclass
class Rejection:
    line: int
    record: dict
    rule: str  # "columns", "encoding", "json" or "cast"
    reason: str


@dataclass
class ParsedFile:
    frame: pl.DataFrame  # good rows, typed, with LINE_COLUMN
    rejections: list[Rejection]


def read_csv(content: bytes) -> ParsedFile:
    """CSV with a header line; each data line must have the header's number of fields and valid UTF-8."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and '"' not in text and "\r" not in text:
        frame = _csv_fast(text)
        if frame is not None:
            return _typed(frame)
    return _typed_with(*_csv_slow(content))


def _csv_fast(text: str) -> pl.DataFrame | None:
    """Unquoted CSV: field counts and line numbers from vectorised string ops; None when a line is off."""
    lines = pl.Series(text.split("\n"))
    if lines.len() and lines[-1] == "":
        lines = lines.head(-1)
    if lines.len() == 0:
        return pl.DataFrame()
    header = lines[0].split(",")
    body = lines.slice(1)
    fields = body.str.count_matches(",", literal=True) + 1
    blank = body.str.len_bytes() == 0
    if bool(((fields != len(header)) & ~blank).any()):
        return None
    numbered = pl.DataFrame({"text": body, LINE_COLUMN: pl.int_range(2, body.len() + 2, eager=True)}).filter(~blank)
    split = numbered["text"].str.split_exact(",", len(header) - 1).struct.rename_fields(header).struct.unnest()
    values = split.with_columns(pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in header)
    return values.with_columns(numbered[LINE_COLUMN].cast(pl.Int64))


def _csv_slow(content: bytes) -> tuple[pl.DataFrame, list[Rejection]]:
    """Record by record with the csv module: handles quoting, locates bad lines exactly."""
    # surrogateescape keeps undecodable bytes visible per field instead of failing the whole file.
    text = content.decode("utf-8", errors="surrogateescape")
    text_lines = text.split("\n")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    rows: list[list[str | None]] = []
    lines: list[int] = []
    rejections: list[Rejection] = []
    previous_end = reader.line_num
    for fields in reader:
        line, previous_end = previous_end + 1, reader.line_num
        if not fields:
            continue
        # The line as it is in the file stays in the record: a replay loads the row only once it is removed.
        record: dict = dict(zip(header, (_shown(value) for value in fields), strict=False))
        record[RAW_LINE] = _shown("\n".join(text_lines[line - 1 : previous_end]).rstrip("\r"))
        undecodable = [name for name, value in zip(header, fields, strict=False) if _has_bad_bytes(value)]
        if undecodable or any(_has_bad_bytes(value) for value in fields[len(header):]):
            where = ", ".join(undecodable) or "an extra field"
            rejections.append(Rejection(line, record, "encoding", f"not valid UTF-8 in {where}"))
        elif len(fields) != len(header):
            reason = f"{len(fields)} fields, the header has {len(header)}"
            rejections.append(Rejection(line, record, "columns", reason))
        else:
            del record[RAW_LINE]
            rows.append([value or None for value in fields])
            lines.append(line)
    frame = pl.DataFrame(rows, schema={name: pl.String for name in header}, orient="row")
    return frame.with_columns(pl.Series(LINE_COLUMN, lines, dtype=pl.Int64)), rejections


def read_jsonl(content: bytes) -> ParsedFile:
    """One JSON object per line; a line that is not one (or not UTF-8) is rejected alone."""
    try:
        frame = pl.read_ndjson(io.BytesIO(content), infer_schema_length=10_000)
        if not frame.columns or content.count(b"\n") + (not content.endswith(b"\n")) == frame.height:
            numbers = pl.int_range(1, frame.height + 1, eager=True).cast(pl.Int64)
            return _typed(frame.with_columns(numbers.alias(LINE_COLUMN)), text_only=False)
    except Exception:  # a broken line or a type clash: find it line by line
        pass
    rows, lines, rejections = [], [], []
    for number, raw in enumerate(content.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            shown = raw.decode("utf-8", errors="backslashreplace")
            rejections.append(Rejection(number, {RAW_LINE: shown}, "encoding", "line is not valid UTF-8"))
            continue
        except ValueError as error:
            shown = raw.decode("utf-8", errors="backslashreplace")
            rejections.append(Rejection(number, {RAW_LINE: shown}, "json", f"not a JSON object ({error})"))
            continue
        if not isinstance(value, dict):
            rejections.append(Rejection(number, {RAW_LINE: raw.decode()}, "json", "not a JSON object"))
            continue
        rows.append(value)
        lines.append(number)
    # strict=False: a field holding numbers on some lines and text on others becomes text, then typed below.
    frame = pl.DataFrame(rows, infer_schema_length=None, strict=False) if rows else pl.DataFrame()
    frame = frame.with_columns(pl.Series(LINE_COLUMN, lines, dtype=pl.Int64))
    return _typed_with(frame, rejections, text_only=False)


def _typed(frame: pl.DataFrame, text_only: bool = True) -> ParsedFile:
    return _typed_with(frame, [], text_only)


def _typed_with(frame: pl.DataFrame, rejections: list[Rejection], text_only: bool = True) -> ParsedFile:
    """Give text columns the type nearly all their values have; rows whose value does not fit are rejected."""
    if frame.height == 0:
        return ParsedFile(frame, rejections)
    casts, failures = [], []
    for name, dtype in frame.schema.items():
        if dtype != pl.String or name == LINE_COLUMN:
            continue
        parsed = _infer(frame[name], numbers=text_only)
        if parsed is None:
            continue
        typed, kind = parsed
        casts.append(typed.alias(name))
        failed = frame[name].is_not_null() & typed.is_null()
        if failed.any():
            failures.append((name, kind, failed))
    if not failures:
        return ParsedFile(frame.with_columns(casts), rejections)
    bad = pl.Series([False] * frame.height)
    for _, _, failed in failures:
        bad = bad | failed
    # Only the few failing rows are turned into Python objects.
    for index in bad.arg_true().to_list():
        row = frame.row(index, named=True)
        reasons = [
            f"{name}: {row[name]!r} is not a valid {kind}" for name, kind, failed in failures if failed[index]
        ]
        record = {key: value for key, value in row.items() if key != LINE_COLUMN}
        rejections.append(Rejection(row[LINE_COLUMN], record, "cast", "; ".join(reasons)))
    good = frame.with_columns(casts).filter(~bad)
    return ParsedFile(good, rejections)


def _infer(values: pl.Series, numbers: bool) -> tuple[pl.Series, str] | None:
    """The typed column and its type name, or None to keep text (too few values parse as anything)."""
    present = values.is_not_null()
    count = int(present.sum())
    if count == 0:
        return None
    stripped = values.str.strip_chars()
    candidates = []
    if numbers:
        candidates += [
            ("integer", lambda: stripped.cast(pl.Int64, strict=False)),
            ("number", lambda: stripped.cast(pl.Float64, strict=False)),
            ("boolean", lambda: _booleans(stripped)),
        ]
    candidates += [
        ("timestamp", lambda: _timestamps(stripped)),
        ("date", lambda: _dates(stripped)),
    ]
    for kind, convert in candidates:
        typed = convert()
        if typed is not None and _mostly(int((typed.is_not_null() & present).sum()), count):
            return typed, kind
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


def _timestamps(values: pl.Series) -> pl.Series | None:
    looks_right = values.str.contains(ISO_TIMESTAMP).fill_null(False)
    if not looks_right.any():
        return None
    # The format is read per value so that "Z" and "+01:00" offsets can share a column.
    candidates = values.filter(looks_right)
    offsets = candidates.str.contains(r"(Z|[+-]\d{2}:?\d{2})$")
    try:
        parsed = values.str.to_datetime(time_unit="us", strict=False, time_zone="UTC" if offsets.all() else None)
    except pl.exceptions.ComputeError:  # Polars infers the format from one value; when that one is bad, ask Python
        parsed = pl.Series(values.name, [iso_timestamp(value) for value in values], dtype=pl.Datetime("us", "UTC"))
    return pl.select(pl.when(looks_right).then(parsed).otherwise(None)).to_series().alias(values.name)


def _dates(values: pl.Series) -> pl.Series | None:
    if not values.str.contains(ISO_DATE).fill_null(False).any():
        return None
    return values.str.to_date("%Y-%m-%d", strict=False)


def _has_bad_bytes(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def _shown(value: str) -> str:
    """A field as readable text: undecodable bytes appear as \\xNN, as in the file."""
    if _has_bad_bytes(value):
        return value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
    return value

"""Daily order files dropped in the landing folder: naming, format rotation, writing, reading.

Every format carries the same columns with the same types (see ORDERS_SCHEMA), so a
loader can treat the folder as one table whatever the file type. Timestamps are UTC:
ISO-8601 text with an explicit '+00:00' offset in CSV and JSONL, timestamp[us, UTC]
in Parquet.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

# Formats rotate by day: day 0 CSV, day 1 JSONL, day 2 Parquet, day 3 CSV, ...
FORMATS = ("csv", "jsonl", "parquet")

TIMESTAMP = pa.timestamp("us", tz="UTC")
ORDERS_SCHEMA = pa.schema(
    [
        ("order_id", pa.int64()),
        ("customer_id", pa.int64()),
        ("product_id", pa.int64()),
        ("quantity", pa.int64()),
        ("unit_price", pa.float64()),
        ("status", pa.string()),
        ("ordered_at", TIMESTAMP),
        ("updated_at", TIMESTAMP),
    ]
)
ORDER_COLUMNS = tuple(ORDERS_SCHEMA.names)
TIMESTAMP_COLUMNS = ("ordered_at", "updated_at")


def orders_dir(state_dir: Path) -> Path:
    return state_dir / "landing" / "orders"


def file_format(day: int) -> str:
    return FORMATS[day % len(FORMATS)]


def orders_file(state_dir: Path, day: int) -> Path:
    return orders_dir(state_dir) / f"orders_day{day:03d}.{file_format(day)}"


def iso_utc(moment: datetime) -> str:
    """'2026-11-01T09:30:00+00:00': the text form used in CSV, JSONL and the API."""
    return moment.astimezone(timezone.utc).isoformat()


def _text_row(row: dict) -> dict:
    out = dict(row)
    for column in TIMESTAMP_COLUMNS:
        out[column] = iso_utc(row[column])
    return out


def _csv_bytes(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ORDER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        text = _text_row(row)
        # Two decimals keep every price recognisably a float ('20.00', not '20').
        text["unit_price"] = f"{row['unit_price']:.2f}"
        writer.writerow(text)
    return buffer.getvalue().encode()


def _jsonl_bytes(rows: list[dict]) -> bytes:
    lines = []
    for row in rows:
        text = _text_row(row)
        text["unit_price"] = float(row["unit_price"])
        lines.append(json.dumps({name: text[name] for name in ORDER_COLUMNS}))
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _parquet_bytes(rows: list[dict]) -> bytes:
    table = pa.Table.from_pylist(
        [{name: row[name] for name in ORDER_COLUMNS} for row in rows], schema=ORDERS_SCHEMA
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


_ENCODERS = {"csv": _csv_bytes, "jsonl": _jsonl_bytes, "parquet": _parquet_bytes}


def write_orders_file(state_dir: Path, day: int, rows: list[dict]) -> Path:
    """Drop one day's order rows (dicts with aware datetimes) as a new landing file.

    A file that already exists is left alone: landing files are immutable, and
    loaders rely on modification times to find what is new. The content is
    deterministic, so an existing file for the day (left by an interrupted
    advance) already holds the same rows.
    """
    path = orders_file(state_dir, day)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    data = _ENCODERS[file_format(day)](rows)
    # Write next to the landing folder, then rename into it: a loader globbing the
    # folder never sees a half-written or temporary file.
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_orders_file(path: Path) -> pa.Table:
    """Read any landing file back as an Arrow table with exactly ORDERS_SCHEMA."""
    suffix = path.suffix.lstrip(".")
    if suffix == "parquet":
        table = pq.read_table(path)
    elif suffix == "csv":
        table = pa_csv.read_csv(
            path, convert_options=pa_csv.ConvertOptions(column_types=ORDERS_SCHEMA)
        )
    elif suffix == "jsonl":
        # The JSON reader cannot parse offsets into timestamps, so read text and convert.
        text_schema = pa.schema(
            [
                pa.field(f.name, pa.string() if f.name in TIMESTAMP_COLUMNS else f.type)
                for f in ORDERS_SCHEMA
            ]
        )
        table = pa_json.read_json(
            path, parse_options=pa_json.ParseOptions(explicit_schema=text_schema)
        )
        columns = {
            name: (
                pa.array(
                    [datetime.fromisoformat(v) for v in table[name].to_pylist()], type=TIMESTAMP
                )
                if name in TIMESTAMP_COLUMNS
                else table[name]
            )
            for name in ORDER_COLUMNS
        }
        table = pa.table(columns)
    else:
        raise ValueError(f"not an orders landing file: {path}")
    return table.select(list(ORDER_COLUMNS)).cast(ORDERS_SCHEMA)

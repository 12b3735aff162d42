"""Parse one block of a CSV or JSONL landing file where it breaks: good rows go on, bad lines are set aside.

A clean block is parsed by Arrow's and Polars' native readers. The per-line Python path runs only for
a block in which the native reader finds a problem, so it locates each bad line exactly while a large
clean file costs what a native read costs.

Every row, good or rejected, carries its 1-based line in the file so a rejection can say where it came from.
Rows leave here as text (CSV) or as JSON gave them; connectors.filesystem.column_types types them.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Callable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from connectors.filesystem.blocks import Block, record_blocks, record_lines

LINE_COLUMN = "_line"
# In the record of a line that could not be read: its text, bad bytes shown as \xNN.
RAW_LINE = "_raw_line"


@dataclass
class Rejection:
    line: int
    record: dict
    rule: str  # "columns", "encoding", "json" or "cast"
    reason: str


@dataclass
class ParsedFile:
    frame: pl.DataFrame  # good rows with LINE_COLUMN
    rejections: list[Rejection]


# -- CSV -------------------------------------------------------------------------------------------------------


def csv_blocks(stream, known_types: Callable[[], dict[str, pa.DataType]] | None = None) -> Iterator[ParsedFile]:
    """A CSV file with a header line, block by block; each data line must have the header's number of fields.

    ``known_types`` gives the column types the file's earlier blocks settled on: a block whose values
    all fit them is read typed, which is several times faster than reading text and casting it.
    """
    blocks = record_blocks(stream, quoted=True)
    first = next(blocks, None)
    if first is None:
        return
    header, rest = _split_header(first)
    if rest.data:
        yield read_csv_block(rest, header)
    for block in blocks:
        yield read_csv_block(block, header, known_types() if known_types else None)


def _split_header(block: Block) -> tuple[list[str], Block]:
    data = block.data
    end = data.find(b"\n")
    while end >= 0 and data.count(b'"', 0, end) % 2:  # a header field may be quoted and hold a line break
        end = data.find(b"\n", end + 1)
    header_bytes = data[: end + 1] if end >= 0 else data
    text = header_bytes.decode("utf-8", errors="surrogateescape")
    header = next(csv.reader(io.StringIO(text, newline="")), [])
    rest = Block(data[len(header_bytes):], block.first_line + header_bytes.count(b"\n"))
    return [_shown(name) for name in header], rest


def read_csv_block(block: Block, header: list[str], types: dict[str, pa.DataType] | None = None) -> ParsedFile:
    """The block's rows, typed as ``types`` says when every value fits, else as text (typed later)."""
    native = _csv_native(block, header, types) if types else None
    if native is None:
        native = _csv_native(block, header, {name: pa.string() for name in header})
    return native if native is not None else _csv_by_line(block, header)


def _csv_native(block: Block, header: list[str], types: dict[str, pa.DataType]) -> ParsedFile | None:
    """Arrow's multi-threaded reader; None when a line is off (field count, UTF-8) or a value does not fit."""
    if len(set(header)) != len(header):
        return None
    try:
        table = pacsv.read_csv(
            io.BytesIO(block.data),
            read_options=pacsv.ReadOptions(column_names=header),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=types, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
                true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"],
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    lines = _lines_of(block, table.num_rows)
    if lines.len() != table.num_rows:  # rows and lines disagree: let the line-by-line path say why
        return None
    frame = pl.from_arrow(table) if table.num_rows else pl.DataFrame(schema={name: pl.String for name in header})
    return ParsedFile(frame.with_columns(lines.alias(LINE_COLUMN)), [])


def _lines_of(block: Block, rows: int) -> pl.Series:
    """The line of each row; when rows and lines match one to one (the usual case) no scan is needed."""
    if rows == block.lines():  # every line is one record: no blank lines and no line breaks inside quotes
        return pl.int_range(block.first_line, block.first_line + rows, eager=True, dtype=pl.Int64)
    return record_lines(block)


def _csv_by_line(block: Block, header: list[str]) -> ParsedFile:
    """Record by record with the csv module: handles every quoting, locates bad lines exactly."""
    # surrogateescape keeps undecodable bytes visible per field instead of failing the whole block.
    text = block.data.decode("utf-8", errors="surrogateescape")
    text_lines = text.split("\n")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[str | None]] = []
    lines: list[int] = []
    rejections: list[Rejection] = []
    previous_end = 0
    for fields in reader:
        first, previous_end = previous_end + 1, reader.line_num
        line = block.first_line + first - 1
        if not fields:
            continue
        # The line as it is in the file stays in the record: a replay loads the row only once it is removed.
        record: dict = dict(zip(header, (_shown(value) for value in fields), strict=False))
        record[RAW_LINE] = _shown("\n".join(text_lines[first - 1 : previous_end]).rstrip("\r"))
        undecodable = [name for name, value in zip(header, fields, strict=False) if _has_bad_bytes(value)]
        if undecodable or any(_has_bad_bytes(value) for value in fields[len(header):]):
            where = ", ".join(undecodable) or "an extra field"
            rejections.append(Rejection(line, record, "encoding", f"not valid UTF-8 in {where}"))
        elif len(fields) != len(header):
            reason = f"{len(fields)} fields, the header has {len(header)}"
            rejections.append(Rejection(line, record, "columns", reason))
        else:
            rows.append([value or None for value in fields])
            lines.append(line)
    frame = pl.DataFrame(rows, schema={name: pl.String for name in header}, orient="row")
    return ParsedFile(frame.with_columns(pl.Series(LINE_COLUMN, lines, dtype=pl.Int64)), rejections)


# -- JSONL -----------------------------------------------------------------------------------------------------


def jsonl_blocks(stream) -> Iterator[ParsedFile]:
    """One JSON object per line, block by block."""
    for block in record_blocks(stream, quoted=False):
        yield read_jsonl_block(block)


def read_jsonl_block(block: Block) -> ParsedFile:
    """A line that is not a JSON object (or not UTF-8) is rejected alone."""
    content = block.data
    try:
        frame = pl.read_ndjson(io.BytesIO(content), infer_schema_length=10_000)
        if not frame.columns or content.count(b"\n") + (not content.endswith(b"\n")) == frame.height:
            numbers = pl.int_range(block.first_line, block.first_line + frame.height, eager=True).cast(pl.Int64)
            return ParsedFile(frame.with_columns(numbers.alias(LINE_COLUMN)), [])
    except Exception:  # a broken line or a type clash: find it line by line
        pass
    rows, lines, rejections = [], [], []
    for number, raw in enumerate(content.split(b"\n"), start=block.first_line):
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
    # strict=False: a field holding numbers on some lines and text on others becomes text, then typed later.
    frame = pl.DataFrame(rows, infer_schema_length=None, strict=False) if rows else pl.DataFrame()
    return ParsedFile(frame.with_columns(pl.Series(LINE_COLUMN, lines, dtype=pl.Int64)), rejections)


def _has_bad_bytes(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def _shown(value: str) -> str:
    """A field as readable text: undecodable bytes appear as \\xNN, as in the file."""
    if _has_bad_bytes(value):
        return value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
    return value

"""Parse a JSONL landing file block by block: one JSON object per line, a bad line is set aside alone."""

from __future__ import annotations

import io
import json
from typing import Iterator

import polars as pl

from connectors.filesystem.blocks import LINES, Block, record_blocks
from connectors.filesystem.parsed import LINE_COLUMN, RAW_LINE, ParsedFile, Rejection


def jsonl_blocks(stream) -> Iterator[ParsedFile]:
    for block in record_blocks(stream, LINES):
        yield read_jsonl_block(block)


def read_jsonl_block(block: Block) -> ParsedFile:
    """A line that is not a JSON object (or not UTF-8) is rejected alone."""
    content = block.data
    lines = block.lines()
    try:
        frame = pl.read_ndjson(io.BytesIO(content), infer_schema_length=10_000)
        if not frame.columns or lines == frame.height:
            numbers = pl.int_range(block.first_line, block.first_line + frame.height, eager=True).cast(pl.Int64)
            return ParsedFile(frame.with_columns(numbers.alias(LINE_COLUMN)), [], lines=lines)
    except Exception:  # a broken line or a type clash: find it line by line
        pass
    rows, numbers, rejections, skipped = [], [], [], 0
    for number, raw in enumerate(content.split(b"\n"), start=block.first_line):
        if not raw.strip():
            skipped += number - block.first_line < lines
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
        numbers.append(number)
    # strict=False: a field holding numbers on some lines and text on others becomes text, typed later.
    frame = pl.DataFrame(rows, infer_schema_length=None, strict=False) if rows else pl.DataFrame()
    return ParsedFile(frame.with_columns(pl.Series(LINE_COLUMN, numbers, dtype=pl.Int64)), rejections,
                      skipped=skipped, lines=lines)

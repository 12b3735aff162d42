"""Parse a JSONL landing file block by block: one JSON object per line, a bad line is set aside alone.

A clean block is parsed by Polars. Before it is, lines longer than ``max_line_bytes`` (cut out while
the file is read, connectors.filesystem.blocks) and lines nested deeper than ``max_nesting_depth``
(connectors.filesystem.json_depth) are set aside, so no parser ever holds or descends into them.

A field whose values are objects or arrays is a JSON column: each value is kept as its JSON text and
lands as jsonb. A field holding objects on some lines and text on others is text, the objects as JSON.
Those values are written by Python's json module from each line: Polars' own text for them is not
always valid JSON.
"""

from __future__ import annotations

import codecs
import io
import json
from typing import Callable, Iterator

import polars as pl

from connectors.filesystem.blocks import LINES, Block, LongLine, record_blocks
from connectors.filesystem.json_depth import too_deep
from connectors.filesystem.parsed import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_NESTING_DEPTH,
    LINE_COLUMN,
    RAW_LINE,
    ParsedFile,
    ReadLimits,
    Rejection,
    distinct_names,
    long_line_rejected,
    shown_head,
)

BOM = codecs.BOM_UTF8
INFER_ROWS = 10_000
# Where a block may hold a NUL character: the byte itself (not valid JSON), or JSON's escape for it.
NUL_BYTE, NUL_ESCAPE = b"\x00", b"\\u0000"


def jsonl_blocks(stream, limits: ReadLimits = DEFAULT_LIMITS, is_json: Callable[[str], bool] = lambda name: False,
                 normalize: Callable[[str], str] = str) -> Iterator[ParsedFile]:
    """``is_json``: whether a field is a JSON column already (its plain values are written as JSON too);
    ``normalize``: how the destination names a field (fields it would make one are kept apart)."""
    for block in record_blocks(stream, LINES, max_line_bytes=limits.max_line_bytes):
        if isinstance(block, LongLine):
            yield long_line_rejected(block, limits.max_line_bytes)
        else:
            yield read_jsonl_block(block, limits.max_nesting_depth, is_json, normalize)


def read_jsonl_block(block: Block, max_nesting_depth: int = DEFAULT_MAX_NESTING_DEPTH,
                     is_json: Callable[[str], bool] = lambda name: False,
                     normalize: Callable[[str], str] = str) -> ParsedFile:
    """A line that is not a JSON object (or not UTF-8, or nested too deep) is rejected alone."""
    content = block.data
    # (Each search looks for one byte first: a byte is found at memory speed, a sequence is not.)
    if b"\xef" in content and BOM in content:  # files joined with `cat`, each with its mark: marks start lines
        content = content.removeprefix(BOM).replace(b"\n" + BOM, b"\n")
    lines = block.lines()
    rejections = []
    deep = too_deep(content, max_nesting_depth)
    if deep:
        parts = content.split(b"\n")
        for index, reason in sorted(deep.items()):
            rejections.append(Rejection(block.first_line + index, {RAW_LINE: shown_head(parts[index])}, "depth",
                                        reason))
            parts[index] = b""  # the line stays, empty: the lines after it keep their numbers
        content = b"\n".join(parts)
    parsed, numbers = (_by_polars(content, block.first_line, lines, set(deep), is_json)
                       or _by_line(content, block.first_line, lines, set(deep), is_json))
    names, parsed.notes = distinct_names(parsed.frame.columns, normalize)  # before the line column joins them
    if parsed.notes:
        renamed = dict(zip(parsed.frame.columns, names, strict=True))
        parsed.frame = parsed.frame.rename(renamed)
        parsed.json_columns = frozenset(renamed[name] for name in parsed.json_columns)
    parsed.frame = parsed.frame.with_columns(numbers.alias(LINE_COLUMN))
    parsed.rejections = rejections + parsed.rejections
    parsed.may_hold_nul = NUL_BYTE in content or (b"\\" in content and NUL_ESCAPE in content)
    return parsed


def _by_polars(content: bytes, first_line: int, lines: int, set_aside: set[int],
               is_json: Callable[[str], bool]) -> tuple[ParsedFile, pl.Series] | None:
    """The block as Polars reads it and each row's line, or None when a line is broken, blank or a type clashes."""
    try:
        schema = pl.scan_ndjson(io.BytesIO(content), infer_schema_length=INFER_ROWS).collect_schema()
        nested = [name for name, dtype in schema.items() if dtype.is_nested() or is_json(name)]
        # Objects and arrays are not parsed into types (that is where deep nesting costs): their JSON is taken
        # from the lines below.
        scalars = {name: dtype for name, dtype in schema.items() if name not in nested}
        frame = pl.read_ndjson(io.BytesIO(content), schema=scalars) if scalars else pl.DataFrame()
    except Exception:  # a broken line or a type clash: find it line by line
        return None
    numbers = pl.int_range(first_line, first_line + lines, eager=True, dtype=pl.Int64)
    if set_aside:
        numbers = numbers.filter(~numbers.is_in([first_line + index for index in set_aside]))
    # Text that may be an object or array as Polars writes it: taken from the line instead.
    mixed = [name for name, dtype in frame.schema.items()
             if dtype == pl.String and frame[name].str.contains(r"^[\[{]").any()]
    if nested or mixed:
        objects = _objects(content, set_aside)
        if objects is None or len(objects) != numbers.len():
            return None
        frame = _with_json_values(frame, objects, nested, mixed)
    elif frame.height != numbers.len():
        if frame.width:  # blank lines: only line by line says where
            return None
        numbers = numbers.head(frame.height)
    return ParsedFile(frame, [], lines=lines, json_columns=frozenset(nested)), numbers


def _objects(content: bytes, set_aside: set[int]) -> list[dict] | None:
    try:
        return [json.loads(line) for index, line in enumerate(content.split(b"\n"))
                if index not in set_aside and line.strip()]
    except (ValueError, RecursionError):
        return None


def _with_json_values(frame: pl.DataFrame, objects: list[dict], nested: list[str], mixed: list[str]) -> pl.DataFrame:
    """``frame`` with the objects and arrays of ``nested`` and ``mixed`` fields as their JSON text."""
    columns = []
    for name in nested:  # a JSON column: every value is JSON, also a scalar past the rows the schema was read from
        columns.append(pl.Series(name, [_json_text(row.get(name)) for row in objects], dtype=pl.String))
    for name in mixed:  # a text column: only its objects and arrays become JSON
        values = [row.get(name) for row in objects]
        if any(isinstance(value, (dict, list)) for value in values):
            texts = [_json_text(value) if isinstance(value, (dict, list)) else text
                     for value, text in zip(values, frame[name].to_list(), strict=True)]
            columns.append(pl.Series(name, texts, dtype=pl.String))
    if not frame.width:
        return pl.DataFrame(columns)
    return frame.with_columns(columns) if columns else frame


def _by_line(content: bytes, first_line: int, lines: int, set_aside: set[int],
             is_json: Callable[[str], bool]) -> tuple[ParsedFile, pl.Series]:
    rows, numbers, rejections, skipped = [], [], [], 0
    for index, raw in enumerate(content.split(b"\n")):
        number = first_line + index
        if index in set_aside:
            continue
        if not raw.strip():
            skipped += index < lines
            continue
        try:
            # A NUL byte is not allowed in JSON text: the row is read, and the NUL rule decides about it.
            value = json.loads(raw.decode("utf-8"), strict=NUL_BYTE not in raw)
        except UnicodeDecodeError:
            shown = raw.decode("utf-8", errors="backslashreplace")
            rejections.append(Rejection(number, {RAW_LINE: shown}, "encoding", "line is not valid UTF-8"))
            continue
        except (ValueError, RecursionError) as error:
            shown = raw.decode("utf-8", errors="backslashreplace")
            rejections.append(Rejection(number, {RAW_LINE: shown}, "json", f"not a JSON object ({error})"))
            continue
        if not isinstance(value, dict):
            rejections.append(Rejection(number, {RAW_LINE: raw.decode()}, "json", "not a JSON object"))
            continue
        rows.append(value)
        numbers.append(number)
    json_columns = _json_fields(rows, is_json)
    # strict=False: a field holding numbers on some lines and text on others becomes text, typed later.
    frame = pl.DataFrame(rows, infer_schema_length=None, strict=False) if rows else pl.DataFrame()
    return (ParsedFile(frame, rejections, skipped=skipped, lines=lines, json_columns=json_columns),
            pl.Series(LINE_COLUMN, numbers, dtype=pl.Int64))


def _json_fields(rows: list[dict], is_json: Callable[[str], bool]) -> frozenset[str]:
    """Objects and arrays written as JSON text in ``rows``; the fields that hold nothing else, and those that are
    JSON columns already (every value written as JSON), are JSON columns."""
    holding: dict[str, bool] = {}  # field -> holds only objects and arrays (and nulls) so far
    for row in rows:
        for name, value in row.items():
            if isinstance(value, (dict, list)):
                holding.setdefault(name, True)
            elif value is not None:
                holding[name] = holding.get(name, True) and is_json(name)
    json_columns = frozenset(name for name, only in holding.items() if only)
    for row in rows:
        for name, value in row.items():
            if value is not None and (name in json_columns or isinstance(value, (dict, list))):
                row[name] = _json_text(value)
    return json_columns


def _json_text(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)

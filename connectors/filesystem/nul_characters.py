"""Values holding NUL characters, which PostgreSQL cannot store: the row is set aside, or the characters stripped.

PostgreSQL text cannot hold the character U+0000, nor jsonb its escape ``\\u0000``; a landing file may
(a CSV field with a zero byte, a JSONL string with ``\\u0000``, a Parquet string). The rule and its
words are every connector's (headwater.common.nul_characters, setting ``nul_characters: reject | strip``):

- ``reject`` (the default): the row goes to the table's quarantine (rule ``nul_character``) with a
  reason naming the column, at its ``file:line``; the other rows load, and the value is never
  changed behind the user's back. Its record shows the NUL as JSON's ``\\u0000``.
- ``strip``: the NUL characters are removed from the value and the row loads.

A reader says whether a block's bytes hold a zero byte (or the escape) at all, one search per block;
only such a block is looked at value by value.
"""

from __future__ import annotations

import json
from dataclasses import replace

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from connectors.filesystem.parsed import LINE_COLUMN, ParsedFile, Rejection
from headwater.common.nul_characters import (
    JSON_NUL,
    NUL,
    RULE,
    STRIP,
    NulHandling,
    json_holds_nul,
    nul_reason,
    without_nul,
)


def nul_checked(parsed: ParsedFile, handling: NulHandling) -> ParsedFile:
    """``parsed`` with each row holding a NUL set aside (``reject``), or with the NUL characters removed."""
    if not parsed.may_hold_nul or not parsed.frame.height:
        return parsed
    frame = parsed.frame
    found = {}
    for name, dtype in frame.schema.items():
        if dtype != pl.String:
            continue
        hits = frame[name].str.contains(NUL, literal=True).fill_null(False)
        if name in parsed.json_columns:  # JSON text writes the character as its escape
            hits = hits | _json_hits(frame[name])
        if hits.any():
            found[name] = hits
    if not found:
        return parsed
    if handling == STRIP:
        return replace(parsed, frame=frame.with_columns(
            [_stripped(frame[name], name in parsed.json_columns) for name in found]))
    holding = pl.select(pl.any_horizontal(list(found.values()))).to_series()
    rejections = list(parsed.rejections)
    for index in holding.arg_true().to_list():
        row = frame.row(index, named=True)
        columns = [name for name, hits in found.items() if hits[index]]
        record = {key: value for key, value in row.items() if key != LINE_COLUMN}
        rejections.append(Rejection(row[LINE_COLUMN], record, RULE, nul_reason(columns)))
    return replace(parsed, frame=frame.filter(~holding), rejections=rejections)


def holds_zero_byte(batch: pa.RecordBatch) -> bool:
    """Whether any text column of ``batch`` has a zero byte in its character data: one scan of each buffer."""
    for column in batch.columns:
        if column.type not in (pa.string(), pa.large_string()):
            continue
        data = column.buffers()[2]
        if data is not None and data.size and pc.min(pa.Array.from_buffers(pa.uint8(), data.size, [None, data])
                                                     ).as_py() == 0:
            return True
    return False


def _json_hits(values: pl.Series) -> pl.Series:
    """The JSON texts that hold a NUL: the escape's text may also be an escaped backslash and ``u0000``."""
    escaped = values.str.contains(JSON_NUL, literal=True).fill_null(False)
    if not escaped.any():
        return escaped
    texts = values.to_list()
    return pl.Series([bool(hit) and json_holds_nul(json.loads(texts[i])) for i, hit in enumerate(escaped.to_list())])


def _stripped(values: pl.Series, holds_json: bool) -> pl.Series:
    values = values.str.replace_all(NUL, "", literal=True)
    if not holds_json or not values.str.contains(JSON_NUL, literal=True).fill_null(False).any():
        return values
    # Only the values holding the escape are parsed: the rest of each JSON text stays as it was.
    return pl.Series(values.name, [
        json.dumps(without_nul(json.loads(text)), ensure_ascii=False) if text and JSON_NUL in text else text
        for text in values.to_list()], dtype=pl.String)

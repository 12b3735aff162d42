"""What the readers of landing files hand on: rows with their lines, and the lines set aside with why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import polars as pl

from connectors.filesystem.blocks import LongLine
from headwater.common.file_rows import FILE_ROW_COLUMNS

# Columns every row of a landing file gets: where it came from (headwater.common.file_rows), and dlt's own.
ADDED_COLUMNS = (*sorted(FILE_ROW_COLUMNS), "_dlt_load_id", "_dlt_id")

LINE_COLUMN = "_line"
# In the record of a line that could not be read: its text, bad bytes shown as \xNN.
RAW_LINE = "_raw_line"
# A line too long to keep is shown in its quarantine record by its first characters.
SHOWN_CHARACTERS = 1000
# A line of 1 GiB holds the largest text value PostgreSQL stores: any longer line could not load anyway.
DEFAULT_MAX_LINE_BYTES = 1 << 30
# How deep JSON objects and arrays may nest (System.Text.Json's default): real data stays far below it,
# while a thousand levels make a JSON parser's schema inference take minutes and gigabytes.
DEFAULT_MAX_NESTING_DEPTH = 64


@dataclass(frozen=True)
class ReadLimits:
    """What a reader takes before it sets a line aside instead of holding it in memory or parsing it."""

    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_nesting_depth: int = DEFAULT_MAX_NESTING_DEPTH


DEFAULT_LIMITS = ReadLimits()


@dataclass
class Rejection:
    line: int
    record: dict
    rule: str  # "columns", "encoding", "quote", "json", "size", "depth", "nul_character" or "cast"
    reason: str


@dataclass
class ParsedFile:
    """One block of a file: good rows (with LINE_COLUMN) and rejected lines, plus line accounting."""

    frame: pl.DataFrame
    rejections: list[Rejection]
    skipped: int = 0  # lines that hold no record: blank, comment, preamble, header
    lines: int = 0  # physical lines of the file the block covers
    padded: int = 0  # rows shorter than the header, filled with nulls
    notes: list[str] = field(default_factory=list)
    json_columns: frozenset[str] = frozenset()  # text columns holding JSON (objects and arrays of a JSONL file)
    may_hold_nul: bool = False  # the block's bytes hold a NUL character (or JSON's \u0000)


def no_rows() -> pl.DataFrame:
    """A block's rows when it has none: still with the line column every block's rows carry."""
    return pl.DataFrame(schema={LINE_COLUMN: pl.Int64})


def has_bad_bytes(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def shown_head(raw: bytes) -> str:
    """The first characters of a line too long to keep, bad bytes shown as \\xNN."""
    text = raw[: SHOWN_CHARACTERS * 4].decode("utf-8", errors="backslashreplace")
    if len(text) <= SHOWN_CHARACTERS and len(raw) <= SHOWN_CHARACTERS * 4:
        return text
    return text[:SHOWN_CHARACTERS] + "…"


def shown(value: str) -> str:
    """A field as readable text: undecodable bytes appear as \\xNN, as in the file."""
    if has_bad_bytes(value):
        return value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
    return value


def long_line_rejected(line: LongLine, limit: int) -> ParsedFile:
    """A line longer than ``max_line_bytes``: set aside, shown by its first characters."""
    reason = f"the line is {line.size:,} bytes long, longer than max_line_bytes ({limit:,})"
    return ParsedFile(no_rows(), [Rejection(line.first_line, {RAW_LINE: shown_head(line.head)}, "size", reason)],
                      lines=1)


def distinct_names(names: list[str], normalize: Callable[[str], str] = str) -> tuple[list[str], list[str]]:
    """Column names that stay apart once the destination normalizes them (``Name`` and ``name`` are one column
    to snake_case), and a note for each one renamed.

    A repeated name gets ``_2``, ``_3``, ... as DuckDB and pandas name them; a name already in its normalized
    form keeps it (``name`` stays ``name`` beside ``Name``, which becomes ``Name_2``), so the renaming does not
    depend on the order of the columns. A column named like one Headwater or dlt adds to every row
    (``_line``, ``_file_name``, ``_dlt_load_id``, ...) is renamed too: it would be overwritten.
    """
    taken: dict[str, int] = {normalize(name): -1 for name in ADDED_COLUMNS}  # normalized name -> its position
    result: list[str | None] = [None] * len(names)
    order = sorted(range(len(names)), key=lambda position: names[position] != normalize(names[position]))
    notes = []
    for position in order:
        name = names[position]
        key = normalize(name)
        if key not in taken:
            taken[key] = position
            result[position] = name
            continue
        suffix = 2
        while normalize(f"{name}_{suffix}") in taken or f"{name}_{suffix}" in names:
            suffix += 1
        renamed = f"{name}_{suffix}"
        taken[normalize(renamed)] = position
        result[position] = renamed
        first = taken[key]
        if first < 0:
            notes.append(f"column {position + 1} is named {name!r}, a column added to every row (where it came "
                         f"from): loaded as {renamed!r}")
        elif names[first] == name:
            notes.append(f"column {position + 1} repeats the name {name!r} of column {first + 1}: "
                         f"loaded as {renamed!r}")
        else:
            notes.append(f"columns {first + 1} ({names[first]!r}) and {position + 1} ({name!r}) both land as "
                         f"{key!r}: column {position + 1} is loaded as {renamed!r}")
    return [name for name in result if name is not None], notes

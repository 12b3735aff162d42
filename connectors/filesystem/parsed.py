"""What the readers of landing files hand on: rows with their lines, and the lines set aside with why."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

LINE_COLUMN = "_line"
# In the record of a line that could not be read: its text, bad bytes shown as \xNN.
RAW_LINE = "_raw_line"


@dataclass
class Rejection:
    line: int
    record: dict
    rule: str  # "columns", "encoding", "quote", "json" or "cast"
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


def has_bad_bytes(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def shown(value: str) -> str:
    """A field as readable text: undecodable bytes appear as \\xNN, as in the file."""
    if has_bad_bytes(value):
        return value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
    return value

"""Cut a landing file into blocks of whole records, so a file of any size is read in bounded memory.

A block always ends at the end of a line, and for CSV never inside a quoted field (a quoted field
may hold line breaks) nor after an escaped line break (database dumps write a line break inside a
value as a backslash and the break). Each block knows the file line it starts on, so every row read
from it can still say which line of the file it came from.

The input is UTF-8 with LF or CRLF line breaks (connectors.filesystem.text_stream).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

# About 100,000 rows of a typical ten-column file: large enough for vectorised parsing to pay off,
# small enough that peak memory does not depend on the file's size.
BLOCK_BYTES = 16 << 20
# A quote left open this long is a stray quote, not a field: the block is cut at a line break anyway
# and the parser reports the line.
MAX_OPEN_QUOTE_BYTES = 4 * BLOCK_BYTES
NEWLINE, CR, BACKSLASH = 10, 13, 92


@dataclass(frozen=True)
class Framing:
    """What can keep a line break from ending a record: an open quote, or an escape before it."""

    quote: bytes | None = b'"'
    escape: bytes | None = None

    def quotes_before(self, data: bytes, end: int, start: int = 0) -> int:
        if not self.quote:
            return 0
        count = data.count(self.quote, start, end)
        if self.escape:
            count -= data.count(self.escape + self.quote, start, end)
        return count


CSV = Framing()
LINES = Framing(quote=None)


@dataclass
class Block:
    data: bytes
    first_line: int  # 1-based line of the file on which the block starts
    line_breaks: int = -1  # how many line breaks the block holds, when the reader counted them

    def lines(self) -> int:
        """Lines in the block, a last one without a line break included."""
        breaks = self.line_breaks if self.line_breaks >= 0 else self.data.count(b"\n")
        return breaks + (not self.data.endswith(b"\n"))


@dataclass
class LongLine:
    """A line longer than the reader takes: passed over without being held in memory, reported by its start."""

    first_line: int
    size: int  # bytes, without the line break
    head: bytes  # its first bytes, to show what it was


def record_blocks(stream: BinaryIO, framing: Framing = CSV, first_line: int = 1,
                  max_line_bytes: int | None = None) -> Iterator[Block | LongLine]:
    """Blocks of about BLOCK_BYTES from ``stream``, each ending at a record boundary.

    A line that runs on past ``max_line_bytes`` without a break is a LongLine, skipped to its end while
    reading, so no line, however long, is held whole. Where every line is a record (no quotes, no
    escapes: JSONL), a line past the limit inside a block is cut out as a LongLine too.
    """
    limit = max_line_bytes or sys.maxsize
    open_quote_limit = min(MAX_OPEN_QUOTE_BYTES, limit)
    read_size, carry, line = BLOCK_BYTES, b"", first_line
    while True:
        chunk = stream.read(read_size)
        data = carry + chunk if carry else chunk
        if not chunk:
            if data:
                yield from _within_limit(Block(data, line), framing, limit)
            return
        cut = last_record_end(data, framing)
        if cut == 0 and len(data) > open_quote_limit:
            cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) > limit:  # one line, not ended yet, already past the limit
            size, carry, ended = _rest_of_line(stream, len(data))
            yield LongLine(line, size, data[:LONG_LINE_HEAD])
            line += ended
            read_size = BLOCK_BYTES
            continue
        if cut == 0:  # a single record longer than a block: read on until it ends
            carry = data
            read_size = len(data)  # each read doubles what is held, so a long record costs linear time
            continue
        block, carry = data[:cut], data[cut:]
        breaks = block.count(b"\n")
        yield from _within_limit(Block(block, line, breaks), framing, limit)
        line += breaks
        read_size = BLOCK_BYTES


# Bytes of a long line kept to show in its quarantine record.
LONG_LINE_HEAD = 4096


def _rest_of_line(stream: BinaryIO, size: int) -> tuple[int, bytes, bool]:
    """Read past the end of a line of which ``size`` bytes were read: (its size, what follows it, whether it
    ended with a line break)."""
    while True:
        chunk = stream.read(BLOCK_BYTES)
        if not chunk:
            return size, b"", False
        end = chunk.find(b"\n")
        if end >= 0:
            return size + end, chunk[end + 1:], True
        size += len(chunk)


def _within_limit(block: Block, framing: Framing, limit: int) -> Iterator[Block | LongLine]:
    """``block``, with any line longer than ``limit`` cut out as a LongLine where every line is a record.

    Only a block longer than the limit can hold such a line; it is found by jumping a limit's length at a
    time to the last line break before it, so a block of short lines costs a few searches.
    """
    data = block.data
    if len(data) <= limit or framing.quote or framing.escape:
        yield block
        return
    start, piece_start, line = 0, 0, block.first_line
    while len(data) - start > limit:
        before = data.rfind(b"\n", start, start + limit + 1)
        if before >= 0:
            start = before + 1
            continue
        # The line starting at ``start`` is longer than the limit.
        end = data.find(b"\n", start + limit)
        end = len(data) if end < 0 else end
        if start > piece_start:
            piece = data[piece_start:start]
            yield Block(piece, line)
            line += piece.count(b"\n")
        yield LongLine(line, end - start, data[start:start + LONG_LINE_HEAD])
        line += end < len(data)
        start = piece_start = end + 1
    if piece_start == 0:
        yield block
    elif piece_start < len(data):
        yield Block(data[piece_start:], line)


def last_record_end(data: bytes, framing: Framing = CSV) -> int:
    """The offset just after the last line break that ends a record, or 0 when there is none."""
    end = data.rfind(b"\n")
    if framing.escape:
        while end > 0 and _escaped(data, end, framing.escape):
            end = data.rfind(b"\n", 0, end)
    if not framing.quote:
        return end + 1
    # Doubled quotes ("") inside a field count twice, so an odd count means "inside a field".
    quotes = framing.quotes_before(data, end) if end >= 0 else 0
    while end >= 0 and (quotes % 2 or (framing.escape and end > 0 and _escaped(data, end, framing.escape))):
        previous = data.rfind(b"\n", 0, end)
        quotes -= framing.quotes_before(data, end, previous + 1)
        end = previous
    return end + 1


def _escaped(data: bytes, position: int, escape: bytes) -> bool:
    """The byte at ``position`` follows an escape character that is not itself escaped."""
    before = position - 1
    if before >= 0 and data[before:before + 1] == b"\r":
        before -= 1
    run = 0
    while before >= 0 and data[before:before + 1] == escape:
        run += 1
        before -= 1
    return run % 2 == 1


def record_lines(block: Block, framing: Framing = CSV) -> tuple[pl.Series, int]:
    """The file line on which each non-blank record of a block starts, and how many blank lines it has.

    Computed without a Python loop: line breaks inside quotes or after an escape do not end a record.
    """
    data = block.data
    size = len(data)
    if size == 0:
        return pl.Series([], dtype=pl.Int64), 0
    raw = byte_array(data)
    newlines = positions_of(raw, NEWLINE)
    ends = newlines
    if framing.escape:
        ends = unescaped(data, raw, ends, framing.escape)
    if framing.quote:
        quotes = positions_of(raw, framing.quote[0])
        if framing.escape and quotes.len():
            quotes = unescaped(data, raw, quotes, framing.escape)
        if quotes.len():
            ends = ends.filter(quotes.search_sorted(ends, side="left") % 2 == 0)
    if ends.len() == 0 or ends[-1] != size - 1:  # a last record without a line break
        ends = pl.concat([ends, pl.Series([size], dtype=pl.Int64)])
    starts = pl.concat([pl.Series([0], dtype=pl.Int64), ends.head(-1) + 1])
    frame = pl.DataFrame({"start": starts, "end": ends})
    # A blank record is empty or a lone carriage return; CSV readers skip it, so it has no row.
    lengths = frame["end"] - frame["start"]
    blank = (lengths == 0) | ((lengths == 1) & byte_at(raw, frame["start"]).eq(CR))
    kept = frame.filter(~blank)["start"]
    return (newlines.search_sorted(kept, side="left") + block.first_line).cast(pl.Int64), int(blank.sum())


def byte_array(data: bytes) -> pa.Array:
    """The bytes as an Arrow uint8 array, without copying them."""
    return pa.Array.from_buffers(pa.uint8(), len(data), [None, pa.py_buffer(data)])


def positions_of(raw: pa.Array, value: int) -> pl.Series:
    return pl.Series(pc.indices_nonzero(pc.equal(raw, value))).cast(pl.Int64)


def unescaped(data: bytes, raw: pa.Array, positions: pl.Series, escape: bytes) -> pl.Series:
    """``positions`` without those an escape character makes part of a value."""
    suspects = _after_byte(raw, positions, escape[0]) | (
        _after_byte(raw, positions, CR) & _after_byte(raw, positions - 1, escape[0]))
    if not suspects.any():
        return positions
    # Few line breaks follow a backslash: count the run before each of those ("\\\\" is an escaped backslash).
    escaped = {p for p in positions.filter(suspects).to_list() if _escaped(data, p, escape)}
    return positions.filter(~positions.is_in(list(escaped))) if escaped else positions


def _after_byte(raw: pa.Array, positions: pl.Series, value: int) -> pl.Series:
    """For each position, whether the byte just before it is ``value``."""
    before = positions - 1
    return (before >= 0) & byte_at(raw, before).eq(value)


def byte_at(raw: pa.Array, positions: pl.Series) -> pl.Series:
    """The byte at each position (positions outside the data read as its first or last byte)."""
    inside = positions.clip(0, len(raw) - 1)
    return pl.Series(pc.take(raw, pa.array(inside.to_arrow()))).cast(pl.Int64)

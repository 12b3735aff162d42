"""Cut a landing file into blocks of whole records, so a file of any size is read in bounded memory.

A block always ends at the end of a line, and for CSV never inside a double-quoted field (a quoted
field may hold line breaks). Each block knows the file line it starts on, so every row read from it
can still say which line of the file it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

# About 100,000 rows of a typical ten-column file: large enough for vectorised parsing to pay off,
# small enough that peak memory does not depend on the file's size.
BLOCK_BYTES = 16 << 20
NEWLINE, QUOTE = 10, 34


@dataclass
class Block:
    data: bytes
    first_line: int  # 1-based line of the file on which the block starts
    line_breaks: int = -1  # how many line breaks the block holds, when the reader counted them

    def lines(self) -> int:
        """Lines in the block, a last one without a line break included."""
        breaks = self.line_breaks if self.line_breaks >= 0 else self.data.count(b"\n")
        return breaks + (not self.data.endswith(b"\n"))


def record_blocks(stream: BinaryIO, quoted: bool, first_line: int = 1) -> Iterator[Block]:
    """Blocks of about BLOCK_BYTES from ``stream``, each ending at a record boundary.

    ``quoted``: records are CSV, where a line break inside double quotes does not end a record.
    """
    block_bytes, carry, line = BLOCK_BYTES, b"", first_line
    while True:
        chunk = stream.read(block_bytes)
        data = carry + chunk if carry else chunk
        if not chunk:
            if data:
                yield Block(data, line)
            return
        cut = last_record_end(data, quoted)
        if cut == 0:  # a single record longer than a block: read on until it ends
            carry = data
            continue
        block, carry = data[:cut], data[cut:]
        breaks = block.count(b"\n")
        yield Block(block, line, breaks)
        line += breaks


def last_record_end(data: bytes, quoted: bool) -> int:
    """The offset just after the last line break that ends a record, or 0 when there is none."""
    end = data.rfind(b"\n")
    if not quoted:
        return end + 1
    # Doubled quotes ("") inside a field count twice, so an odd count means "inside a field".
    quotes = data.count(b'"', 0, end) if end >= 0 else 0
    while end >= 0 and quotes % 2:
        previous = data.rfind(b"\n", 0, end)
        quotes -= data.count(b'"', previous + 1, end)
        end = previous
    return end + 1


def record_lines(block: Block) -> pl.Series:
    """The file line on which each non-blank record of a CSV block starts, computed without a Python loop."""
    data = block.data
    size = len(data)
    if size == 0:
        return pl.Series([], dtype=pl.Int64)
    raw = pa.Array.from_buffers(pa.uint8(), size, [None, pa.py_buffer(data)])
    newlines = pl.Series(pc.indices_nonzero(pc.equal(raw, NEWLINE))).cast(pl.Int64)
    quotes = pl.Series(pc.indices_nonzero(pc.equal(raw, QUOTE))).cast(pl.Int64)
    ends = newlines
    if quotes.len():
        ends = newlines.filter(quotes.search_sorted(newlines, side="left") % 2 == 0)
    if ends.len() == 0 or ends[-1] != size - 1:  # a last record without a line break
        ends = pl.concat([ends, pl.Series([size], dtype=pl.Int64)])
    starts = pl.concat([pl.Series([0], dtype=pl.Int64), ends.head(-1) + 1])
    frame = pl.DataFrame({"start": starts, "end": ends})
    # A blank record is empty or a lone carriage return; CSV readers skip it, so it has no row.
    lengths = frame["end"] - frame["start"]
    blank = (lengths == 0) | ((lengths == 1) & _byte_at(raw, frame["start"], size).eq(13))
    kept = frame.filter(~blank)["start"]
    return (newlines.search_sorted(kept, side="left") + block.first_line).cast(pl.Int64)


def _byte_at(raw: pa.Array, positions: pl.Series, size: int) -> pl.Series:
    inside = positions.clip(0, size - 1)
    return pl.Series(pc.take(raw, pa.array(inside.to_arrow()))).cast(pl.Int64)

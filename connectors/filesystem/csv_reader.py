"""Parse a CSV landing file in its dialect, block by block, where it breaks: good rows go on, bad lines aside.

A clean block is parsed by Arrow's multi-threaded reader. The per-record Python path (the csv
module, strict about quotes) runs only for a block in which the native reader finds a problem: a
line with the wrong number of fields, bytes that are not UTF-8, or a quote that does not open or
close a field. It locates each bad line exactly, so a large clean file costs what a native read
costs while a broken line never takes its neighbours with it.

Missing values are the file's null tokens (``NA``, ``NULL``, ``\\N``, ... see settings.py) when they
stand unquoted; a quoted ``"NA"`` is the text NA, as R writes it. Columns typed later
(connectors.filesystem.column_types) treat a quoted token as missing too.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass
from typing import Callable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from connectors.filesystem.blocks import (
    CR,
    NEWLINE,
    Block,
    Framing,
    LongLine,
    byte_array,
    byte_at,
    positions_of,
    record_blocks,
    record_lines,
    unescaped,
)
from connectors.filesystem.dialect import CARRIAGE_RETURN, LINE_BREAK, CsvDialect, restore_breaks, unescape_dump
from connectors.filesystem.parsed import (
    DEFAULT_LIMITS,
    LINE_COLUMN,
    RAW_LINE,
    ParsedFile,
    ReadLimits,
    Rejection,
    distinct_names,
    has_bad_bytes,
    long_line_rejected,
    shown,
)

ROW_NAMES = "row_names"  # the unnamed first column of R's write.table/write.csv with row names
TRAILING = "\x00trailing"  # the empty field after a trailing delimiter, dropped after parsing
BOM = "\ufeff"
# Python's csv module refuses fields over 128 KiB by default; a landing file's field may be as large as
# PostgreSQL's text (1 GiB). The limit is the interpreter's, for every reader: it only ever allows more.
csv.field_size_limit(max(csv.field_size_limit(), min(sys.maxsize, 2**31 - 1)))


@dataclass
class Header:
    names: list[str]
    lines: int  # physical lines the preamble and header rows take
    notes: list[str]


class CsvReader:
    """Reads one CSV file in a known dialect; ``blocks`` yields ParsedFile per block of whole records."""

    def __init__(self, dialect: CsvDialect, null_values: frozenset[str], normalize: Callable[[str], str] = str,
                 limits: ReadLimits = DEFAULT_LIMITS):
        self.dialect = dialect
        self.null_values = null_values
        self.normalize = normalize  # how the destination names a column: names equal under it are renamed
        self.limits = limits
        self.framing = Framing(
            quote=dialect.quote.encode() if dialect.quote else None,
            escape=dialect.escape.encode() if dialect.escape else None,
        )
        self.header: Header | None = None
        self._pattern_cache: dict[str, re.Pattern] = {}

    def blocks(self, stream, known_types: Callable[[], dict[str, pa.DataType]] | None = None) -> Iterator[ParsedFile]:
        """Every block of the file after its preamble and header, typed where ``known_types`` says."""
        blocks = record_blocks(stream, self.framing, max_line_bytes=self.limits.max_line_bytes)
        first, long_line = self._take_header(blocks)
        if first is None:
            return
        if first.data:
            yield self.read_block(first)
        if long_line is not None:
            yield long_line_rejected(long_line, self.limits.max_line_bytes)
        for block in blocks:
            if isinstance(block, LongLine):
                yield long_line_rejected(block, self.limits.max_line_bytes)
                continue
            yield self.read_block(block, known_types() if known_types else None)

    # -- header ----------------------------------------------------------------------------------------------

    def _take_header(self, blocks: Iterator[Block | LongLine]) -> tuple[Block | None, LongLine | None]:
        """Skip the preamble and read the header rows: (the rest of the data, from the first data line; a line
        too long to read that came before it ended)."""
        data, first_line, long_line = b"", 1, None
        for block in blocks:
            if isinstance(block, LongLine):  # the header ends before it, or there is none to be had
                long_line = block
                break
            data += block.data
            header = self._parse_header(data)
            if header is not None:
                self.header, consumed = header
                self.header.lines = data.count(b"\n", 0, consumed)
                return Block(data[consumed:], first_line + self.header.lines), None
        header = self._parse_header(data, final=True) if data else None
        if long_line is not None and (header is None or not header[0].names):
            raise ValueError(f"line {long_line.first_line} is {long_line.size:,} bytes long, longer than "
                             f"max_line_bytes ({self.limits.max_line_bytes:,}): the header cannot be read")
        if not data:
            return None, None
        if header is None:
            self.header = Header([], data.count(b"\n") + (not data.endswith(b"\n")), [])
            return Block(b"", first_line + self.header.lines), long_line
        self.header, consumed = header
        self.header.lines = data.count(b"\n", 0, consumed) + (consumed == len(data) and not data.endswith(b"\n"))
        return Block(data[consumed:], first_line + data.count(b"\n", 0, consumed)), long_line

    def _parse_header(self, data: bytes, final: bool = False) -> tuple[Header, int] | None:
        """(header, bytes it takes) once ``data`` holds the preamble, the header rows and one data record."""
        dialect = self.dialect
        offset = 0
        for _ in range(dialect.skip_lines):
            end = data.find(b"\n", offset)
            if end < 0:
                return (Header([], 0, []), len(data)) if final else None
            offset = end + 1
        rows = []
        text = self._preprocessed(data[offset:]).decode("utf-8", errors="surrogateescape")
        stream = io.StringIO(text, newline="")
        reader = self._csv_reader(stream)
        wanted = dialect.header_rows + 1  # one data record too: R's row names show in its width
        try:
            while len(rows) < wanted:
                position = stream.tell()
                record = next(reader)
                if not record or (dialect.comment and record[0].startswith(dialect.comment)):
                    continue
                rows.append((record, position))
        except StopIteration:
            if not final:
                return None
        except csv.Error:
            if not final and len(rows) <= dialect.header_rows:
                return None
        if len(rows) < min(wanted, dialect.header_rows + 1) and not final:
            return None
        header_records = [record for record, _ in rows[: dialect.header_rows]]
        if len(rows) > dialect.header_rows:
            # Comment lines and escapes were rewritten in ``text``, each line kept: the header ends after as many
            # lines of the file as of the text.
            consumed = _line_start(data, offset, text.count("\n", 0, rows[dialect.header_rows][1]))
        else:
            consumed = len(data)
        first_data = rows[dialect.header_rows][0] if len(rows) > dialect.header_rows else None
        return self._header_from(header_records, first_data), consumed

    def _header_from(self, records: list[list[str]], first_data: list[str] | None) -> Header:
        notes = []
        width = len(first_data) if first_data is not None else max((len(r) for r in records), default=0)
        if self.dialect.trailing_delimiter and first_data is not None:
            width -= 1
        if not records:
            names = [f"column_{i}" for i in range(1, width + 1)]
        else:
            names = _joined_names(records)
            if self.dialect.trailing_delimiter and names and names[-1] == "" and len(names) > width:
                names = names[:-1]
            if first_data is not None and len(names) == width - 1:
                names = [ROW_NAMES] + names
                notes.append(f"the first column has no name in the header: named {ROW_NAMES} (R's row names)")
        names, renamed = distinct_names(_named(names), self.normalize)
        return Header(names, 0, notes + renamed)

    # -- blocks ----------------------------------------------------------------------------------------------

    def read_block(self, block: Block, types: dict[str, pa.DataType] | None = None) -> ParsedFile:
        """The block's rows, typed as ``types`` says when every value fits, else as text (typed later)."""
        block = Block(self._preprocessed(block.data), block.first_line, block.line_breaks)
        header = self.header.names if self.header else []
        if not header:
            lines = block.lines() if block.data else 0
            return ParsedFile(pl.DataFrame(), [], skipped=lines, lines=lines)
        parsed = None
        if not self.dialect.skip_initial_space:
            if types:
                parsed = self._native(block, header, types)
            if parsed is None:
                parsed = self._native(block, header, {name: pa.string() for name in header})
        if parsed is None:
            parsed = self._by_record(block, header)
        if self.dialect.escape and (LINE_BREAK.encode() in block.data or CARRIAGE_RETURN.encode() in block.data):
            parsed.frame = restore_breaks(parsed.frame)
        parsed.may_hold_nul = b"\x00" in block.data
        return parsed

    def _preprocessed(self, data: bytes) -> bytes:
        dialect = self.dialect
        if dialect.comment and dialect.comment.encode() in data:
            # Comment lines become blank lines: skipped like them, and every later line keeps its number.
            data = self._pattern(f"(?m)^{re.escape(dialect.comment)}[^\\n]*").sub(b"", data)
        if dialect.escape and b"\\" in data:
            data = unescape_dump(data, dialect.delimiter)
        return data

    def _pattern(self, source: str) -> re.Pattern:
        if source not in self._pattern_cache:
            self._pattern_cache[source] = re.compile(source.encode())
        return self._pattern_cache[source]

    def _native(self, block: Block, header: list[str], types: dict[str, pa.DataType]) -> ParsedFile | None:
        """Arrow's reader; None when a line is off (field count, UTF-8, quoting) or a value does not fit."""
        dialect = self.dialect
        names = header + ([TRAILING] if dialect.trailing_delimiter else [])
        column_types = dict(types)
        if dialect.trailing_delimiter:
            column_types[TRAILING] = pa.string()
        parse = pacsv.ParseOptions(
            delimiter=dialect.delimiter, quote_char=dialect.quote or False, double_quote=dialect.escape is None,
            escape_char=dialect.escape or False, newlines_in_values=bool(dialect.quote or dialect.escape),
        )
        convert = pacsv.ConvertOptions(
            column_types=column_types, null_values=sorted(self.null_values), strings_can_be_null=True,
            quoted_strings_can_be_null=False, decimal_point=dialect.decimal,
            true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"],
        )
        read = pacsv.ReadOptions(column_names=names)
        try:
            try:
                table = pacsv.read_csv(io.BytesIO(block.data), read_options=read, parse_options=parse,
                                       convert_options=convert)
            except pa.ArrowInvalid as error:
                if "straddling" not in str(error):
                    raise
                # A record longer than Arrow's parse block (1 MB): read the block as one, which every record fits.
                read = pacsv.ReadOptions(column_names=names, block_size=len(block.data) + 1)
                table = pacsv.read_csv(io.BytesIO(block.data), read_options=read, parse_options=parse,
                                       convert_options=convert)
        except (pa.ArrowInvalid, UnicodeDecodeError):
            return None
        if dialect.trailing_delimiter:
            trailing = table.column(TRAILING)
            if trailing.null_count != len(trailing) and pc.any(pc.not_equal(trailing, "")).as_py():
                return None
            table = table.drop_columns([TRAILING])
        if dialect.quote and dialect.quote.encode() in block.data and not self._quotes_well_formed(block.data):
            return None
        lines, blank = _lines_of(block, table.num_rows, self.framing)
        if lines.len() != table.num_rows:  # rows and lines disagree: let the per-record path say why
            return None
        frame = pl.from_arrow(table) if table.num_rows else pl.DataFrame(schema={name: pl.String for name in header})
        return ParsedFile(frame.with_columns(lines.alias(LINE_COLUMN)), [], skipped=blank, lines=block.lines())

    def _quotes_well_formed(self, data: bytes) -> bool:
        """Every quote opens a field (after a delimiter or a line start) or closes one (before a delimiter, a
        line end or the next quote of a doubled pair): a stray quote that swallowed delimiters or lines fails."""
        quote, delimiter = self.framing.quote[0], self.dialect.delimiter.encode()[0]
        raw = byte_array(data)
        quotes = positions_of(raw, quote)
        if self.framing.escape:
            quotes = unescaped(data, raw, quotes, self.framing.escape)
        if quotes.len() % 2:
            return False
        opening, closing = quotes.gather_every(2), quotes.gather_every(2, offset=1)
        opens_field = (opening == 0) | byte_at(raw, opening - 1).is_in([delimiter, NEWLINE, quote])
        closes_field = (closing == len(data) - 1) | byte_at(raw, closing + 1).is_in([delimiter, NEWLINE, CR, quote])
        return bool(opens_field.all() and closes_field.all())

    def _by_record(self, block: Block, header: list[str]) -> ParsedFile:
        """Record by record with the csv module: handles every quoting, locates bad lines exactly."""
        # surrogateescape keeps undecodable bytes visible per field instead of failing the whole block.
        text = block.data.decode("utf-8", errors="surrogateescape")
        text_lines = text.split("\n")
        starts = [0]
        for line in text_lines[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        rows: list[list[str | None]] = []
        lines: list[int] = []
        rejections: list[Rejection] = []
        skipped = padded = 0
        index = 0  # 0-based line within the block where the reader (re)starts
        while index < len(text_lines):
            reader = self._csv_reader(io.StringIO(text[starts[index]:], newline=""))
            previous_end = 0
            try:
                for fields in reader:
                    first, previous_end = previous_end + 1, reader.line_num
                    line = block.first_line + index + first - 1
                    raw_text = "\n".join(text_lines[index + first - 1: index + previous_end]).rstrip("\r")
                    if not fields:  # a blank line
                        skipped += 1
                        continue
                    outcome = self._record(fields, raw_text, header, line)
                    if isinstance(outcome, Rejection):
                        rejections.append(outcome)
                    else:
                        values, was_padded = outcome
                        rows.append(values)
                        lines.append(line)
                        padded += was_padded
                index = len(text_lines)
            except csv.Error as error:
                # The record that failed starts on the line after the last one read: set that line aside
                # alone and go on from the next, so a stray quote costs one line, not every line it swallowed.
                bad = index + previous_end
                raw_text = text_lines[bad].rstrip("\r") if bad < len(text_lines) else ""
                record = {RAW_LINE: shown(raw_text)}
                rejections.append(Rejection(block.first_line + bad, record, "quote",
                                            f"a quote does not open or close a field ({error})"))
                index = bad + 1
        frame = pl.DataFrame(rows, schema={name: pl.String for name in header}, orient="row")
        return ParsedFile(frame.with_columns(pl.Series(LINE_COLUMN, lines, dtype=pl.Int64)), rejections,
                          skipped=skipped, padded=padded, lines=block.lines())

    def _record(self, fields: list[str], raw_text: str, header: list[str], line: int):
        """(values, padded) for a record that loads, or its Rejection."""
        if self.dialect.trailing_delimiter and len(fields) == len(header) + 1 and fields[-1] == "":
            fields = fields[:-1]
        # The line as it is in the file stays in the record: a replay loads the row only once it is fixed.
        record: dict = dict(zip(header, (shown(value) for value in fields), strict=False))
        record[RAW_LINE] = shown(raw_text)
        undecodable = [name for name, value in zip(header, fields, strict=False) if has_bad_bytes(value)]
        if undecodable or any(has_bad_bytes(value) for value in fields[len(header):]):
            where = ", ".join(undecodable) or "an extra field"
            return Rejection(line, record, "encoding", f"not valid UTF-8 in {where}")
        if len(fields) > len(header):
            if any(value.strip() for value in fields[len(header):]):
                return Rejection(line, record, "columns", f"{len(fields)} fields, the header has {len(header)}")
            fields = fields[: len(header)]
        values = [self._value(value, raw_text) for value in fields]
        padded = len(values) < len(header)
        values += [None] * (len(header) - len(values))
        return values, padded

    def _value(self, value: str, raw_text: str) -> str | None:
        if value not in self.null_values:
            return value
        quote = self.dialect.quote
        if not quote:
            return None
        # A null token counts only where it stands unquoted, as the native reader has it.
        if value:
            return value if f"{quote}{value}{quote}" in raw_text else None
        delimiter = re.escape(self.dialect.delimiter)
        quoted_empty = f"(^|{delimiter}){re.escape(quote * 2)}({delimiter}|\r?$)"
        return value if re.search(quoted_empty, raw_text) else None

    def _csv_reader(self, stream):
        dialect = self.dialect
        return csv.reader(
            stream, delimiter=dialect.delimiter, quotechar=dialect.quote or '"', escapechar=dialect.escape,
            doublequote=dialect.escape is None, skipinitialspace=dialect.skip_initial_space, strict=True,
            quoting=csv.QUOTE_MINIMAL if dialect.quote else csv.QUOTE_NONE,
        )


def _lines_of(block: Block, rows: int, framing: Framing) -> tuple[pl.Series, int]:
    """The line of each row and the blank lines; when rows and lines match one to one no scan is needed."""
    if rows == block.lines():  # every line is one record: no blank lines and no line breaks inside quotes
        return pl.int_range(block.first_line, block.first_line + rows, eager=True, dtype=pl.Int64), 0
    starts, blank = record_lines(block, framing)
    return starts, blank


def _joined_names(records: list[list[str]]) -> list[str]:
    """Column names from one or more header rows: an empty cell of an upper row continues the name to its
    left (a merged cell), and the rows' parts are joined with "_" (``temperature`` over ``°C``: ``temperature_°C``)."""
    width = max(len(record) for record in records)
    rows = []
    for depth, record in enumerate(records):
        cells = [cell.strip() for cell in record] + [""] * (width - len(record))
        if depth < len(records) - 1:  # merged cells of a group row
            filled, last = [], ""
            for cell in cells:
                last = cell or last
                filled.append(last)
            cells = filled
        rows.append(cells)
    return ["_".join(part for part in parts if part) for parts in zip(*rows, strict=True)]


def _named(names: list[str]) -> list[str]:
    """An empty name becomes column_<position>; a byte-order mark left at the start of a name is dropped."""
    return [shown(name).lstrip(BOM).strip() or f"column_{position}" for position, name in enumerate(names, start=1)]


def _line_start(data: bytes, start: int, lines: int) -> int:
    """The offset of the line ``lines`` lines after ``start`` (the end of ``data`` when it has fewer)."""
    position = start
    for _ in range(lines):
        position = data.find(b"\n", position)
        if position < 0:
            return len(data)
        position += 1
    return position

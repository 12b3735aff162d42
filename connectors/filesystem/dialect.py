"""How a CSV file is written: delimiter, quoting, escapes, encoding, header and preamble lines.

``sniff`` reads the dialect off a sample of the file, the way DuckDB's and CleverCSV's sniffers do:
each candidate delimiter and quote is tried, and the one that splits the sample into the most
consistent rows of the most recognisable values wins. Anything set in ``headwater.yaml`` is taken as
given and only the rest is sniffed, so a user can pin what detection gets wrong
(``headwater inspect`` shows what was detected, in the form the settings take).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace

# Bytes read to detect the encoding and the dialect.
SAMPLE_BYTES = 1 << 20
# Records of the sample the delimiter and header votes look at.
SAMPLE_RECORDS = 500
DELIMITERS = (",", ";", "\t", "|", " ")
QUOTES = ('"', "'")
BACKSLASH = "\\"
UTF8, CP1252 = "utf-8", "cp1252"
BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Header rows looked for beyond the first (a group row above column names, a units row below them).
MAX_HEADER_ROWS = 3
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
DECIMAL_COMMA_NUMBER = re.compile(r"^[+-]?\d+(,\d+)?$")
DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


@dataclass(frozen=True)
class CsvDialect:
    """Everything needed to turn a file's bytes into records; see docs/connectors.md for each setting."""

    delimiter: str = ","
    quote: str | None = '"'  # None: fields are never quoted
    escape: str | None = None  # None: a quote inside a quoted field is doubled; "\\": backslash escapes
    encoding: str = UTF8
    bom: bool = False  # the file starts with a byte-order mark (removed before reading)
    line_ending: str = "\n"  # "\n", "\r\n" or "\r" (CR-only files are read as if they had "\n")
    skip_lines: int = 0  # preamble lines before the header (titles, notes, export dates)
    header_rows: int = 1  # 0: the file has no header; 2+: column names are joined from several rows
    comment: str | None = None  # lines starting with this are skipped
    decimal: str = "."  # "," in files written by European spreadsheets
    trailing_delimiter: bool = False  # every line ends with a delimiter: the empty last field is dropped
    skip_initial_space: bool = False  # spaces after a delimiter are not part of the value

    def settings(self) -> dict:
        """The dialect as the `csv:` settings of headwater.yaml take it, to pin what was detected."""
        values = asdict(self)
        values["header"] = values.pop("header_rows")
        values.pop("bom")
        values.pop("line_ending")
        return values

    def describe(self) -> str:
        names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space"}
        parts = [f"{names.get(self.delimiter, repr(self.delimiter))}-delimited",
                 f"{self.encoding}{' with BOM' if self.bom else ''}",
                 {"\n": "LF", "\r\n": "CRLF", "\r": "CR"}.get(self.line_ending, "mixed") + " line endings"]
        parts.append("no quoting" if self.quote is None else f"quote {self.quote}")
        if self.escape:
            parts.append("backslash escapes")
        if self.skip_lines:
            parts.append(f"{self.skip_lines} preamble line{'s' if self.skip_lines > 1 else ''}")
        parts.append({0: "no header", 1: "header"}.get(self.header_rows, f"{self.header_rows}-row header"))
        if self.decimal != ".":
            parts.append(f"decimal {self.decimal}")
        if self.trailing_delimiter:
            parts.append("trailing delimiter")
        if self.comment:
            parts.append(f"comments {self.comment}")
        return ", ".join(parts)


# The keys of a `csv:` block in headwater.yaml, with the CsvDialect field each sets.
SETTING_FIELDS = {
    "delimiter": "delimiter", "quote": "quote", "escape": "escape", "encoding": "encoding",
    "header": "header_rows", "skip_lines": "skip_lines", "comment": "comment", "decimal": "decimal",
    "trailing_delimiter": "trailing_delimiter", "skip_initial_space": "skip_initial_space",
}


@dataclass
class Sniffed:
    """The dialect of one file and how sure the sniffer was of it."""

    dialect: CsvDialect
    pinned: frozenset[str] = frozenset()  # settings given in headwater.yaml, not detected
    notes: list[str] = field(default_factory=list)


def pinned_dialect(settings: dict | None) -> dict:
    """CsvDialect fields from a `csv:` settings block (already validated)."""
    pinned = {}
    for key, value in (settings or {}).items():
        name = SETTING_FIELDS[key]
        if name == "header_rows":
            value = int(value) if not isinstance(value, bool) else int(value)
        if name in ("quote", "escape", "comment") and value in ("", "none"):
            value = None
        if name == "encoding":
            value = codecs.lookup(value).name
        pinned[name] = value
    return pinned


def sniff(sample: bytes, settings: dict | None = None, null_values: frozenset[str] = frozenset(),
          complete: bool = False) -> Sniffed:
    """The dialect of a file from its first bytes; ``settings`` (a `csv:` block) win over detection.

    ``complete``: the sample is the whole file (its last line is not cut short).
    """
    pinned = pinned_dialect(settings)
    notes: list[str] = []
    encoding, bom = detect_encoding(sample, pinned.get("encoding"))
    text = _decode_sample(sample, encoding, bom, complete)
    line_ending = _line_ending(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not complete and "\n" in text:  # the last line may be cut short
        text = text[: text.rindex("\n") + 1]

    comment = pinned.get("comment", "#" if _leading_comments(text) else None)
    lines = [line for line in text.split("\n") if not (comment and line.startswith(comment))]
    body = "\n".join(lines)

    delimiter = pinned.get("delimiter") or _best_delimiter(body, pinned.get("quote", '"'))
    quote = pinned["quote"] if "quote" in pinned else _quote_of(body, delimiter)
    escape = pinned["escape"] if "escape" in pinned else _escape_of(body, delimiter, quote)
    if escape and "quote" not in pinned and not _quoted_fields(body, delimiter, quote):
        quote = None  # database text dumps (COPY TO, SELECT INTO OUTFILE) escape instead of quoting
    if escape:
        body = unescape_dump(body.encode(), delimiter).decode()
        lines = body.split("\n")
    records = _records(body, delimiter, quote, escape)
    width = _dominant_width(records)

    skip_lines = pinned.get("skip_lines")
    if skip_lines is None:
        skip_lines = _preamble_lines(lines, delimiter, quote, escape, width)
        if skip_lines:
            notes.append(f"{skip_lines} line{'s' if skip_lines > 1 else ''} before the header skipped")
    data = _records("\n".join(lines[skip_lines:]), delimiter, quote, escape)
    decimal = pinned.get("decimal") or _decimal_of(data, delimiter)
    header_rows = pinned.get("header_rows")
    if header_rows is None:
        header_rows = _header_rows(data, width, decimal, null_values)
    trailing = pinned.get("trailing_delimiter")
    if trailing is None:
        trailing = _trailing_delimiter(data, header_rows)
    skip_space = pinned.get("skip_initial_space")
    if skip_space is None:
        skip_space = _initial_spaces(data, delimiter)
    dialect = CsvDialect(
        delimiter=delimiter, quote=quote, escape=escape, encoding=encoding, bom=bom, line_ending=line_ending,
        skip_lines=skip_lines, header_rows=header_rows, comment=comment, decimal=decimal,
        trailing_delimiter=trailing, skip_initial_space=skip_space,
    )
    return Sniffed(dialect, frozenset(pinned), notes)


def with_settings(dialect: CsvDialect, settings: dict | None) -> CsvDialect:
    return replace(dialect, **pinned_dialect(settings))


# Backslash escapes of database text dumps (PostgreSQL COPY, MySQL SELECT INTO OUTFILE), rewritten so
# that a reader whose escape character takes the next character literally yields the right text.
# A line break or carriage return written as \\n or \\r becomes a private-use character for the parse
# (a real break would shift the line numbers of every later row) and is put back by ``restore_breaks``.
LINE_BREAK, CARRIAGE_RETURN = "\ue000", "\ue001"
C_ESCAPES = {b"n": LINE_BREAK.encode(), b"r": CARRIAGE_RETURN.encode(), b"t": b"\\\t", b"b": b"\b", b"f": b"\f",
             b"v": b"\v", b"0": b"\\\x00"}
_ESCAPED = re.compile(rb"\\(.)", re.DOTALL)


def unescape_dump(data: bytes, delimiter: str) -> bytes:
    """C-style escapes (\\n, \\t, \\N as a whole field, ...) in the form a backslash-escaping CSV reader reads.

    PostgreSQL writes a line break in a value as the two characters \\n, MySQL as a backslash and the
    break itself; both mean the same, and \\N alone in a field means NULL (read back as the token \\N).
    """
    escaped = re.escape(delimiter.encode())
    null_field = re.compile(rb"(?m)(?<![^" + escaped + rb"\n])\\N(?=[" + escaped + rb"\r\n]|$)")
    data = null_field.sub(rb"\\\\N", data)
    return _ESCAPED.sub(lambda match: C_ESCAPES.get(match.group(1), match.group(0)), data)


def restore_breaks(frame):
    """Put back the line breaks ``unescape_dump`` stood in for, in every text column of a Polars frame."""
    import polars as pl

    text = pl.col(pl.String)
    return frame.with_columns(
        text.str.replace_all(LINE_BREAK, "\n", literal=True).str.replace_all(CARRIAGE_RETURN, "\r", literal=True))


# -- encoding ---------------------------------------------------------------------------------------------------


def detect_encoding(sample: bytes, pinned: str | None = None) -> tuple[str, bool]:
    """(codec, has BOM). A BOM decides; else UTF-16 by its zero bytes, UTF-8 if it decodes, else CP-1252."""
    for bom, name in BOMS:
        if sample.startswith(bom):
            return (pinned or name), True
    if pinned:
        return pinned, False
    head = sample[:4096]
    if len(head) >= 4 and head.count(0) * 3 > len(head):  # UTF-16 text without a BOM: every other byte is 0
        even_zeros = head[0::2].count(0)
        return ("utf-16-be" if even_zeros > head[1::2].count(0) else "utf-16-le"), False
    try:
        sample.decode(UTF8)
    except UnicodeDecodeError as error:
        # Not just a character cut at the end of the sample, and no UTF-8 text before the bad byte:
        # a single-byte encoding. After real UTF-8 text a bad byte is a broken line, quarantined alone.
        if error.start < len(sample) - 3 and sample[: error.start].isascii():
            return CP1252, False
    return UTF8, False


def _decode_sample(sample: bytes, encoding: str, bom: bool, complete: bool) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    text = decoder.decode(sample, final=complete)
    return text[1:] if bom and text.startswith("\ufeff") else text


def _line_ending(text: str) -> str:
    crlf = text.count("\r\n")
    cr = text.count("\r") - crlf
    lf = text.count("\n") - crlf
    counts = {"\r\n": crlf, "\r": cr, "\n": lf}
    best = max(counts, key=lambda ending: counts[ending])
    return best if counts[best] else "\n"


# -- delimiter, quote, escape ----------------------------------------------------------------------------------


def _records(text: str, delimiter: str, quote: str | None, escape: str | None, limit: int = SAMPLE_RECORDS):
    reader = csv.reader(
        io.StringIO(text), delimiter=delimiter, quotechar=quote or '"', escapechar=escape,
        doublequote=escape is None, quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
    )
    records = []
    try:
        for record in reader:
            records.append(record)
            if len(records) >= limit:
                break
    except csv.Error:
        pass  # a malformed record ends the sample: what was read still votes
    return records


def _dominant_width(records: list[list[str]]) -> int:
    widths = Counter(len(record) for record in records if any(field.strip() for field in record))
    if not widths:
        return 1
    most = max(widths.values())
    # Among equally common widths the wider wins: short lines are more often notes than data.
    return max(width for width, count in widths.items() if count == most)


def _best_delimiter(text: str, quote: str | None) -> str:
    best, best_score = ",", -1.0
    for delimiter in DELIMITERS:
        if delimiter not in text:
            continue
        records = [record for record in _records(text, delimiter, quote or '"', None) if record]
        if not records:
            continue
        width = _dominant_width(records)
        if width < 2:
            continue
        consistent = sum(len(record) == width for record in records) / len(records)
        cells = [value for record in records if len(record) == width for value in record]
        typed = sum(_recognisable(value) for value in cells) / max(len(cells), 1)
        # Consistency matters most; more columns and recognisable values break ties (CleverCSV's idea).
        score = consistent * (1 - 1 / (width + 1)) * (0.5 + 0.5 * typed)
        if delimiter == " ":
            score *= 0.8  # prose has spaces too: a space wins only when nothing else splits the rows
        if score > best_score + 1e-9:
            best, best_score = delimiter, score
    return best


def _recognisable(value: str) -> bool:
    value = value.strip()
    return value == "" or bool(NUMBER.match(value) or DATE_LIKE.match(value)) or (
        value.isidentifier() and len(value) < 40)


def _quote_of(text: str, delimiter: str) -> str | None:
    """The character that opens and closes fields: the one found most often at field boundaries."""
    counts = {}
    for quote in QUOTES:
        d, q = re.escape(delimiter), re.escape(quote)
        pattern = re.compile(rf"(^|{d}){q}|{q}({d}|$)", re.MULTILINE)
        counts[quote] = len(pattern.findall(text))
    if counts["'"] > counts['"'] and counts["'"] >= 2:
        return "'"
    return '"'


def _escape_of(text: str, delimiter: str, quote: str | None) -> str | None:
    """Backslash when the file escapes with it: quotes written as \\", or database dumps' \\N for NULL."""
    null_field = re.compile(rf"(^|{re.escape(delimiter)})\\N({re.escape(delimiter)}|$)", re.MULTILINE)
    if null_field.search(text):
        return BACKSLASH
    if quote and f"{BACKSLASH}{quote}" in text and f"{quote}{quote}" not in text:
        return BACKSLASH
    return None


def _quoted_fields(text: str, delimiter: str, quote: str | None) -> bool:
    if not quote:
        return False
    opening = re.compile(rf"(^|{re.escape(delimiter)}){re.escape(quote)}", re.MULTILINE)
    return bool(opening.search(text))


def _leading_comments(text: str) -> bool:
    first = next((line for line in text.split("\n") if line.strip()), "")
    return first.startswith("#")


# -- preamble, header, decimal comma, trailing delimiter ----------------------------------------------------------


def _preamble_lines(lines: list[str], delimiter: str, quote: str | None, escape: str | None, width: int) -> int:
    """Physical lines before the header: leading records that are not as wide as the data (titles, notes,
    blank lines)."""
    reader = csv.reader(io.StringIO("\n".join(lines[:SAMPLE_RECORDS])), delimiter=delimiter, quotechar=quote or '"',
                        escapechar=escape, doublequote=escape is None,
                        quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE)
    spans: list[tuple[int, int, bool]] = []  # (width, last physical line, holds a number or date) per record
    try:
        for record in reader:
            width_of = len(record) if any(field.strip() for field in record) else 0
            typed = any(NUMBER.match(field.strip()) or DATE_LIKE.match(field.strip()) for field in record)
            spans.append((width_of, reader.line_num, typed))
    except csv.Error:
        pass
    start = 0
    for index, (record_width, end, _) in enumerate(spans):
        if record_width == width:
            return start
        # R's write.table header is one field short (no name for the row names), and data rows follow it;
        # a title line above a header is followed by the header, which holds no numbers.
        following = spans[index + 1] if index + 1 < len(spans) else None
        if record_width == width - 1 > 0 and following and following[0] == width and following[2]:
            return start
        start = end
    return 0


def _decimal_of(records: list[list[str]], delimiter: str) -> str:
    """"," when the delimiter is not a comma and a column holds numbers written with a decimal comma."""
    if delimiter == "," or len(records) < 2:
        return "."
    columns = list(zip(*[record for record in records[1:] if len(record) == len(records[1])], strict=False))
    for values in columns:
        present = [value.strip() for value in values if value.strip()]
        if present and all(DECIMAL_COMMA_NUMBER.match(value) for value in present) and any("," in v for v in present):
            return ","
    return "."


def _header_rows(records: list[list[str]], width: int, decimal: str, null_values: frozenset[str]) -> int:
    """1 when the first row names the columns (the usual case), 0 when it is data, more for stacked names.

    A column whose values are numbers, dates or booleans votes: a first-row cell of the same kind
    says data, any other text says header. Rows right below the header whose cells in such typed
    columns are text too are further header rows (a units row, or column names below group names).
    When no column is typed the first row is taken as a header, as most readers do.
    """
    rows = [record for record in records if any(field.strip() for field in record)]
    if len(rows) < 2:
        return 1
    # The column kinds come from the rows below any header rows there may be.
    below = rows[max(1, min(MAX_HEADER_ROWS, len(rows) // 2)):]
    kinds = [_column_kind([row[i] for row in below if i < len(row)], decimal, null_values) for i in range(width)]
    typed = [i for i, kind in enumerate(kinds) if kind]
    if not typed:
        return 1
    first = rows[0]
    data_votes = sum(1 for i in typed if i < len(first) and _kind_of(first[i], decimal, null_values) == kinds[i])
    header_votes = sum(1 for i in typed if i < len(first) and first[i].strip() not in null_values | {""}
                       and _kind_of(first[i], decimal, null_values) != kinds[i])
    if data_votes > header_votes:
        return 0
    header_rows = 1
    for row in rows[1:MAX_HEADER_ROWS]:
        texts = [i for i in typed if i < len(row) and row[i].strip() and row[i].strip() not in null_values]
        if texts and all(_kind_of(row[i], decimal, null_values) != kinds[i] for i in texts):
            header_rows += 1
        else:
            break
    return header_rows


def _column_kind(values: list[str], decimal: str, null_values: frozenset[str]) -> str | None:
    kinds = {_kind_of(value, decimal, null_values) for value in values if value.strip()
             and value.strip() not in null_values}
    return kinds.pop() if len(kinds) == 1 and None not in kinds else None


def _kind_of(value: str, decimal: str, null_values: frozenset[str]) -> str | None:
    value = value.strip()
    if not value or value in null_values:
        return "empty"
    if decimal == ",":
        value = value.replace(",", ".")
    if NUMBER.match(value):
        return "number"
    if DATE_LIKE.match(value):
        return "date"
    if value.lower() in ("true", "false"):
        return "boolean"
    return None


def _trailing_delimiter(records: list[list[str]], header_rows: int) -> bool:
    data = [record for record in records[header_rows:] if any(field.strip() for field in record)]
    if not data or not all(record and record[-1] == "" for record in data):
        return False
    if header_rows:
        header = records[0]
        return header[-1] == "" or len(header) == len(data[0]) - 1
    return True


def _initial_spaces(records: list[list[str]], delimiter: str) -> bool:
    if delimiter == " ":
        return False
    fields = [value for record in records for value in record[1:] if value]
    return bool(fields) and sum(value.startswith(" ") for value in fields) > 0.8 * len(fields)

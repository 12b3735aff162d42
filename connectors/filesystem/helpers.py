"""Turn one landing file into Arrow batches with its table's types, and an account of what was read."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.filesystem.column_types import NullTokens, TableKinds
from connectors.filesystem.csv_reader import CsvReader
from connectors.filesystem.dialect import SAMPLE_BYTES, CsvDialect, sniff
from connectors.filesystem.jsonl_reader import jsonl_blocks
from connectors.filesystem.nul_characters import holds_zero_byte, nul_checked
from connectors.filesystem.parsed import LINE_COLUMN, ParsedFile, ReadLimits, Rejection, distinct_names
from connectors.filesystem.settings import format_of
from connectors.filesystem.text_stream import Utf8Stream
from headwater.common.file_rows import FILE_COLUMN as SOURCE_FILE_COLUMN
from headwater.common.file_rows import MODIFIED_COLUMN, REREAD_METADATA
from headwater.common.nul_characters import REJECT, NulHandling
from headwater.common.widening import JSON_TEXT_METADATA

# Rows per Parquet batch: bounded memory whatever the row group size of the file.
PARQUET_BATCH_ROWS = 100_000
log = logging.getLogger(__name__)


@dataclass
class TableReading:
    """How the files of one table are read in this run: format, dialect settings, null tokens, types."""

    table: str
    file_format: str | None = None
    csv: dict | None = None  # a `csv:` settings block: pinned dialect keys
    nulls: NullTokens = field(default_factory=NullTokens)
    kinds: TableKinds = field(default_factory=TableKinds)
    limits: ReadLimits = field(default_factory=ReadLimits)
    nul_characters: NulHandling = REJECT


@dataclass
class LandingFile:
    """One batch of a landing file: the rows that load, and the lines set aside with why."""

    good: pa.Table
    rejected: pa.Table | None  # REJECTED_SCHEMA, or None when every line was good


@dataclass
class FileReport:
    """What reading one file came to: lines = records + skipped lines (+ the extra lines of multi-line records)."""

    file: str
    modified_at: str | None
    size: int
    format: str
    status: str = "loaded"  # loaded | empty | header only | unreadable | no match (file: the glob)
    lines: int = 0  # lines in the file (Parquet: rows)
    rows: int = 0  # records handed on to the table
    rejected: int = 0  # records set aside by the reader (quarantined)
    skipped: int = 0  # lines that hold no record: preamble, header, blank, comment
    padded: int = 0  # records shorter than the header, completed with nulls
    dialect: str | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    read_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def records(self) -> int:
        return self.rows + self.rejected


class UnreadableFile(ValueError):
    """A landing file could not be read at all (e.g. a corrupt Parquet file); the message names the file."""


# Rejected lines as the connector hands them on: the headwater quarantine adds its bookkeeping columns.
REJECTED_SCHEMA = pa.schema(
    [
        (SOURCE_FILE_COLUMN, pa.string()),
        (LINE_COLUMN, pa.int64()),
        ("record", pa.string()),
        ("rule", pa.string()),
        ("reason", pa.string()),
        ("location", pa.string()),
        ("status", pa.string()),  # null: quarantined; "replayed": an earlier rejection now read cleanly
    ]
)


def read_landing_file(item, reading: TableReading, reread: bool = False,
                      was_unreadable: bool = False) -> Iterator[LandingFile | FileReport]:
    """A dlt FileItem as Arrow batches of bounded size, then its FileReport (always last).

    CSV and JSONL lines that are malformed (wrong field count, not UTF-8, a stray quote, not JSON)
    or hold a value that breaks a declared column type are returned as rejected, with file and
    line; the other rows load. A file that cannot be read at all is one rejected entry naming the
    file. Rows are never dropped silently. ``reread``: the file was loaded before, so its batches
    are marked to replace the rows it gave then.
    """
    # The path below bucket_url, so files of the same name in different folders stay apart.
    file_name = item.get("relative_path") or item["file_name"]
    modified = _modified_at(item.get("modification_date"))
    report = FileReport(file=file_name, modified_at=modified.isoformat(), size=int(item.get("size_in_bytes") or 0),
                        format="?")
    try:
        report.format = format_of(file_name, reading.file_format)
        with item.open(mode="rb") as stream:
            for parsed in _parsed_blocks(stream, report, reading):
                report.lines += parsed.lines
                report.skipped += parsed.skipped
                report.padded += parsed.padded
                report.notes.extend(note for note in parsed.notes if note not in report.notes)
                report.rows += parsed.frame.height
                report.rejected += len(parsed.rejections)
                good = _json_marked(parsed.frame.with_columns(
                    pl.lit(file_name).alias(SOURCE_FILE_COLUMN), pl.lit(modified).alias(MODIFIED_COLUMN),
                ).to_arrow(), reading.kinds)
                if reread:
                    good = good.replace_schema_metadata({**(good.schema.metadata or {}), REREAD_METADATA: b"1"})
                yield LandingFile(good=good if parsed.frame.height else _empty(good),
                                  rejected=_rejected_table(file_name, parsed.rejections))
    except Exception as error:  # whatever a file holds, it costs that file, never the source
        reason = _first_line(error)
        if not isinstance(error, (UnreadableFile, ValueError, OSError, pa.ArrowException, pl.exceptions.PolarsError)):
            log.warning("%s could not be read", file_name, exc_info=True)
            reason = f"{type(error).__name__}: {reason}"
        report.status, report.reason = "unreadable", reason
        yield LandingFile(good=pa.table({}),
                          rejected=_whole_file_rejected(file_name, report.reason, loaded=report.rows))
    else:
        if report.status == "loaded" and not report.records:
            report.status = "header only" if report.skipped or report.lines else "empty"
        if was_unreadable:
            yield LandingFile(good=pa.table({}), rejected=_whole_file_rejected(file_name, "", resolved=True))
    yield report


def _parsed_blocks(stream, report: FileReport, reading: TableReading) -> Iterator[ParsedFile]:
    kinds = reading.kinds

    def typed(parsed: ParsedFile, **options) -> ParsedFile:
        # NUL characters first: a stripped value is typed as what remains.
        return kinds.apply(nul_checked(parsed, reading.nul_characters), **options)

    if report.format == "parquet":
        for parsed in _parquet_batches(stream, report.file, kinds.normalize):
            yield typed(parsed)
        return
    if report.format == "jsonl":
        for parsed in jsonl_blocks(Utf8Stream(stream, "utf-8", bom=True), reading.limits, kinds.is_json,
                                   kinds.normalize):
            yield typed(parsed)
        return
    sample = stream.read(SAMPLE_BYTES)
    if not sample.strip():
        report.lines = sample.count(b"\n")
        report.skipped = report.lines
        return
    sniffed = sniff(sample, reading.csv, reading.nulls.default, complete=len(sample) < SAMPLE_BYTES)
    dialect = sniffed.dialect
    report.dialect = dialect.describe()
    report.notes.extend(sniffed.notes)
    text = Utf8Stream(_Prefixed(sample, stream), dialect.encoding, dialect.bom)
    reader = CsvReader(dialect, reading.nulls.parsed, kinds.normalize, reading.limits)
    header_counted = False
    for parsed in reader.blocks(text, kinds.arrow_types):
        if not header_counted and reader.header is not None:
            parsed.lines += reader.header.lines
            parsed.skipped += reader.header.lines
            parsed.notes.extend(reader.header.notes)
            header_counted = True
        yield typed(parsed, nulls=reading.nulls, decimal_comma=dialect.decimal == ",")
    if not header_counted and reader.header is not None:  # a file with a header and nothing else
        # No rows, but its columns: the table exists with them (typed by the first values that arrive).
        columns = {name: pl.Null for name in reader.header.names}
        yield ParsedFile(pl.DataFrame(schema={**columns, LINE_COLUMN: pl.Int64}), [], lines=reader.header.lines,
                         skipped=reader.header.lines, notes=list(reader.header.notes))
    if text.switched_to:
        report.notes.append(f"read as {text.switched_to}: the file is not UTF-8 past its first bytes")
        report.dialect = CsvDialect(**{**dialect.__dict__, "encoding": text.switched_to}).describe()


def _json_marked(table: pa.Table, kinds: TableKinds) -> pa.Table:
    """``table`` with its JSON columns marked, so that they land as jsonb (headwater.common.widening)."""
    names = [name for name in table.column_names if kinds.kinds.get(name) == "json"]
    if not names:
        return table
    fields = [field.with_metadata({**(field.metadata or {}), JSON_TEXT_METADATA: b"1"}) if field.name in names
              else field for field in table.schema]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=table.schema.metadata))


class _Prefixed:
    """The bytes already read for sniffing, then the rest of the stream."""

    def __init__(self, prefix: bytes, stream):
        self._prefix = prefix
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            if size is None or size < 0 or size >= len(self._prefix):
                data, self._prefix = self._prefix, b""
                return data
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._stream.read(size)


def _parquet_batches(stream, file_name: str, normalize=str) -> Iterator[ParsedFile]:
    """Row groups in batches; a row's line is its 1-based row number in the file."""
    first_row = 1
    try:
        # pre_buffer=False: with it, the reader keeps buffers of every batch already read.
        batches = pq.ParquetFile(stream, pre_buffer=False).iter_batches(batch_size=PARQUET_BATCH_ROWS)
        for batch in batches:
            names, notes = distinct_names(batch.schema.names, normalize)  # Parquet allows a name twice
            if notes:
                batch = batch.rename_columns(names)
            frame = pl.from_arrow(batch).with_row_index(LINE_COLUMN, offset=first_row)
            first_row += frame.height
            yield ParsedFile(frame.with_columns(pl.col(LINE_COLUMN).cast(pl.Int64)), [], lines=frame.height,
                             notes=notes, may_hold_nul=holds_zero_byte(batch))
    except (pa.ArrowException, OSError) as error:  # a binary file cannot be split into good and bad rows
        where = f" past row {first_row - 1:,}" if first_row > 1 else ""
        raise UnreadableFile(f"cannot be read as parquet{where} ({_first_line(error)})") from error


def _modified_at(value) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _empty(table: pa.Table) -> pa.Table:
    return table.slice(0, 0)


def _rejected_table(file_name: str, rejections: list[Rejection]) -> pa.Table | None:
    if not rejections:
        return None
    rejections = sorted(rejections, key=lambda rejection: rejection.line)
    return pa.Table.from_pylist(
        [
            {
                SOURCE_FILE_COLUMN: file_name,
                LINE_COLUMN: rejection.line,
                # Where the row came from is part of it, as for the rows that load.
                "record": json.dumps(
                    {**rejection.record, SOURCE_FILE_COLUMN: file_name, LINE_COLUMN: rejection.line},
                    default=str,
                    ensure_ascii=False,
                ),
                "rule": rejection.rule,
                "reason": rejection.reason,
                "location": f"{file_name}:{rejection.line}",
            }
            for rejection in rejections
        ],
        schema=REJECTED_SCHEMA,
    )


def _whole_file_rejected(file_name: str, reason: str, resolved: bool = False, loaded: int = 0) -> pa.Table:
    """A file that could not be read (to its end): one quarantine entry for the whole file (the same entry,
    marked replayed, once the file reads). Rows read before the point it broke have loaded; they are
    replaced when the file is read again."""
    record = json.dumps({SOURCE_FILE_COLUMN: file_name, "_raw_line": None}, ensure_ascii=False)
    before = f" ({loaded:,} rows before that point loaded and are replaced then)" if loaded else ""
    reason = "read cleanly after it changed" if resolved else (
        f"{reason}; fix or replace the file: it is read again when it changes{before}")
    return pa.Table.from_pylist(
        [{SOURCE_FILE_COLUMN: file_name, LINE_COLUMN: None, "record": record, "rule": "file", "reason": reason,
          "location": file_name, "status": "replayed" if resolved else None}],
        schema=REJECTED_SCHEMA,
    )

"""What the filesystem connector sees in a table's files: dialect, header, column types; nothing is loaded."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from itertools import islice

from dlt.sources.filesystem import filesystem as list_files

from connectors.filesystem.column_types import DLT_TYPES
from connectors.filesystem.csv_reader import CsvReader
from connectors.filesystem.dialect import SAMPLE_BYTES, sniff
from connectors.filesystem.helpers import _Prefixed
from connectors.filesystem.nul_characters import nul_checked
from connectors.filesystem.settings import format_of
from connectors.filesystem.table_options import table_reading
from connectors.filesystem.text_stream import Utf8Stream


@dataclass
class FileInspection:
    file: str
    format: str
    dialect: str | None = None  # in words
    settings: dict = field(default_factory=dict)  # the `csv:` block that pins what was detected
    columns: dict[str, str] = field(default_factory=dict)  # name in the file -> the type it would land as
    notes: list[str] = field(default_factory=list)
    problem: str | None = None


def inspect_table(settings: dict, table: str, limit: int = 5, naming: str = "snake_case") -> list[FileInspection]:
    """The first ``limit`` files of ``table`` (a key of the source's ``files:``), newest first; ``naming``: the
    source's dlt naming convention (columns whose names it makes one are renamed, as a run does)."""
    spec = settings["files"][table]
    reading = table_reading(table, spec, settings.get("file_format"), settings.get("csv"), settings.get("null_values"),
                            settings)
    convention = importlib.import_module(f"dlt.common.normalizers.naming.{naming}").NamingConvention()
    reading.kinds.normalize = convention.normalize_identifier
    glob = spec if isinstance(spec, str) else spec["glob"]
    items = []
    for entry in list_files(bucket_url=settings["bucket_url"], file_glob=glob):  # pages, or items one by one
        items.extend(entry if isinstance(entry, list) else [entry])
    items.sort(key=lambda item: item["modification_date"], reverse=True)
    return [_inspect(item, reading) for item in items[:limit]]


def _inspect(item, reading) -> FileInspection:
    name = item.get("relative_path") or item["file_name"]
    try:
        file_format = format_of(name, reading.file_format)
    except ValueError as error:
        return FileInspection(name, "?", problem=str(error))
    inspection = FileInspection(name, file_format)
    if file_format != "csv":
        inspection.notes.append(f"{file_format} files carry their own types; nothing to detect")
        return inspection
    with item.open(mode="rb") as stream:
        sample = stream.read(SAMPLE_BYTES)
        if not sample.strip():
            inspection.problem = "empty file"
            return inspection
        sniffed = sniff(sample, reading.csv, reading.nulls.default, complete=len(sample) < SAMPLE_BYTES)
        inspection.dialect = sniffed.dialect.describe()
        inspection.settings = sniffed.dialect.settings()
        inspection.notes.extend(sniffed.notes)
        reader = CsvReader(sniffed.dialect, reading.nulls.parsed, reading.kinds.normalize, reading.limits)
        blocks = reader.blocks(Utf8Stream(_Prefixed(sample, stream), sniffed.dialect.encoding, sniffed.dialect.bom))
        for parsed in islice(blocks, 1):  # the first block (up to 16 MB) shows the types
            reading.kinds.apply(nul_checked(parsed, reading.nul_characters), reading.nulls,
                                decimal_comma=sniffed.dialect.decimal == ",")
            inspection.notes.extend(parsed.notes)
            if parsed.rejections:
                inspection.notes.append(f"{len(parsed.rejections)} line(s) of the first block would be quarantined")
    header = reader.header.names if reader.header else []
    inspection.columns = {column: DLT_TYPES.get(reading.kinds.kinds.get(column), "no values yet")
                          for column in header}
    if reader.header:
        inspection.notes.extend(reader.header.notes)
    return inspection

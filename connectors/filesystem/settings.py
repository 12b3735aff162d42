"""The filesystem connector's settings: their types (checked when headwater.yaml is read) and defaults."""

from __future__ import annotations

import codecs
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, with_config
from typing_extensions import NotRequired, Required, TypedDict

from connectors.filesystem.column_types import parse_declared
from connectors.filesystem.parsed import DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_NESTING_DEPTH
from headwater.common.nul_characters import NulHandling

FORMATS = ("csv", "jsonl", "parquet")
SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
            ".parquet": "parquet"}
# Written for a missing value by R (NA), Excel (#N/A), databases (NULL, \N), pandas and NumPy (NaN, <NA>, None),
# and most open-data portals (N/A): the values mainstream readers take as missing by default.
DEFAULT_NULL_VALUES = ("", "NA", "N/A", "n/a", "#N/A", "NULL", "null", "NaN", "nan", "None", "<NA>", "\\N")
# A misspelt key (`delimeter:`) is an error when headwater.yaml is read, not a setting silently ignored.
Strict = ConfigDict(extra="forbid")


def _codec(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}; e.g. utf-8, utf-16, cp1252, latin-1") from None
    return name


def _one_character(value: str | None) -> str | None:
    if value is not None and value not in ("", "none") and len(value) != 1:
        raise ValueError(f"must be one character (or none), got {value!r}")
    return value


def _column_type(spec: str) -> str:
    parse_declared(spec)
    return spec


Character = Annotated[str, AfterValidator(_one_character)]
OptionalCharacter = Annotated[str | None, AfterValidator(_one_character)]
ColumnType = Annotated[str, AfterValidator(_column_type)]
LineBytes = Annotated[int, Field(ge=1024, examples=[DEFAULT_MAX_LINE_BYTES])]
NestingDepth = Annotated[int, Field(ge=1, le=1000, examples=[DEFAULT_MAX_NESTING_DEPTH])]


@with_config(Strict)
class CsvSettings(TypedDict, total=False):
    """A CSV dialect: each key given here is used as is, the others are detected per file."""

    delimiter: Character
    quote: OptionalCharacter  # none: fields are never quoted
    escape: OptionalCharacter  # "\\": backslash escapes (database dumps); none: doubled quotes
    encoding: Annotated[str, AfterValidator(_codec)]
    header: bool | int  # true/false, or the number of header rows
    skip_lines: int  # preamble lines before the header
    comment: OptionalCharacter
    decimal: Literal[".", ","]
    trailing_delimiter: bool
    skip_initial_space: bool


@with_config(Strict)
class ColumnSettings(TypedDict, total=False):
    type: ColumnType  # text, bigint, double, decimal(12,2), bool, date, timestamp, time
    format: str  # strftime pattern for a date or timestamp column written otherwise than ISO 8601
    null_values: list[str]  # this column's missing-value tokens, instead of the table's


@with_config(Strict)
class FileTable(TypedDict):
    """One table's files, with how to read them when detection is not enough."""

    glob: Required[Annotated[str, Field(examples=["orders/*.csv"])]]
    format: NotRequired[Literal["csv", "jsonl", "parquet"]]
    csv: NotRequired[CsvSettings]
    null_values: NotRequired[list[str]]
    columns: NotRequired[dict[str, ColumnType | ColumnSettings]]
    nul_characters: NotRequired[NulHandling]
    max_line_bytes: NotRequired[LineBytes]
    max_nesting_depth: NotRequired[NestingDepth]


def format_of(file_name: str, declared: str | None) -> str:
    if declared:
        if declared not in FORMATS:
            raise ValueError(f"file_format must be one of {', '.join(FORMATS)}, got {declared!r}")
        return declared
    suffix = "." + file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if suffix not in SUFFIXES:
        raise ValueError(
            f"cannot tell the format of {file_name!r} from its extension; "
            f"set format (or file_format) to one of {', '.join(FORMATS)}"
        )
    return SUFFIXES[suffix]

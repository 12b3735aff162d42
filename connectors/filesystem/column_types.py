"""Give the columns of a file table one set of types, block after block and file after file.

A text column takes the narrowest kind that **every** value read so far fits, and widens when a later
value needs it: integer → number → text, date → timestamp → text, boolean → text. Nothing a
mainstream reader parses is rejected: a column of mostly whole numbers with a few decimals is a
number column, a column holding one word among dates is text. Only a type declared in
``headwater.yaml`` (``columns: {amount: double}``) is strict: a value that does not fit it is
quarantined with its line, never nulled.

Objects and arrays (a JSONL field holding them, a Parquet list or struct) are JSON: written as JSON
text, they land as jsonb. Once a column is JSON every later value is written as JSON (a string as
``"text"``); a column that already has values of another kind takes objects and arrays as their JSON
text, and becomes text.

Missing values (the null tokens) are no kind at all, so a column that is empty so far stays open
(an all-null column, or a file that has none of its values), and the types the destination already
has (from dlt's schema) are where each column starts. Timestamps are stored in UTC; a value without
an offset is taken as UTC, the policy for every source.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Callable

import polars as pl
import pyarrow as pa

from connectors.filesystem.parsed import LINE_COLUMN, ParsedFile, Rejection
from headwater.common.timestamps import iso_timestamp
from headwater.common.widening import ALL_NULL_HINT

ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?$"
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)$"
INTEGER = r"^[+-]?(0|[1-9]\d*)$"  # "007" is a code, not the number 7: it stays text
NUMBER = r"^[+-]?((0|[1-9]\d*)(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity)$"
TIME = r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$"
UTC_MICROSECONDS = pl.Datetime("us", "UTC")

# The kinds a value can have, and the dlt type each lands as.
DLT_TYPES = {"boolean": "bool", "integer": "bigint", "number": "double", "decimal": "decimal", "date": "date",
             "timestamp": "timestamp", "time": "time", "text": "text", "json": "json"}
KIND_OF_DLT_TYPE = {"bool": "boolean", "bigint": "integer", "double": "number", "decimal": "decimal",
                    "wei": "decimal", "date": "date", "timestamp": "timestamp", "time": "time", "text": "text",
                    "json": "json", "binary": "text"}
# Names a declared column type may have in headwater.yaml.
DECLARED_KINDS = {
    "text": "text", "string": "text", "str": "text", "varchar": "text",
    "bigint": "integer", "integer": "integer", "int": "integer",
    "double": "number", "float": "number", "number": "number",
    "bool": "boolean", "boolean": "boolean",
    "date": "date", "timestamp": "timestamp", "datetime": "timestamp", "time": "time",
    "decimal": "decimal", "numeric": "decimal",
}
DECIMAL_TYPE = re.compile(r"^(decimal|numeric)\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
DEFAULT_DECIMAL = (38, 9)


@dataclass(frozen=True)
class Declared:
    """A column type written in headwater.yaml: values that do not fit it are quarantined."""

    kind: str
    format: str | None = None  # strftime pattern for dates and timestamps written otherwise than ISO 8601
    precision: int | None = None
    scale: int | None = None


def parse_declared(spec: str, date_format: str | None = None) -> Declared:
    """``double``, ``decimal(12,2)``, ``timestamp``, ...; ValueError naming the allowed names otherwise."""
    text = spec.strip().lower()
    match = DECIMAL_TYPE.match(text)
    if match:
        return Declared("decimal", date_format, int(match.group(2)), int(match.group(3)))
    if text not in DECLARED_KINDS:
        raise ValueError(f"unknown column type {spec!r}; allowed: {', '.join(sorted(set(DECLARED_KINDS)))} "
                         "or decimal(precision,scale)")
    kind = DECLARED_KINDS[text]
    precision, scale = DEFAULT_DECIMAL if kind == "decimal" else (None, None)
    return Declared(kind, date_format, precision, scale)


def join(a: str | None, b: str | None) -> str | None:
    """The narrowest kind both a's and b's values fit (None: no value seen yet)."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    pair = {a, b}
    if pair <= {"integer", "number"} or pair <= {"number", "decimal"}:
        return "number"
    if pair <= {"integer", "decimal"}:
        return "decimal"
    if pair <= {"date", "timestamp"}:
        return "timestamp"
    return "text"


@dataclass(frozen=True)
class NullTokens:
    """The values that mean "missing" in a text file, per column, and those its parser already turned to null.

    The parser applies ``parsed`` to unquoted values only; the rest of a column's tokens are applied
    here. A quoted token the parser left as text stays text in a text column (R writes the string
    "NA" quoted and a missing value as a bare NA) and is missing in any other.
    """

    default: frozenset[str] = frozenset()
    columns: dict[str, frozenset[str]] | None = None
    parsed: frozenset[str] = frozenset()

    def of(self, column: str) -> frozenset[str]:
        return (self.columns or {}).get(column, self.default)

    def after_parse(self, column: str) -> frozenset[str]:
        return self.of(column) - self.parsed


NO_TOKENS = NullTokens()


class TableKinds:
    """The kinds of one table's columns in this run, shared by all its files; ``apply`` types a block.

    ``known``: the kinds the destination already has (from dlt's schema), where widening starts.
    ``declared``: the kinds headwater.yaml fixes.
    """

    def __init__(self, known: dict[str, str] | None = None, declared: dict[str, Declared] | None = None,
                 decimal_places: dict | None = None):
        self.kinds: dict[str, str] = dict(known or {})
        self.declared = dict(declared or {})
        self.decimal_places = dict(decimal_places or {})  # known decimal column -> (precision, scale)
        self.offsets: dict[str, bool] = {}  # timestamp column -> every value so far carries an offset
        self.widened: dict[str, tuple[str, str]] = {}  # column -> (kind before, kind after) in this run
        self._known: dict[str, dict] = {}  # the destination's columns, by the name dlt gives them
        self.normalize: Callable[[str], str] = str  # how dlt names a file's column in the destination

    def start_from(self, columns: dict[str, dict], normalize: Callable[[str], str] = str) -> None:
        """Begin from the columns the destination has (dlt column schemas, named by ``normalize`` from the
        file's names); a column that holds only nulls so far (``ALL_NULL_HINT``) has no kind yet."""
        self._known = {name: column for name, column in columns.items()
                       if KIND_OF_DLT_TYPE.get(column.get("data_type") or "") and not column.get(ALL_NULL_HINT)}
        self.normalize = normalize

    def _settle_from_known(self, name: str) -> None:
        column = self._known.get(self.normalize(name)) if name not in self.kinds else None
        if column is None:
            return
        kind = self.kinds[name] = KIND_OF_DLT_TYPE[column["data_type"]]
        if kind == "decimal":
            self.decimal_places[name] = (column.get("precision") or DEFAULT_DECIMAL[0],
                                         column["scale"] if column.get("scale") is not None else DEFAULT_DECIMAL[1])

    def is_json(self, name: str) -> bool:
        """Whether a file's field is a JSON column of the table (from this run's files, or in the destination)."""
        self._settle_from_known(name)
        return self.kinds.get(name) == "json"

    def arrow_types(self) -> dict[str, pa.DataType]:
        """The settled types as a CSV reader can apply them while parsing (text columns stay text)."""
        types = {}
        for name, kind in {**self.kinds, **{n: d.kind for n, d in self.declared.items()}}.items():
            if name in self.declared and self.declared[name].format:
                types[name] = pa.string()
            elif kind == "timestamp":
                types[name] = pa.timestamp("us", "UTC") if self.offsets.get(name) else pa.timestamp("us")
            elif kind in ARROW_TYPES:
                types[name] = ARROW_TYPES[kind]
            else:
                types[name] = pa.string()
        return types

    def apply(self, parsed: ParsedFile, nulls: NullTokens = NO_TOKENS, decimal_comma: bool = False) -> ParsedFile:
        frame = parsed.frame
        if frame.height == 0:
            return parsed
        columns, failures = [], []
        for name in frame.columns:
            if name == LINE_COLUMN:
                continue
            values = frame[name]
            if name in self.declared:
                typed, failed = self._declared(values, self.declared[name], nulls, decimal_comma)
                if failed is not None:
                    failures.append((name, self.declared[name].kind, failed))
            else:
                typed = self._widening(values, nulls, decimal_comma, name in parsed.json_columns)
            if typed is not values:
                columns.append(typed)
        typed_frame = frame.with_columns(columns) if columns else frame
        if not failures:
            return replace(parsed, frame=typed_frame)
        good, rejections = _split_failures(frame, typed_frame, failures, parsed.rejections)
        return replace(parsed, frame=good, rejections=rejections)

    # -- undeclared columns: widen ---------------------------------------------------------------------------

    def _widening(self, values: pl.Series, nulls: NullTokens, decimal_comma: bool, holds_json: bool) -> pl.Series:
        name = values.name
        self._settle_from_known(name)
        current = self.kinds.get(name)
        if holds_json:  # JSON text of objects and arrays
            present = values.drop_nulls()
            block_kind = "json" if present.len() else None
        elif values.dtype == pl.String:
            present = _without(values.drop_nulls(), nulls.of(name))
            block_kind = current if current in ("text", "json") else infer_kind(present, decimal_comma)
        else:
            present = values.drop_nulls()
            block_kind = _kind_of_dtype(values.dtype) if present.len() else None
        kind = join_with_json(current, block_kind)
        if kind != current:
            if current is not None:
                self.widened[name] = (self.widened.get(name, (current, kind))[0], kind)
            self.kinds[name] = kind
        if kind == "timestamp" and values.dtype == pl.String and present.len():
            offsets = bool(present.str.strip_chars().str.contains(OFFSET).all())
            self.offsets[name] = self.offsets.get(name, offsets) and offsets
        if kind is None:
            return pl.Series(name, [None] * values.len(), dtype=pl.Null)
        if holds_json:
            return values  # JSON text, for a JSON column and for a text column alike
        if kind == "json":
            return json_text(_nulled(values, nulls.after_parse(name)) if values.dtype == pl.String else values)
        if values.dtype == pl.String:
            tokens = nulls.after_parse(name) if kind == "text" else nulls.of(name)
            values = _nulled(values, tokens)
        return convert(values, kind, decimal_comma, self.decimal_places.get(name))

    # -- declared columns: strict ----------------------------------------------------------------------------

    def _declared(self, values: pl.Series, declared: Declared, nulls: NullTokens, decimal_comma: bool):
        """(typed, failed rows or None): a value that does not fit is a failure, never a null."""
        if values.dtype == pl.String:
            tokens = nulls.after_parse(values.name) if declared.kind == "text" else nulls.of(values.name)
            values = _nulled(values, tokens)
        typed = convert(values, declared.kind, decimal_comma, (declared.precision, declared.scale), declared.format)
        failed = values.is_not_null() & typed.is_null()
        return typed, (failed if failed.any() else None)


def join_with_json(current: str | None, arriving: str | None) -> str | None:
    """``join``, with JSON: a JSON column takes any value (written as JSON); a column of another kind that
    meets objects or arrays becomes text (they are their JSON text in it), since its values are not JSON."""
    if current == "json" or (current is None and arriving == "json"):
        return "json"
    if arriving == "json":
        return "text"
    return join(current, arriving)


def json_text(values: pl.Series) -> pl.Series:
    """Each value as JSON text (a string quoted, a list or struct as an array or object); null stays null."""
    encoded = pl.select(pl.struct(values.alias("v")).struct.json_encode()).to_series()
    text = encoded.str.strip_prefix('{"v":').str.strip_suffix("}")
    return pl.select(pl.when(values.is_not_null()).then(text)).to_series().alias(values.name)


def _without(values: pl.Series, tokens: frozenset[str]) -> pl.Series:
    return values.filter(~values.is_in(list(tokens))) if tokens else values


def _nulled(values: pl.Series, tokens: frozenset[str]) -> pl.Series:
    if not tokens:
        return values
    return pl.select(pl.when(values.is_in(list(tokens))).then(None).otherwise(values)).to_series().alias(values.name)


def infer_kind(values: pl.Series, decimal_comma: bool = False) -> str | None:
    """The narrowest kind every value parses as (values holds no nulls or null tokens); None when empty."""
    if values.len() == 0:
        return None
    stripped = values.str.strip_chars()
    lowered = stripped.str.to_lowercase()
    if lowered.is_in(["true", "false"]).all():
        return "boolean"
    numeric = stripped.str.replace(",", ".", literal=True) if decimal_comma else stripped
    if numeric.str.contains(INTEGER).all() and numeric.cast(pl.Int64, strict=False).null_count() == 0:
        return "integer"
    if numeric.str.contains(NUMBER).all() and numeric.str.contains(r"\d").any():
        return "number"
    if stripped.str.contains(ISO_DATE).all() and _dates(stripped).null_count() == 0:
        return "date"
    if stripped.str.contains(ISO_TIMESTAMP).all() and timestamps(stripped).null_count() == 0:
        return "timestamp"
    return "text"


def convert(values: pl.Series, kind: str, decimal_comma: bool = False, places: tuple | None = None,
            date_format: str | None = None) -> pl.Series:
    """``values`` as ``kind``; a value that does not parse becomes null (callers decide what that means)."""
    name = values.name
    if values.dtype == pl.Null:
        return pl.Series(name, [None] * values.len(), dtype=POLARS_TYPES.get(kind, pl.String))
    if values.dtype != pl.String:
        return _cast_typed(values, kind, places)
    if kind == "text":
        return values
    stripped = values.str.strip_chars()
    if kind in ("integer", "number", "decimal") and decimal_comma:
        stripped = stripped.str.replace(",", ".", literal=True)
    if kind == "integer":
        return stripped.cast(pl.Int64, strict=False)
    if kind == "number":
        return stripped.cast(pl.Float64, strict=False)
    if kind == "decimal":
        precision, scale = places or DEFAULT_DECIMAL
        return _decimals(stripped, precision, scale)
    if kind == "boolean":
        lowered = stripped.str.to_lowercase()
        return pl.select(pl.when(lowered == "true").then(True).when(lowered == "false").then(False)
                         .otherwise(None)).to_series().alias(name)
    if kind == "date":
        return stripped.str.to_date(date_format or "%Y-%m-%d", strict=False)
    if kind == "timestamp":
        if date_format:
            return in_utc(stripped.str.to_datetime(date_format, time_unit="us", strict=False))
        return timestamps(stripped)
    if kind == "time":
        return stripped.str.to_time(date_format or "%H:%M:%S%.f", strict=False)
    raise ValueError(f"unknown kind {kind!r}")


def _cast_typed(values: pl.Series, kind: str, places: tuple | None) -> pl.Series:
    """A typed column (JSON, Parquet, a typed CSV parse) as ``kind``: a widening, or the same kind."""
    if kind == "json" or (kind == "text" and values.dtype.is_nested()):
        return json_text(values)
    if kind == "text":
        if values.dtype.is_nested():  # lists and structs (where a scalar was, say) are kept whole, as JSON
            return _json_text(values)
        return values if values.dtype == pl.String else values.cast(pl.String)
    if kind == "timestamp":
        if values.dtype == pl.Date:
            values = values.cast(pl.Datetime("us"))
        return in_utc(values) if isinstance(values.dtype, pl.Datetime) else values
    if kind == "decimal":
        precision, scale = places or DEFAULT_DECIMAL
        return values.cast(pl.Decimal(precision, scale), strict=False)
    target = POLARS_TYPES.get(kind)
    return values if target is None or values.dtype == target else values.cast(target, strict=False)


def _json_text(values: pl.Series) -> pl.Series:
    encoded = [None if value is None else json.dumps(value, default=str, ensure_ascii=False)
               for value in values.to_list()]
    return pl.Series(values.name, encoded, dtype=pl.String)


def _decimals(values: pl.Series, precision: int, scale: int) -> pl.Series:
    """Exact decimals from text, through Python's Decimal: no binary float in between."""
    parsed = []
    limit = Decimal(10) ** (precision - scale)
    quantum = Decimal(1).scaleb(-scale)
    for value in values.to_list():
        try:
            number = Decimal(value) if value is not None else None
        except InvalidOperation:
            number = None
        if number is not None and (not number.is_finite() or abs(number) >= limit
                                   or number.quantize(quantum) != number):
            number = None  # more digits than the column holds: not silently rounded
        parsed.append(number.quantize(quantum) if number is not None else None)
    return pl.Series(values.name, parsed, dtype=pl.Decimal(precision, scale))


def _kind_of_dtype(dtype: pl.DataType) -> str | None:
    if dtype == pl.Null:
        return None
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float():
        return "number"
    if isinstance(dtype, pl.Decimal):
        return "decimal"
    if isinstance(dtype, pl.Datetime):
        return "timestamp"
    if dtype == pl.Date:
        return "date"
    if dtype == pl.Time:
        return "time"
    if dtype.is_nested():
        return "json"
    return "text"


def _dates(values: pl.Series) -> pl.Series:
    return values.str.to_date("%Y-%m-%d", strict=False)


def timestamps(values: pl.Series) -> pl.Series:
    """ISO-8601 text as UTC timestamps (naive values taken as UTC); anything else null."""
    looks_right = values.str.contains(ISO_TIMESTAMP).fill_null(False)
    if not looks_right.any():
        return pl.Series(values.name, [None] * values.len(), dtype=UTC_MICROSECONDS)
    # The format is read per value so that "Z" and "+01:00" offsets, and dates, can share a column.
    offsets = values.filter(looks_right).str.contains(OFFSET)
    try:
        parsed = values.str.to_datetime(time_unit="us", strict=False, time_zone="UTC" if offsets.all() else None)
    except pl.exceptions.ComputeError:  # Polars infers the format from one value; when that one is odd, ask Python
        parsed = None
    parsed = in_utc(parsed) if parsed is not None else None
    missed = looks_right & (parsed.is_null() if parsed is not None else True)
    if parsed is None or missed.any():
        python = pl.Series(values.name, [_iso(value) if want else None
                                         for value, want in zip(values.to_list(), looks_right.to_list(), strict=True)],
                           dtype=UTC_MICROSECONDS)
        parsed = python if parsed is None else pl.select(
            pl.when(missed).then(python).otherwise(parsed)).to_series()
    return pl.select(pl.when(looks_right).then(parsed).otherwise(None)).to_series().alias(values.name)


def _iso(value: str | None) -> datetime | None:
    parsed = iso_timestamp(value)
    return parsed.astimezone(timezone.utc) if parsed is not None else None


def in_utc(column: pl.Series) -> pl.Series:
    if column.dtype.time_zone == "UTC":
        return column
    if column.dtype.time_zone is None:  # naive timestamps in landing files are taken as UTC
        return column.dt.replace_time_zone("UTC")
    return column.dt.convert_time_zone("UTC")


def _split_failures(original: pl.DataFrame, typed: pl.DataFrame, failures, rejections: list[Rejection]):
    bad = pl.Series([False] * original.height)
    for _, _, failed in failures:
        bad = bad | failed
    rejections = list(rejections)
    # Only the few failing rows are turned into Python objects; their record shows the values as they were read.
    for index in bad.arg_true().to_list():
        row = original.row(index, named=True)
        reasons = [f"{name}: {row[name]!r} is not a valid {kind}" for name, kind, failed in failures if failed[index]]
        record = {key: value for key, value in row.items() if key != LINE_COLUMN}
        rejections.append(Rejection(row[LINE_COLUMN], record, "cast", "; ".join(reasons)))
    return typed.filter(~bad), rejections


ARROW_TYPES = {"integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_(), "date": pa.date32()}
POLARS_TYPES = {"integer": pl.Int64, "number": pl.Float64, "boolean": pl.Boolean, "date": pl.Date,
                "timestamp": UTC_MICROSECONDS, "time": pl.Time, "text": pl.String}

"""The `cast` step's types: parsing `int`, `timestamp`, `decimal(12,2)`..., and casting row by row without failing.

A value that cannot be converted becomes null instead of failing the whole column, so the
caller can reject exactly the rows whose value was present but did not convert.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

ALLOWED = "str, int, float, bool, date, timestamp, decimal(p,s)"
DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
SIMPLE: dict[str, pl.DataType] = {
    "str": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    # Timestamps are stored in UTC: text with an offset is converted, text without one is read as UTC.
    "timestamp": pl.Datetime("us", "UTC"),
}
TRUE = ("true", "t", "yes", "y", "1")
FALSE = ("false", "f", "no", "n", "0")
# ISO 8601 shapes tried in order when no format is given (a `T` separator is read as a space first).
AWARE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M%#z")
NAIVE_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")


@dataclass(frozen=True)
class CastType:
    name: str
    dtype: pl.DataType
    format: str | None = None

    @property
    def described(self) -> str:
        """`an int`, `a timestamp`: for reasons such as "'x' is not an int"."""
        return ("an " if self.name[0] in "aeiou" else "a ") + self.name


def parse_type(spec: object) -> CastType | str:
    """The type named by a cast option (`int`, or `{type: date, format: "%d.%m.%Y"}`), or an error message."""
    fmt = None
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - {"type", "format"})
        if unknown:
            return f"unknown option {', '.join(map(repr, unknown))}; allowed: type, format"
        fmt = spec.get("format")
        spec = spec.get("type")
        if fmt is not None and not isinstance(fmt, str):
            return f"format must be a strftime pattern such as '%d.%m.%Y', got {fmt!r}"
    if not isinstance(spec, str):
        return f"expected a type, got {spec!r}; allowed: {ALLOWED}"
    name = spec.strip().lower()
    if fmt is not None and name not in ("date", "timestamp"):
        return f"format applies to date and timestamp only, not {name!r}"
    if name in SIMPLE:
        return CastType(name, SIMPLE[name], fmt)
    match = DECIMAL.match(name)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            return f"decimal({precision},{scale}): precision must be 1-38 and scale at most the precision"
        return CastType(f"decimal({precision},{scale})", pl.Decimal(precision, scale))
    return f"unknown type {spec!r}; allowed: {ALLOWED}"


def cast_expr(column: str, source: pl.DataType, target: CastType) -> pl.Expr:
    """The column converted to target; null wherever a value does not convert (never an error per row)."""
    value = pl.col(column)
    if target.name == "str":
        return value.cast(pl.String, strict=False)
    if source == pl.String:
        return _from_text(value.str.strip_chars(), target)
    if target.name == "int" and source.is_float():
        # A float cast to int truncates silently; only whole numbers are taken.
        return pl.when(value == value.floor()).then(value.cast(pl.Int64, strict=False))
    if target.name == "date" and isinstance(source, pl.Datetime):
        return value.dt.date()
    if target.name == "timestamp":
        if isinstance(source, pl.Datetime):
            return _in_utc(value, source.time_zone is not None)
        return value.cast(pl.Datetime("us"), strict=False).dt.replace_time_zone("UTC")
    return value.cast(target.dtype, strict=False)


def unconverted(column: str, source: pl.DataType, converted: pl.Expr) -> pl.Expr:
    """True where a value was present but did not convert (blank text counts as absent, not as a failure)."""
    value = pl.col(column)
    present = value.is_not_null()
    if source == pl.String:
        present = present & (value.str.strip_chars() != "")
    return present & converted.is_null()


def _from_text(text: pl.Expr, target: CastType) -> pl.Expr:
    if target.name == "bool":
        lowered = text.str.to_lowercase()
        return pl.when(lowered.is_in(TRUE)).then(True).when(lowered.is_in(FALSE)).then(False)
    if target.name == "date":
        formats = [target.format] if target.format else ["%Y-%m-%d"]
        return pl.coalesce([text.str.to_date(fmt, strict=False) for fmt in formats])
    if target.name == "timestamp":
        if target.format:
            aware = any(code in target.format for code in ("%z", "%:z", "%#z"))
            parsed = text.str.to_datetime(target.format, strict=False, time_unit="us")
            return _in_utc(parsed, aware)
        text = text.str.replace("T", " ", literal=True, n=1)
        parsed = [text.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC") for fmt in AWARE_FORMATS]
        parsed += [
            text.str.to_datetime(fmt, strict=False, time_unit="us").dt.replace_time_zone("UTC") for fmt in NAIVE_FORMATS
        ]
        return pl.coalesce(parsed)
    return text.cast(target.dtype, strict=False)


def _in_utc(value: pl.Expr, aware: bool) -> pl.Expr:
    value = value.dt.cast_time_unit("us")
    return value.dt.convert_time_zone("UTC") if aware else value.dt.replace_time_zone("UTC")

"""The built-in steps that reshape values: rename, cast, trim, normalise, derive (plus pii and lookup, elsewhere)."""

from __future__ import annotations

from typing import Any

import polars as pl

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.processing import lookup, pii
from headwater.processing.casting import CastType, cast_expr, parse_type, unconverted
from headwater.processing.frames import StepError, is_metadata, rejects, require_columns, shown
from headwater.processing.options import Context, column_list, column_name, mapping
from headwater.processing.spec import Spec, StepFunction

CONVERTED = "__headwater_converted"
NORMALISE_MODES = ("lower", "upper", "title", "nfc", "collapse_spaces")


def _check_rename(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    renames = mapping(options, where, problems, "{cust_name: name}")
    for old, new in (renames or {}).items():
        if column_name(old, (*where, old), problems):
            column_name(new, (*where, old), problems)
    targets = list((renames or {}).values())
    for new in {name for name in targets if targets.count(name) > 1}:
        problems.append(Problem(where, f"several columns are renamed to {new!r}"))


def _build_rename(options: dict, context: Context) -> StepFunction:
    def rename(frame: pl.DataFrame):
        require_columns(frame, options, "rename")
        return frame.rename(options), None

    return rename


def _check_cast(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    for column, spec in (
        mapping(options, where, problems, "{ordered_at: timestamp, price: 'decimal(12,2)'}") or {}
    ).items():
        if column_name(column, (*where, column), problems):
            parsed = parse_type(spec)
            if isinstance(parsed, str):
                problems.append(Problem((*where, column), parsed))


def _build_cast(options: dict, context: Context) -> StepFunction:
    targets: dict[str, CastType] = {column: parse_type(spec) for column, spec in options.items()}

    def cast(frame: pl.DataFrame):
        require_columns(frame, targets, "cast")
        records = []
        for column, target in targets.items():
            source = frame.schema[column]
            converted = cast_expr(column, source, target)
            reason = pl.concat_str(pl.lit(f"{column}: "), shown(pl.col(column)), pl.lit(f" is not {target.described}"))
            try:
                # Converted once into a side column: both the reject mask and the result read it.
                frame = frame.with_columns(converted.alias(CONVERTED))
                frame, rejected = rejects(frame, unconverted(column, source, pl.col(CONVERTED)), "cast", reason)
                frame = frame.with_columns(pl.col(CONVERTED).alias(column)).drop(CONVERTED)
            except pl.exceptions.PolarsError as error:  # a conversion Polars has no rule for, e.g. bool -> date
                raise StepError(f"{column} ({source}) cannot become {target.name}: {error}") from error
            records.append(rejected)
        return frame, pl.concat(records) if records else None

    return cast


def _check_trim(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    if options != "all":
        column_list(options, where, problems, "[name, email] or all")


def _build_trim(options: Any, context: Context) -> StepFunction:
    def trim(frame: pl.DataFrame):
        if options == "all":
            columns = [name for name, dtype in frame.schema.items() if dtype == pl.String and not is_metadata(name)]
        else:
            columns = [options] if isinstance(options, str) else list(options)
            require_columns(frame, columns, "trim")
            # Only text has whitespace to strip; typed columns (a Parquet int) are left as they are.
            columns = [name for name in columns if frame.schema[name] == pl.String]
        return frame.with_columns(pl.col(columns).str.strip_chars()), None

    return trim


def _modes(spec: Any) -> list[Any]:
    return spec if isinstance(spec, list) else [spec]


def _check_normalise(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    for column, spec in (
        mapping(options, where, problems, "{email: lower, name: [collapse_spaces, title]}") or {}
    ).items():
        if column_name(column, (*where, column), problems):
            for mode in _modes(spec):
                if mode not in NORMALISE_MODES:
                    problems.append(
                        Problem((*where, column), f"unknown mode {mode!r}; allowed: {', '.join(NORMALISE_MODES)}")
                    )


def _normalised(value: pl.Expr, mode: str) -> pl.Expr:
    if mode == "lower":
        return value.str.to_lowercase()
    if mode == "upper":
        return value.str.to_uppercase()
    if mode == "title":
        return value.str.to_titlecase()
    if mode == "nfc":
        return value.str.normalize("NFC")
    return value.str.replace_all(r"\s+", " ").str.strip_chars()  # collapse_spaces


def _build_normalise(options: dict, context: Context) -> StepFunction:
    def normalise(frame: pl.DataFrame):
        require_columns(frame, options, "normalise")
        expressions = []
        for column, spec in options.items():
            value = pl.col(column).cast(pl.String)
            for mode in _modes(spec):
                value = _normalised(value, mode)
            expressions.append(value.alias(column))
        return frame.with_columns(expressions), None

    return normalise


def _check_derive(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    for column, sql in (mapping(options, where, problems, "{total: 'quantity * unit_price'}") or {}).items():
        if not column_name(column, (*where, column), problems):
            continue
        if not isinstance(sql, str) or not sql.strip():
            problems.append(Problem((*where, column), f"expected a SQL expression, got {sql!r}"))
            continue
        try:
            pl.sql_expr(sql)
        except pl.exceptions.PolarsError as error:
            problems.append(Problem((*where, column), f"invalid SQL expression {sql!r}: {error}"))


def _build_derive(options: dict, context: Context) -> StepFunction:
    expressions = {column: pl.sql_expr(sql) for column, sql in options.items()}

    def derive(frame: pl.DataFrame):
        # One at a time, so a derived column can use the ones derived before it.
        for column, expression in expressions.items():
            try:
                frame = frame.with_columns(expression.alias(column))
            except pl.exceptions.PolarsError as error:
                raise StepError(f"{column} = {options[column]!r} failed: {error}") from error
        return frame, None

    return derive


BUILTIN_STEPS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec("rename", "rename columns: {old: new}", _check_rename, _build_rename),
        Spec("cast", "convert columns; rows whose value does not convert are rejected", _check_cast, _build_cast),
        Spec("trim", "strip leading and trailing whitespace: [columns] or all", _check_trim, _build_trim),
        Spec("normalise", "lower, upper, title, nfc, collapse_spaces", _check_normalise, _build_normalise),
        Spec("derive", "new columns from Polars SQL expressions", _check_derive, _build_derive),
        Spec("lookup", "add columns from a reference CSV/Parquet file", lookup.check, lookup.build),
        Spec("pii", "drop, mask or hash (HMAC-SHA256) personal data", pii.check, pii.build),
    )
}
# American spelling, so either reads naturally in headwater.yaml.
BUILTIN_STEPS["normalize"] = Spec(
    "normalize", BUILTIN_STEPS["normalise"].description, _check_normalise, _build_normalise
)

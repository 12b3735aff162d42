"""Row rules checked after the steps: a row that breaks one is rejected with the rule and a readable reason.

Nulls pass every rule except `required`, as in dbt's tests and SQL constraints, so each rule says
one thing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Callable

import polars as pl

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.processing.frames import rejects, require_columns, shown
from headwater.processing.options import Context, column_list, column_name, mapping
from headwater.processing.spec import Spec, StepFunction

# The (failed, reason) pairs of one rule, built once the frame's column types are known.
Check = Callable[[pl.DataFrame], list[tuple[pl.Expr, pl.Expr]]]


def _runner(name: str, columns: list[str], checks: Check):
    """A rule function applying (failed, reason) checks one after another, so a row is reported once."""

    def rule(frame: pl.DataFrame):
        require_columns(frame, columns, name)
        records = []
        for failed, reason in checks(frame):
            frame, rejected = rejects(frame, failed, name, reason)
            records.append(rejected)
        return frame, pl.concat(records) if records else None

    return rule


def _check_required(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    column_list(options, where, problems, "[customer_id, email]")


def _build_required(options: Any, context: Context) -> StepFunction:
    columns = [options] if isinstance(options, str) else list(options)

    def checks(frame: pl.DataFrame):
        result = []
        for column in columns:
            value = pl.col(column)
            failed = value.is_null()
            reason = pl.lit(f"{column}: missing")
            if frame.schema[column] == pl.String:
                # Blank text is as missing as null for a required value (CSV files rarely tell them apart).
                failed = failed | (value.str.strip_chars() == "")
                reason = pl.when(value.is_null()).then(reason).otherwise(pl.lit(f"{column}: blank"))
            result.append((failed, reason))
        return result

    return _runner("required", columns, checks)


def _check_allowed(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    for column, values in (mapping(options, where, problems, "{status: [placed, shipped]}") or {}).items():
        if column_name(column, (*where, column), problems) and (not isinstance(values, list) or not values):
            problems.append(Problem((*where, column), f"expected a list of allowed values, got {values!r}"))


def _build_allowed(options: dict, context: Context) -> StepFunction:
    def checks(frame: pl.DataFrame):
        result = []
        for column, values in options.items():
            listed = ", ".join(str(value) for value in values)
            allowed = pl.Series(values).cast(frame.schema[column], strict=False)
            failed = pl.col(column).is_not_null() & ~pl.col(column).is_in(allowed.implode())
            result.append(
                (
                    failed,
                    pl.concat_str(pl.lit(f"{column}: "), shown(pl.col(column)), pl.lit(f" is not one of {listed}")),
                )
            )
        return result

    return _runner("allowed", list(options), checks)


BOUNDS = ("min", "max")


def _check_range(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    for column, bounds in (mapping(options, where, problems, "{quantity: {min: 1, max: 1000}}") or {}).items():
        here = (*where, column)
        if not column_name(column, here, problems):
            continue
        if not isinstance(bounds, dict) or not bounds or set(bounds) - set(BOUNDS):
            problems.append(Problem(here, f"expected {{min: ..., max: ...}} (either or both), got {bounds!r}"))
            continue
        for key, bound in bounds.items():
            if isinstance(bound, bool) or not isinstance(bound, (int, float, date, str)):
                problems.append(Problem((*here, key), f"expected a number or a date, got {bound!r}"))


def _bound(value: Any, dtype: pl.DataType) -> pl.Expr:
    """A bound in the column's type, so `min: 2024-01-01` compares with dates and timestamps."""
    if isinstance(dtype, pl.Datetime):
        if isinstance(value, str):
            return pl.lit(value).str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone)
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        return pl.lit(value).cast(pl.Datetime(dtype.time_unit)).dt.replace_time_zone(dtype.time_zone)
    if dtype == pl.Date and isinstance(value, str):
        return pl.lit(value).str.to_date()
    return pl.lit(value)


def _build_range(options: dict, context: Context) -> StepFunction:
    def checks(frame: pl.DataFrame):
        result = []
        for column, bounds in options.items():
            value, dtype = pl.col(column), frame.schema[column]
            for key, word, compare in (
                ("min", "below the minimum", value.__lt__),
                ("max", "above the maximum", value.__gt__),
            ):
                if key in bounds:
                    reason = pl.concat_str(pl.lit(f"{column}: "), shown(value), pl.lit(f" is {word} {bounds[key]}"))
                    result.append((compare(_bound(bounds[key], dtype)), reason))
        return result

    return _runner("range", list(options), checks)


def _check_pattern(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    for column, regex in (mapping(options, where, problems, '{email: "^[^@]+@[^@]+$"}') or {}).items():
        if not column_name(column, (*where, column), problems):
            continue
        if not isinstance(regex, str):
            problems.append(Problem((*where, column), f"expected a regular expression, got {regex!r}"))
            continue
        try:  # Polars' own regex engine decides what is valid (Rust syntax: no look-around)
            pl.select(pl.lit("").str.contains(regex))
        except pl.exceptions.PolarsError as error:
            message = str(error).strip().splitlines()[0]
            problems.append(Problem((*where, column), f"invalid regular expression {regex!r}: {message}"))


def _build_pattern(options: dict, context: Context) -> StepFunction:
    def checks(frame: pl.DataFrame):
        result = []
        for column, regex in options.items():
            value = pl.col(column)
            failed = value.is_not_null() & ~value.cast(pl.String).str.contains(regex)
            result.append(
                (failed, pl.concat_str(pl.lit(f"{column}: "), shown(value), pl.lit(f" does not match {regex}")))
            )
        return result

    return _runner("pattern", list(options), checks)


RULES: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec("required", "the columns are present and not blank", _check_required, _build_required),
        Spec("allowed", "the value is one of a list", _check_allowed, _build_allowed),
        Spec("range", "the value lies within min and max", _check_range, _build_range),
        Spec("pattern", "the text matches a regular expression", _check_pattern, _build_pattern),
    )
}

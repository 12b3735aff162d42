"""Row bookkeeping shared by steps and rules: which input row a value came from, and why a row was rejected."""

from __future__ import annotations

import polars as pl

# Added to the frame for the duration of apply_plan, so a rejected row can be reported with its original values.
ROW = "__headwater_row"
RULE = "_rule"
REASON = "_reason"
REJECT_SCHEMA = {ROW: pl.UInt32, RULE: pl.String, REASON: pl.String}


class StepError(ValueError):
    """The data does not fit the plan as a whole (a missing column, a failing expression): no row can go through."""


def is_metadata(column: str) -> bool:
    """Columns starting with `_` (`_file_name`, `_line`, ...) belong to the loader and pass through steps untouched."""
    return column.startswith("_")


def shown(value: pl.Expr) -> pl.Expr:
    """A value as it appears in a reason: quoted text, or `null`."""
    text = value.cast(pl.String, strict=False)
    return pl.when(value.is_null()).then(pl.lit("null")).otherwise(pl.concat_str(pl.lit("'"), text, pl.lit("'")))


def rejects(frame: pl.DataFrame, failed: pl.Expr, rule: str, reason: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split frame into the rows that pass and the (row, rule, reason) records of the rows where `failed` holds."""
    flagged = frame.with_columns(failed.fill_null(False).alias("__headwater_failed"))
    bad = flagged.filter(pl.col("__headwater_failed"))
    records = bad.select(pl.col(ROW), pl.lit(rule, dtype=pl.String).alias(RULE), reason.cast(pl.String).alias(REASON))
    return flagged.filter(~pl.col("__headwater_failed")).drop("__headwater_failed"), records


def require_columns(frame: pl.DataFrame, columns, step: str) -> None:
    """Stop with one clear message when the data lacks a column the plan names."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        present = ", ".join(column for column in frame.columns if column != ROW)
        raise StepError(f"column {', '.join(map(repr, missing))} not found; the data has: {present}")

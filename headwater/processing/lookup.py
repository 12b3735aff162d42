"""The `lookup` step: add columns from a reference table kept as a CSV or Parquet file in the project.

CSV reference files are read as text, so codes such as `007` keep their leading zeros; the key
is converted to the type of the data's key column for the join.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.processing.frames import StepError, rejects, require_columns, shown
from headwater.processing.options import Context, column_list, column_name, mapping, unknown_keys
from headwater.processing.spec import StepFunction

OPTIONS = ("file", "on", "columns", "missing")
MISSING = ("null", "reject")
READERS = {".csv": lambda path: pl.read_csv(path, infer_schema=False), ".parquet": pl.read_parquet}
MATCHED = "__headwater_matched"


def _keys(on: Any) -> dict[str, str] | None:
    """{data column: reference column} from `on: code` or `on: {country_code: code}`."""
    if isinstance(on, str):
        return {on: on}
    if isinstance(on, dict) and on and all(isinstance(k, str) and isinstance(v, str) for k, v in on.items()):
        return dict(on)
    return None


def _path(file: str, context: Context) -> Path:
    if context.variables is not None:
        file = context.variables.resolve(file)
    path = Path(file)
    return path if path.is_absolute() else context.project_dir / path


def read_reference(path: Path) -> pl.DataFrame:
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"{path.name}: a reference file must be {' or '.join(READERS)}")
    return reader(path)


def check(options: Any, where: KeyPath, problems: list[Problem], context: Context) -> None:
    example = "{file: reference/countries.csv, on: country_code, columns: [country_name], missing: null}"
    options = mapping(options, where, problems, example)
    if options is None:
        return
    unknown_keys(options, OPTIONS, where, problems)
    keys = _keys(options.get("on"))
    if keys is None:
        problems.append(Problem((*where, "on"), "expected a key column, or {data column: reference column}"))
    else:
        for column in keys:
            column_name(column, (*where, "on"), problems)
    columns = options.get("columns")
    if columns is not None:
        columns = column_list(columns, (*where, "columns"), problems, "[country_name]")
    missing = options.get("missing", "null")
    if missing is None:  # YAML reads a bare `null` as None
        missing = "null"
    if missing not in MISSING:
        problems.append(Problem((*where, "missing"), f"unknown value {missing!r}; allowed: {', '.join(MISSING)}"))

    file = options.get("file")
    if not isinstance(file, str) or not file:
        problems.append(Problem((*where, "file"), "expected a CSV or Parquet file, relative to the project folder"))
        return
    if context.variables is not None and (context.variables.missing(file) or context.variables.blocks_in(file)):
        return  # missing ones are reported where the variables are checked; blocks are read only by a run
    path = _path(file, context)
    if not path.is_file():
        problems.append(Problem((*where, "file"), f"file {path} does not exist"))
        return
    try:
        reference = read_reference(path)
    except Exception as error:  # any unreadable file is a config problem, reported with its reason
        problems.append(Problem((*where, "file"), f"cannot read {path}: {error}"))
        return
    wanted = list(keys.values()) if keys else []
    absent = [column for column in [*wanted, *(columns or [])] if column not in reference.columns]
    if absent:
        problems.append(
            Problem(
                where,
                f"{file} has no column {', '.join(map(repr, absent))}; it has: {', '.join(reference.columns)}",
            )
        )
    elif wanted and reference.select(wanted).is_duplicated().any():
        duplicated = reference.filter(reference.select(wanted).is_duplicated()).select(wanted).row(0)
        problems.append(
            Problem(where, f"{file}: key {duplicated!r} appears more than once; a lookup key must be unique")
        )


def build(options: dict, context: Context) -> StepFunction:
    keys = _keys(options["on"])
    file = options["file"]
    reference = read_reference(_path(file, context))
    columns = options.get("columns")
    columns = [columns] if isinstance(columns, str) else columns
    if columns is None:
        columns = [column for column in reference.columns if column not in keys.values()]
    reject = options.get("missing") == "reject"
    reference = reference.select([*keys.values(), *columns]).with_columns(pl.lit(True).alias(MATCHED))

    def lookup(frame: pl.DataFrame):
        require_columns(frame, keys, "lookup")
        clashing = [column for column in columns if column in frame.columns]
        if clashing:
            raise StepError(f"{file} would overwrite column {', '.join(map(repr, clashing))}")
        aligned = reference.with_columns(
            pl.col(theirs).cast(frame.schema[ours], strict=False).alias(ours) for ours, theirs in keys.items()
        ).drop([theirs for ours, theirs in keys.items() if theirs != ours and theirs not in keys])
        joined = frame.join(aligned, on=list(keys), how="left", maintain_order="left")
        records = None
        if reject:
            key_text = [pl.concat_str(pl.lit(f"{column}: "), shown(pl.col(column))) for column in keys]
            reason = pl.concat_str([pl.concat_str(key_text, separator=", "), pl.lit(f" not found in {file}")])
            joined, records = rejects(joined, pl.col(MATCHED).is_null(), "lookup", reason)
        return joined.drop(MATCHED), records

    return lookup

"""A table's steps and rules: checked with the config, built once per run, applied to every batch.

Rows move through the steps with their input row number attached, so any row a step or rule
rejects is reported with the values it arrived with, once, under the first failure.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import polars as pl

from headwater.common.interpolation import Variables
from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.processing.frames import REASON, REJECT_SCHEMA, ROW, RULE, StepError, is_metadata
from headwater.processing.options import Context
from headwater.processing.registry import CustomStep, StepRegistry
from headwater.processing.rules import RULES
from headwater.processing.spec import Spec, StepFunction
from headwater.processing.steps import BUILTIN_STEPS


@dataclass(frozen=True)
class PlannedStep:
    """One built step or rule, with where it came from for error messages (`steps.2.cast`)."""

    where: str
    run: StepFunction


@dataclass(frozen=True)
class TablePlan:
    """Built steps and rules for one table, in the order they run."""

    steps: tuple[PlannedStep, ...] = ()
    rules: tuple[PlannedStep, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps and not self.rules


@dataclass
class PlanResult:
    good: pl.DataFrame
    # The rejected rows as they entered apply_plan, plus `_rule` and `_reason`.
    rejected: pl.DataFrame


class PlanError(ValueError):
    """build_plan was given steps or rules that do not pass validation; `problems` says which."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        lines = [".".join(str(part) for part in problem.key_path) + ": " + problem.message for problem in problems]
        super().__init__("invalid steps or rules:\n  " + "\n  ".join(lines))


def validate_plan(
    steps: Sequence[dict],
    rules: Sequence[dict],
    where: KeyPath,
    problems: list[Problem],
    *,
    project_dir: Path,
    variables: Variables,
    registry: StepRegistry,
) -> None:
    """Config-time check of one table's `steps:` and `rules:`; every problem is appended with its key path."""
    context = Context(project_dir=project_dir, variables=variables)
    for path, _name, options, spec in _entries(steps, rules, where, problems, registry):
        if isinstance(spec, Spec):
            spec.check(options, path, problems, context)
        _check_variables(options, path, variables, problems)


def build_plan(
    steps: Sequence[dict],
    rules: Sequence[dict],
    *,
    project_dir: Path,
    registry: StepRegistry,
) -> TablePlan:
    """The run-time plan from options whose `${NAME}` references are already resolved; PlanError if invalid."""
    context = Context(project_dir=project_dir)
    problems: list[Problem] = []
    entries = list(_entries(steps, rules, (), problems, registry))
    for path, _, options, spec in entries:
        if isinstance(spec, Spec):
            spec.check(options, path, problems, context)
    if problems:
        raise PlanError(problems)
    built: dict[str, list[PlannedStep]] = {"steps": [], "rules": []}
    for path, _name, options, spec in entries:
        run = spec.build(options, context) if isinstance(spec, Spec) else _custom(spec, options)
        built[str(path[0])].append(PlannedStep(".".join(str(part) for part in path), run))
    return TablePlan(steps=tuple(built["steps"]), rules=tuple(built["rules"]))


def apply_plan(frame: pl.DataFrame, plan: TablePlan) -> PlanResult:
    """Run the steps, then the rules; rows that fail anywhere go to `rejected` with their original values."""
    original = frame.drop([RULE, REASON], strict=False).with_row_index(ROW)
    work = original
    records = []
    for step in (*plan.steps, *plan.rules):
        try:
            work, rejected = step.run(work)
        except StepError as error:
            raise StepError(f"{step.where}: {error}") from error
        if rejected is not None and rejected.height:
            records.append(rejected)
    reasons = pl.concat(records) if records else pl.DataFrame(schema=REJECT_SCHEMA)
    reasons = reasons.with_columns(pl.col(ROW).cast(original.schema[ROW]))
    rejected = original.join(reasons, on=ROW, how="inner").sort(ROW).drop(ROW)
    return PlanResult(good=work.drop(ROW), rejected=rejected)


def values_after_steps(frame: pl.DataFrame, plan: TablePlan, positions: set[int]) -> dict[int, pl.DataFrame]:
    """Every row of `frame` as it stands right after each step at `positions` (indexes into `plan.steps`).

    No row is left out: a row a step rejects goes on with the values it had before that step, and a step
    that cannot run on these rows at all (a column they lack) is passed over. This is how a rejected row
    would have looked to a later step, for showing it in that form (a `pii` step's hash of its value).
    Each frame carries the row's position in `frame` as `ROW`.
    """
    work = frame.drop([RULE, REASON], strict=False).with_row_index(ROW)
    found: dict[int, pl.DataFrame] = {}
    for position, step in enumerate(plan.steps[: max(positions, default=-1) + 1]):
        try:
            passed, _ = step.run(work)
        except (StepError, pl.exceptions.PolarsError):
            passed = work
        left_out = work.join(passed.select(ROW), on=ROW, how="anti")
        work = pl.concat([passed, left_out], how="diagonal_relaxed").sort(ROW) if left_out.height else passed
        if position in positions:
            found[position] = work
    return found


def _entries(steps: Sequence[Any], rules: Sequence[Any], where: KeyPath, problems: list[Problem], registry):
    """(key path, name, options, Spec or CustomStep) for every well-formed entry; the others are reported."""
    for kind, items, known in (("steps", steps, {**BUILTIN_STEPS}), ("rules", rules, RULES)):
        for index, item in enumerate(items):
            path: KeyPath = (*where, kind, index)
            noun = kind[:-1]
            if not isinstance(item, dict) or len(item) != 1:
                example = "{rename: {old: new}}" if kind == "steps" else "{required: [id]}"
                problems.append(Problem(path, f"each {noun} is a mapping with one key, e.g. {example}; got {item!r}"))
                continue
            name, options = next(iter(item.items()))
            spec = known.get(name) or (registry.get(name) if kind == "steps" else None)
            if spec is None:
                available = sorted({*known, *(registry.names() if kind == "steps" else ())})
                close = difflib.get_close_matches(str(name), available, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                broken = "".join(f"; note: {problem}" for problem in registry.problems) if kind == "steps" else ""
                problems.append(
                    Problem((*path, name), f"unknown {noun} {name!r}; {hint}available: {', '.join(available)}{broken}")
                )
                continue
            yield (*path, name), name, options, spec


def _check_variables(value: Any, where: KeyPath, variables: Variables, problems: list[Problem]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_variables(item, (*where, key), variables, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_variables(item, (*where, index), variables, problems)
    else:
        for message in variables.reference_problems(value):
            problems.append(Problem(where, message))


def _custom(step: CustomStep, options: Any) -> StepFunction:
    """A plugin's step, held to the same contract as the built-ins: row numbers and `_` columns survive it."""
    label = f"step {step.name!r} (plugin {step.plugin.name!r})"

    def run(frame: pl.DataFrame):
        try:
            result = step.function(frame, options)
        except Exception as error:  # the plugin's own failure, reported with its name
            raise StepError(f"{label} failed: {type(error).__name__}: {error}") from error
        if not isinstance(result, pl.DataFrame):
            raise StepError(f"{label} returned {type(result).__name__}, expected a polars DataFrame")
        if ROW not in result.columns:
            if result.height != frame.height:
                raise StepError(f"{label} changed the number of rows and dropped column {ROW!r}; keep it")
            result = result.with_columns(frame.get_column(ROW))
        if result.get_column(ROW).is_duplicated().any():
            raise StepError(f"{label} repeated rows; a step may change or remove rows, not add them")
        metadata = [column for column in frame.columns if is_metadata(column) and column != ROW]
        result = result.drop(metadata, strict=False).join(
            frame.select(ROW, *metadata), on=ROW, how="left", maintain_order="left"
        )
        removed = frame.select(ROW).join(result.select(ROW), on=ROW, how="anti")
        records = removed.select(
            pl.col(ROW), pl.lit(step.name).alias(RULE), pl.lit(f"removed by step {step.name!r}").alias(REASON)
        )
        return result, records

    return run

"""Declarative enrichment steps and row rules for one table, as pure functions on Polars frames.

`validate_plan` checks a table's `steps:` and `rules:` with the config, `build_plan` turns them
into a `TablePlan` once per run, and `apply_plan` splits every batch into good rows and rejected
rows (original values, `_rule`, `_reason`). No database, dlt or Prefect is involved.

Imports: common.
"""

from headwater.processing.frames import StepError
from headwater.processing.plan import (
    PlanError,
    PlanResult,
    TablePlan,
    apply_plan,
    build_plan,
    validate_plan,
    values_after_steps,
)
from headwater.processing.registry import CustomStep, StepRegistry
from headwater.processing.rules import RULES
from headwater.processing.steps import BUILTIN_STEPS

__all__ = [
    "BUILTIN_STEPS",
    "RULES",
    "CustomStep",
    "PlanError",
    "PlanResult",
    "StepError",
    "StepRegistry",
    "TablePlan",
    "apply_plan",
    "build_plan",
    "validate_plan",
    "values_after_steps",
]

"""Running one table's steps and rules the way a load does, without plugins installed."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from headwater.processing import PlanResult, StepRegistry, apply_plan, build_plan


def run(frame: dict | pl.DataFrame, steps=(), rules=(), project_dir: Path = Path("."), registry=None) -> PlanResult:
    frame = frame if isinstance(frame, pl.DataFrame) else pl.DataFrame(frame)
    plan = build_plan(list(steps), list(rules), project_dir=project_dir, registry=registry or StepRegistry())
    return apply_plan(frame, plan)

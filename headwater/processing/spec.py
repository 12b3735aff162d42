"""What a built-in step or rule is: a name, a check of its options, and a builder of the function that runs it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import polars as pl

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.processing.options import Context

# Frame in, frame out plus the (row, _rule, _reason) records of the rows it rejected (None: it rejects nothing).
StepFunction = Callable[[pl.DataFrame], tuple[pl.DataFrame, pl.DataFrame | None]]
Check = Callable[[Any, KeyPath, list[Problem], Context], None]


@dataclass(frozen=True)
class Spec:
    name: str
    description: str
    # Reports every problem in the options; build() is only called on options that passed.
    check: Check
    build: Callable[[Any, Context], StepFunction]

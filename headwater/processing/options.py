"""Checking the options of one step or rule as written in headwater.yaml, with the key path of every problem."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater.common.interpolation import Variables
from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath


@dataclass(frozen=True)
class Context:
    """What checking and building need besides the options themselves."""

    project_dir: Path
    # Set while validating the config (`${NAME}` still unresolved); None at run time, when values are resolved.
    variables: Variables | None = None

    @property
    def resolved(self) -> bool:
        return self.variables is None


def mapping(options: Any, where: KeyPath, problems: list[Problem], example: str) -> dict | None:
    """A non-empty mapping, or None after reporting what was expected."""
    if isinstance(options, dict) and options:
        return options
    problems.append(Problem(where, f"expected a mapping, e.g. {example}; got {type(options).__name__} {options!r}"))
    return None


def column_list(options: Any, where: KeyPath, problems: list[Problem], example: str) -> list[str] | None:
    """One column name or a non-empty list of them."""
    columns = [options] if isinstance(options, str) else options
    if not isinstance(columns, list) or not columns:
        problems.append(Problem(where, f"expected a column or a list of columns, e.g. {example}; got {options!r}"))
        return None
    valid = True
    for index, column in enumerate(columns):
        valid &= column_name(column, (*where, index) if not isinstance(options, str) else where, problems)
    return columns if valid else None


def column_name(name: Any, where: KeyPath, problems: list[Problem]) -> bool:
    """A data column a step may write: columns starting with `_` are the loader's and stay untouched."""
    if not isinstance(name, str) or not name:
        problems.append(Problem(where, f"expected a column name, got {name!r}"))
        return False
    if name.startswith("_"):
        problems.append(
            Problem(where, f"column {name!r} starts with '_': such columns are metadata and pass through untouched")
        )
        return False
    return True


def unknown_keys(options: dict, allowed: tuple[str, ...], where: KeyPath, problems: list[Problem]) -> None:
    for key in options:
        if key not in allowed:
            problems.append(Problem((*where, key), f"unknown option {key!r}; allowed: {', '.join(allowed)}"))

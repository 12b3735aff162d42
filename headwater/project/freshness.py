"""The `freshness:` option: how old each raw table's newest data may get before a run warns or fails.

Modelled on dbt source freshness. In headwater.yaml, on a source (applies to all its tables) or on a
table (overrides the source)::

    freshness: {warn_after: 26h, error_after: 48h}
    freshness: 26h        # shorthand for {warn_after: 26h}
    freshness: null       # on a table: no SLA, even if the source sets one

How a run measures a table's age against it: headwater.ops.freshness.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from headwater.common.problems import Problem

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SLA_KEYS = ("warn_after", "error_after")


@dataclass(frozen=True)
class FreshnessSLA:
    """Both limits unset means freshness is switched off explicitly (``freshness: null``)."""

    warn_after: timedelta | None = None
    error_after: timedelta | None = None

    @property
    def enabled(self) -> bool:
        return self.warn_after is not None or self.error_after is not None

    def describe(self) -> str:
        parts = [f"{key} {format_age(getattr(self, key).total_seconds())}" for key in SLA_KEYS if getattr(self, key)]
        return ", ".join(parts)


def parse_duration(value: Any) -> timedelta:
    """'26h', '30m', '2d', '1w', '90s', or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 26h, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 30m, 26h, 2d or 1w, got {value!r}")
        seconds = timedelta(**{UNITS[match.group(2)]: float(match.group(1))}).total_seconds()
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {value!r}")
    return timedelta(seconds=seconds)


def parse_freshness(value: Any, where: tuple, problems: list[Problem]) -> FreshnessSLA | None:
    """The SLA written at `where`; FreshnessSLA() for an explicit null; problems are appended, not raised."""
    if value is None:
        return FreshnessSLA()
    if not isinstance(value, dict):
        value = {"warn_after": value}  # the shorthand: `freshness: 26h`
    limits: dict[str, timedelta] = {}
    for key, raw in value.items():
        if key not in SLA_KEYS:
            problems.append(Problem((*where, key), f"unknown key; allowed: {', '.join(SLA_KEYS)}"))
            continue
        try:
            limits[key] = parse_duration(raw)
        except ValueError as error:
            problems.append(Problem((*where, key), str(error)))
    if not value:
        problems.append(Problem(where, "give warn_after and/or error_after, e.g. {warn_after: 26h, error_after: 48h}"))
    warn, error = limits.get("warn_after"), limits.get("error_after")
    if warn and error and warn >= error:
        problems.append(Problem(where, "warn_after must be shorter than error_after"))
    return FreshnessSLA(warn, error)


def format_age(seconds: float) -> str:
    """A compact age: 45s, 12m, 5.5h, 3.2d."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"

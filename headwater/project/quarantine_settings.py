"""The `quarantine:` block of headwater.yaml: how long resolved quarantine rows are kept, and declared PII.

On the project (every source), or on a source (overrides the project's, key by key)::

    quarantine:
      retention: 30d        # each run deletes rows replayed or superseded longer ago than this
      declared_pii: mask    # mask (default) | keep: columns in a table's `pii:` list with no `pii` step

Rows still quarantined are never deleted by a run: only `headwater quarantine purge --open` removes them.
`declared_pii: keep` keeps such columns in quarantine records as they arrived, which a replay then loads;
masked, a replay keeps the row quarantined until the value is given (`--set`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath
from headwater.project.freshness import parse_duration

QUARANTINE_KEYS = ("retention", "declared_pii")
DECLARED_PII = ("mask", "keep")


@dataclass(frozen=True)
class QuarantineSettings:
    """One `quarantine:` block as written; None: not set here (a source then takes the project's)."""

    retention: timedelta | None = None
    declared_pii: str | None = None

    def over(self, project: "QuarantineSettings") -> "QuarantineSettings":
        """These settings, with what they leave unset taken from the project's."""
        return QuarantineSettings(
            retention=self.retention if self.retention is not None else project.retention,
            declared_pii=self.declared_pii or project.declared_pii,
        )

    @property
    def keeps_declared_pii(self) -> bool:
        return self.declared_pii == "keep"


def parse_quarantine_settings(raw: Any, where: KeyPath, problems: list[Problem]) -> QuarantineSettings:
    if raw is None:
        return QuarantineSettings()
    if not isinstance(raw, dict):
        problems.append(Problem(where, "must be a mapping, e.g. {retention: 30d}"))
        return QuarantineSettings()
    for key in raw:
        if key not in QUARANTINE_KEYS:
            problems.append(Problem((*where, key), f"unknown key; allowed: {', '.join(QUARANTINE_KEYS)}"))
    retention = None
    if raw.get("retention") is not None:
        try:
            retention = parse_duration(raw["retention"])
        except ValueError as error:
            problems.append(Problem((*where, "retention"), f"{error}: how long rows replayed or superseded are "
                                                           "kept, e.g. 30d"))
    declared = raw.get("declared_pii")
    if declared is not None and declared not in DECLARED_PII:
        problems.append(Problem((*where, "declared_pii"),
                                f"unknown choice {declared!r}; allowed: {', '.join(DECLARED_PII)}"))
        declared = None
    return QuarantineSettings(retention=retention, declared_pii=declared)


def describe_retention(retention: timedelta) -> str:
    """`30d`, `12h`, `90m`: the retention as headwater.yaml would write it."""
    seconds = int(retention.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

"""The `deletes:` option of a table: checked against its write disposition, primary key and steps.

What a run does with it is in headwater.load.deletes.
"""

from __future__ import annotations

from headwater.common.problems import Problem
from headwater.processing.column_trace import trace_steps
from headwater.project.scalars import key_columns

DELETES_MODES = ("detect", "flag")
# The column `deletes: flag` sets on rows gone from the source (NULL: the row is in the source).
DELETED_AT = "_deleted_at"
VALID_TO = "_valid_to"  # the scd2 validity end dlt writes (headwater.load.write_modes.VALID_TO)


def parse_deletes(options: dict, disposition: str, where: tuple, problems: list[Problem]) -> str | None:
    """A table's `deletes:` (``where`` is the table's key path), checked against its other options."""
    mode = options.get("deletes")
    if mode is None:
        return None
    at = (*where, "deletes")
    if mode not in DELETES_MODES:
        problems.append(Problem(at, f"unknown mode {mode!r}; allowed: detect (remove the rows whose key is gone "
                                    f"from the source), flag (keep them, set {DELETED_AT})"))
        return None
    if not options.get("primary_key"):
        problems.append(Problem(at, "deletes needs a primary_key: a deleted row is a key missing from the source"))
    elif disposition == "append":
        problems.append(Problem(at, "deletes needs write_disposition merge or scd2, not append (an append table "
                                    "holds every version of a key)"))
    elif disposition == "replace":
        problems.append(Problem(at, "deletes needs write_disposition merge or scd2, not replace (replace reloads "
                                    "the whole table each run: rows gone from the source are gone already)"))
    elif disposition == "scd2" and mode == "flag":
        problems.append(Problem(at, f"on scd2 a key gone from the source retires its current version "
                                    f"({VALID_TO} set) and keeps it: use deletes: detect"))
    for problem in _key_changing_steps(options):
        problems.append(Problem(at, problem))
    return mode


def _key_changing_steps(options: dict) -> list[str]:
    """Why steps would make the raw keys differ from the source's: every such row would look deleted."""
    keys = key_columns(options.get("primary_key"))
    steps = options.get("steps") or []
    try:
        trace = trace_steps(steps)
    except (AttributeError, TypeError, ValueError):  # malformed steps: validate_plan reports them
        return []
    problems = []
    for step in trace.every_text_column if keys else ():
        problems.append(f"`{step}: all` changes the primary key's text too, so its values would no longer match "
                        f"the source's keys; list the columns to {step} instead")
    for column in keys:
        origin = trace.origins.get(column)
        if origin is not None and (origin.steps or origin.derived or origin.fields != {column}):
            done = origin.transformation or "made from " + ", ".join(sorted(origin.fields))
            problems.append(f"a step changes primary key column {column!r} ({done}), so its values no longer "
                            "match the source's keys and every row would look deleted; change it in dbt instead")
    return problems

"""The plain values headwater.yaml's own keys take: true/false, a name, column names.

Each check reports a value of the wrong kind as a problem at its key that names the kind expected
and the value found, and returns something safe to go on with, so that one run of the checks lists
every problem. A boolean written in quotes (`enabled: "false"`) is text, which Python would take as
true: it is refused everywhere a boolean is expected, with the fix spelled out.
"""

from __future__ import annotations

from typing import Any

from headwater.common.problems import Problem
from headwater.common.yaml_source import KeyPath

# Words YAML 1.1 reads as booleans when they are not quoted.
TRUE_WORDS = frozenset({"true", "yes", "on"})
FALSE_WORDS = frozenset({"false", "no", "off"})


def quoted_boolean(value: Any) -> bool:
    """`"false"`, `'True'`, `"yes"`: a boolean word that quotes made text."""
    return isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS


def quoted_boolean_message(value: str) -> str:
    word = "true" if value.strip().lower() in TRUE_WORDS else "false"
    return f"{value!r} in quotes is text, not a boolean; write {word} without quotes"


def flag(value: Any, where: KeyPath, problems: list[Problem], default: bool) -> bool:
    """A boolean; anything else is a problem and ``default`` is used meanwhile."""
    if isinstance(value, bool):
        return value
    if quoted_boolean(value):
        problems.append(Problem(where, quoted_boolean_message(value)))
    else:
        problems.append(Problem(where, f"expected true or false, got {found(value)}"))
    return default


def text(value: Any, where: KeyPath, problems: list[Problem], what: str) -> str | None:
    """A non-empty string (``what`` says which, e.g. "a column name"); None after reporting anything else."""
    if isinstance(value, str) and value.strip():
        return value
    hint = "; write it in quotes" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    problems.append(Problem(where, f"expected {what} (text), got {found(value)}{hint}"))
    return None


def column_names(value: Any, where: KeyPath, problems: list[Problem]) -> str | list[str] | None:
    """One column name or a non-empty list of them, as a key is written (`id` or `[order_id, line]`)."""
    if isinstance(value, list):
        if not value:
            problems.append(Problem(where, "expected a column name or a list of them, got an empty list"))
            return None
        names = [text(item, (*where, index), problems, "a column name") for index, item in enumerate(value)]
        return None if None in names else names
    if isinstance(value, str):
        return text(value, where, problems, "a column name")
    problems.append(Problem(where, f"expected a column name or a list of them, e.g. id or [order_id, line], "
                                   f"got {found(value)}"))
    return None


def key_columns(key: Any) -> list:
    """The columns of a primary key as written (`id` or `[order_id, line]`); nothing for a value of another kind."""
    if isinstance(key, str):
        return [key]
    return [column for column in key if isinstance(column, str)] if isinstance(key, list) else []


def found(value: Any) -> str:
    """What a value is, for a message: `int 5`, `a mapping {'a': 1}`, `nothing`."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        kind = "a mapping"
    elif isinstance(value, list):
        kind = "a list"
    elif isinstance(value, bool):
        kind = "boolean"
    else:
        kind = type(value).__name__
    shown = repr(value)
    return f"{kind} {shown if len(shown) <= 40 else shown[:37] + '...'}"

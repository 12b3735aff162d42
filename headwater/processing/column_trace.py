"""Which resource fields a raw column is made of, read from the table's ``steps:`` in headwater.yaml.

The steps run between the connector and dlt (headwater.processing), so a raw column is the
resource field of the same name unless a step says otherwise:

| step | what lineage records |
|---|---|
| `rename: {old: new}` | raw `new` <- field `old` |
| `cast`, `trim`, `normalise` | the step on the edge's transformation (`cast int`, `trim`, `lower`) |
| `derive: {col: "a * b"}` | raw `col` <- fields `a` and `b` (through earlier derived columns); the expression |
| `lookup` | the added columns <- the key fields, indirect (the key picks the reference row) |
| `pii: {col: mask / hash}` | transformation `pii mask` / `pii hash`, masking; the raw column arrives masked |
| `pii: {col: drop}` | no raw column: the field stops at load |
| plugin steps | reported: what they do to columns is not known |
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# SQL words that can stand next to column names in a derive expression; the regex fallback skips them.
_SQL_WORDS = frozenset({
    "and", "or", "not", "case", "when", "then", "else", "end", "null", "true", "false", "is", "in", "like",
    "ilike", "between", "cast", "as", "coalesce", "nullif", "concat", "lower", "upper", "trim", "round",
    "abs", "substr", "substring", "length", "date", "timestamp", "int", "integer", "bigint", "float",
    "double", "varchar", "text", "string", "bool", "boolean", "decimal", "numeric", "interval",
})


@dataclass
class Origin:
    """Where one column of the table comes from, after the steps so far."""

    fields: set[str]  # resource fields its value is computed from
    keys: set[str] = field(default_factory=set)  # fields that only select it (lookup keys)
    steps: list[str] = field(default_factory=list)  # what the steps did to it, in order
    masking: bool = False  # a pii step masked or hashed it
    derived: bool = False  # computed (derive, lookup) rather than copied

    def copy(self) -> "Origin":
        return Origin(set(self.fields), set(self.keys), list(self.steps), self.masking, self.derived)

    @property
    def transformation(self) -> str:
        return "; ".join(self.steps)


@dataclass
class StepTrace:
    """The effect of a table's steps on its columns."""

    origins: dict[str, Origin] = field(default_factory=dict)  # columns a step touched, by their final name
    removed: set[str] = field(default_factory=set)  # names that no longer exist (renamed away, dropped)
    dropped: dict[str, Origin] = field(default_factory=dict)  # pii drop: the column, with the fields it held
    every_text_column: list[str] = field(default_factory=list)  # `trim: all` and the like
    problems: list[str] = field(default_factory=list)  # what could not be traced

    def origin(self, column: str) -> Origin | None:
        """The origin of a column that reached the table (None: it did not, it was dropped or renamed)."""
        if column in self.origins:
            return self.origins[column]
        if column in self.removed:
            return None
        return Origin({column})

    def field_of(self, name: str) -> str:
        """The resource field behind a top-level name after renames (for nested tables and flattened structs)."""
        origin = self.origins.get(name)
        if origin is not None and len(origin.fields) == 1 and not origin.derived:
            return next(iter(origin.fields))
        return name


def trace_steps(steps: tuple[dict, ...] | list[dict], project_dir: Path | None = None, variables=None) -> StepTrace:
    trace = StepTrace()
    for number, entry in enumerate(steps or ()):
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        name, options = next(iter(entry.items()))
        handler = _HANDLERS.get(name)
        if handler is None:
            trace.problems.append(f"steps.{number}.{name} is a plugin step: the columns it adds or changes are "
                                  "traced as if it left them unchanged")
            continue
        handler(trace, options, project_dir, variables)
    return trace


def _current(trace: StepTrace, column: str) -> Origin:
    origin = trace.origins.get(column)
    return origin.copy() if origin is not None else Origin({column})


def _rename(trace: StepTrace, options: Any, *_) -> None:
    moved = {new: _current(trace, old) for old, new in (options or {}).items()}
    for old in options or {}:
        trace.origins.pop(old, None)
        trace.removed.add(old)
    for new, origin in moved.items():
        trace.origins[new] = origin
        trace.removed.discard(new)


def _annotate(trace: StepTrace, column: str, step: str) -> None:
    origin = _current(trace, column)
    origin.steps.append(step)
    trace.origins[column] = origin


def _cast(trace: StepTrace, options: Any, *_) -> None:
    for column, spec in (options or {}).items():
        target = spec.get("type") if isinstance(spec, dict) else spec
        _annotate(trace, column, f"cast {target}")


def _trim(trace: StepTrace, options: Any, *_) -> None:
    if options == "all":
        trace.every_text_column.append("trim")
        return
    for column in [options] if isinstance(options, str) else list(options or ()):
        _annotate(trace, column, "trim")


def _normalise(trace: StepTrace, options: Any, *_) -> None:
    for column, modes in (options or {}).items():
        for mode in modes if isinstance(modes, list) else [modes]:
            _annotate(trace, column, str(mode))


def _derive(trace: StepTrace, options: Any, *_) -> None:
    for column, expression in (options or {}).items():
        names = expression_columns(str(expression))
        if names is None:
            trace.problems.append(f"derive {column}: the expression {expression!r} could not be read; its inputs "
                                  "are not traced")
            names = []
        inputs = [_current(trace, name) for name in names]
        trace.origins[column] = Origin(
            fields=set().union(*(origin.fields for origin in inputs)) if inputs else set(),
            keys=set().union(*(origin.keys for origin in inputs)) if inputs else set(),
            steps=[f"derive {column} = {expression}"],
            masking=bool(inputs) and all(origin.masking for origin in inputs),
            derived=True,
        )
        trace.removed.discard(column)


def _lookup(trace: StepTrace, options: Any, project_dir: Path | None, variables) -> None:
    options = options or {}
    on = options.get("on")
    keys = {on: on} if isinstance(on, str) else dict(on or {})
    columns = options.get("columns")
    if columns is None:
        columns = _reference_columns(options.get("file"), project_dir, variables, set(keys.values()))
        if columns is None:
            trace.problems.append(f"lookup {options.get('file')}: the reference file could not be read, so the "
                                  "columns it adds are not known")
            return
    key_fields = set().union(*(_current(trace, key).fields for key in keys)) if keys else set()
    for column in [columns] if isinstance(columns, str) else columns:
        trace.origins[column] = Origin(fields=set(), keys=set(key_fields),
                                       steps=[f"lookup {options.get('file')} on {', '.join(keys)}"], derived=True)
        trace.removed.discard(column)


def _pii(trace: StepTrace, options: Any, *_) -> None:
    for column, spec in (options or {}).items():
        mode = spec if isinstance(spec, str) else next(iter(spec), None) if isinstance(spec, dict) else None
        if mode == "drop":
            trace.dropped[column] = _current(trace, column)
            trace.origins.pop(column, None)
            trace.removed.add(column)
        elif mode in ("mask", "hash"):
            origin = _current(trace, column)
            origin.steps.append("pii mask" if mode == "mask" else "pii hash (HMAC-SHA256)")
            origin.masking = True
            trace.origins[column] = origin


_HANDLERS = {"rename": _rename, "cast": _cast, "trim": _trim, "normalise": _normalise, "normalize": _normalise,
             "derive": _derive, "lookup": _lookup, "pii": _pii}


def expression_columns(expression: str) -> list[str] | None:
    """The column names a derive expression reads, in order; None when it cannot be read at all.

    Polars SQL is read with sqlglot; where sqlglot fails, a plain scan for identifiers outside string
    literals is the fallback.
    """
    from sqlglot import exp, parse_one
    from sqlglot.errors import SqlglotError

    try:
        parsed = parse_one(expression)
    except SqlglotError:
        parsed = None
    if parsed is not None:
        names = []
        for column in parsed.find_all(exp.Column):
            if column.name and column.name not in names:
                names.append(column.name)
        return names
    without_strings = re.sub(r"'(?:[^']|'')*'", " ", expression)
    if without_strings.count('"') % 2:
        return None
    names = []
    for quoted, bare in re.findall(r'"([^"]+)"|\b([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()', without_strings):
        name = quoted or bare
        if name and name.lower() not in _SQL_WORDS and name not in names:
            names.append(name)
    return names


def _reference_columns(file: Any, project_dir: Path | None, variables, keys: set[str]) -> list[str] | None:
    if not isinstance(file, str) or project_dir is None:
        return None
    try:
        from headwater.processing.lookup import read_reference

        resolved = variables.resolve(file) if variables is not None else file
        path = Path(resolved) if Path(resolved).is_absolute() else Path(project_dir) / resolved
        return [column for column in read_reference(path).columns if column not in keys]
    except Exception:  # missing file, unset variable, unreadable file: reported by the caller
        return None

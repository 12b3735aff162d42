"""Personal data in quarantine records: the table's `pii` treatment applied to every record it keeps.

A quarantined row is kept so someone can see what is wrong with it and fix it, not as data: it must not
be where personal data outlives the `pii` step that keeps it out of the table. Every record written to
`<table>__quarantine` (rows a rule or step rejects, lines a reader cannot read, rows with NUL characters,
rows Postgres refuses, rows a replay writes back) has its personal fields treated first:

| the table has | a record field that holds it is |
|---|---|
| `pii: {email: {hash: {salt: ...}}}` step | hashed as the step hashes it (same salt), from the value it is given |
| `pii: {phone: mask}` step | masked as the step masks it |
| `pii: {ssn: drop}` step | left out |
| `pii: [name]` and no step (or the connector's `pii`, a dlt `x-pii` hint) | masked (`declared_pii: keep`: as is) |

The value a step is given may differ from the one that arrived (`normalise: {email: lower}` before the
hash): the record holds the treated value of what the step would have been given
(headwater.processing.values_after_steps), so a replay loads the same hash a clean load would have.
A record's `_raw_line` (a landing-file line that could not be read) is shown with its letters and digits
as `*` when the table has any personal column: it cannot be told which part of a broken line is which
field. Its location (`file:line`) still says where the line is.

Reasons name values (`email: 'x' does not match ...`): a personal value in a reason is replaced by its
treated form. The record's treatment is written beside it, in column `pii_treatment` (JSON, field ->
`hash:<salt fingerprint>`, `mask` or `drop`), so a replay does not treat those fields twice and a dropped
field stays dropped; a field treated differently from how the table treats it now (masked while the table
loads it as it is, hashed with another salt) cannot be replayed as it is (`unreplayable`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import polars as pl

from headwater.processing import TablePlan, values_after_steps
from headwater.processing.column_trace import trace_steps
from headwater.processing.pii import masked_text, mode_of, pii_step_values, salt_fingerprint, treated_value
from headwater.quarantine.selection import RAW_LINE

DROP, MASK, HASH = "drop", "mask", "hash"
DROPPED = "[dropped]"  # a dropped value, where a reason named it
# Steps that change one column's value in place; a replay leaves them out for a field the record holds treated.
_VALUE_STEPS = ("trim", "normalise", "normalize", "cast", "derive")


@dataclass(frozen=True)
class Treatment:
    """How one personal column is treated: by a `pii` step (its position in `steps:`), or as declared PII."""

    mode: str  # hash | mask | drop
    column: str  # the column's name where the treatment happens
    step: int | None = None  # the `pii` step's position in the table's steps; None: declared, no step
    salt: str | None = field(default=None, repr=False)

    @property
    def mark(self) -> str:
        """What `pii_treatment` records: `hash:<fingerprint of the salt>`, `mask` or `drop`."""
        return f"{HASH}:{salt_fingerprint(self.salt or '')}" if self.mode == HASH else self.mode

    def value(self, value: Any) -> Any:
        return treated_value(value, self.mode, self.salt)


@dataclass
class Protected:
    """One record with its personal fields treated."""

    record: dict
    marks: dict[str, str]  # field -> mark, of every treated field (treated now or before)
    shown: dict[str, str] = field(default_factory=dict)  # a raw value's text -> how a reason may show it

    def reason(self, text: str | None) -> str | None:
        return redacted(text, self.shown)

    @property
    def marks_json(self) -> str | None:
        return json.dumps(self.marks, sort_keys=True) if self.marks else None


@dataclass(frozen=True)
class RecordProtection:
    """How the quarantine records of one table keep its personal data out; `NO_PROTECTION` for a table without any.

    ``fields``: by the record's field names (a row as it arrived, before any step); ``columns``: by the
    table's column names (a row Postgres refused, which went through the steps already).
    """

    steps: tuple[dict, ...] = ()
    plan: TablePlan | None = None
    fields: dict[str, Treatment] = field(default_factory=dict)
    columns: dict[str, Treatment] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.fields or self.columns)

    def protect(self, records: Sequence[dict], frame: pl.DataFrame | None = None,
                marks: Sequence[dict[str, str]] | None = None) -> list[Protected]:
        """The records (rows as they arrived) with their personal fields treated.

        ``frame``: the same rows typed as the steps get them (a rejected batch's rows), else read from the
        records. ``marks``: fields each record holds treated already, left as they are.
        """
        marks = list(marks) if marks is not None else [{} for _ in records]
        if not self.active:
            return [Protected(dict(record), dict(mark)) for record, mark in zip(records, marks, strict=True)]
        stepped = self._treated_at_pii_steps(records, frame)
        protected = []
        for index, (record, mark) in enumerate(zip(records, marks, strict=True)):
            result = Protected(dict(record), dict(mark))
            for name, treatment in self.fields.items():
                if name in mark or name not in record:
                    continue
                at_step = stepped.get((treatment.step, treatment.column))
                if at_step is None:  # the steps could not run on these rows: the value as it arrived
                    self._treat(result, name, record[name], record[name], treatment)
                else:
                    given, now = at_step
                    self._treat(result, name, record[name], given[index], treatment, now[index])
            if result.record.get(RAW_LINE) is not None and RAW_LINE not in mark:
                result.record[RAW_LINE] = masked_text(str(result.record[RAW_LINE]))
                result.marks[RAW_LINE] = MASK
            protected.append(result)
        return protected

    def protect_loaded(self, rows: Sequence[dict]) -> list[Protected]:
        """Rows as they were loaded (through the steps, refused by Postgres): the `pii` steps treated them
        already; declared personal columns are masked."""
        protected = []
        for row in rows:
            result = Protected(dict(row), {})
            for name, treatment in self.columns.items():
                if treatment.step is not None:
                    if name in row or treatment.mode == DROP:
                        result.marks[name] = treatment.mark
                elif name in row:
                    self._treat(result, name, row[name], row[name], treatment)
            protected.append(result)
        return protected

    @staticmethod
    def _treat(result: Protected, name: str, raw: Any, given: Any, treatment: Treatment, now: Any = None) -> None:
        """Treat field ``name`` of ``result``: ``given`` is the value the step gets (``raw`` as it arrived), ``now``
        its treated value when already known."""
        if treatment.mode == DROP:
            result.record.pop(name, None)
            shown = DROPPED
        else:
            now = result.record[name] = now if now is not None or given is None else treatment.value(given)
            shown = DROPPED if now is None else _text(now)
        result.marks[name] = treatment.mark
        for value in (raw, given):
            if value is not None:
                result.shown[_text(value)] = shown

    def _treated_at_pii_steps(self, records: Sequence[dict], frame: pl.DataFrame | None
                              ) -> dict[tuple[int | None, str], tuple[list, list]]:
        """Per (pii step, column) it hashes or masks: the values the step would get, row by row, and what it makes
        of them. Empty when the steps cannot run on these rows (each value is then treated as it arrived)."""
        treatments = [treatment for treatment in self.fields.values()
                      if treatment.step is not None and treatment.mode != DROP]
        if self.plan is None or not treatments or not records:
            return {}
        try:
            if frame is None:
                frame = pl.DataFrame([_readable(record) for record in records], infer_schema_length=None,
                                     strict=False)
            after = values_after_steps(frame, self.plan, {treatment.step - 1 for treatment in treatments})
            found = {}
            for treatment in treatments:
                # What the step before the pii step left (a pii step first in `steps` gets the rows as they are).
                rows = after.get(treatment.step - 1, frame)
                if treatment.column not in rows.columns or rows.height != len(records):
                    continue
                treated = pii_step_values(rows, treatment.column, treatment.mode, treatment.salt)
                found[treatment.step, treatment.column] = (rows.get_column(treatment.column).to_list(),
                                                           treated.to_list())
            return found
        except (pl.exceptions.PolarsError, ValueError, TypeError):
            return {}

    def unreplayable(self, record: dict, marks: dict[str, str]) -> str | None:
        """Why a record cannot be replayed as it is, or None: a field it holds treated as the table does not treat
        it now (masked where the table loads it as it is, hashed with another salt, dropped where it is loaded)."""
        problems, names = [], []
        for name, mark in sorted(marks.items()):
            now = self.fields.get(name)
            if name == RAW_LINE or (now is not None and now.step is not None and now.mark == mark):
                continue
            stepped = now if now is not None and now.step is not None else None
            if mark == DROP:
                held = "was dropped"
            elif mark == MASK:
                held = "is masked"
            else:
                held = "is hashed with another salt" if stepped is not None and stepped.mode == HASH else "is hashed"
            loads = {DROP: "drops it", MASK: "masks it", HASH: "hashes it"}[stepped.mode] if stepped else (
                "loads it as it is")
            problems.append(f"{name} {held} in quarantine and the table now {loads}")
            names.append(name)
        if not problems:
            return None
        fix = " ".join(f"--set {name}=VALUE" for name in names)
        return (f"not replayed: {'; '.join(problems)}; give the value{'s' if len(names) > 1 else ''} "
                f"({fix}) or read the row from its source again")

    def treated_fields(self, marks: dict[str, str]) -> frozenset[str]:
        """The fields a record holds treated the way the table treats them now: the steps leave them alone."""
        return frozenset(name for name, mark in marks.items()
                         if name in self.fields and self.fields[name].step is not None
                         and self.fields[name].mark == mark)

    def steps_for(self, treated: frozenset[str]) -> list[dict]:
        """The table's steps for records holding ``treated`` fields already treated: the `pii` step leaves those
        fields alone, and so do the steps before it that change their values (trim, normalise, cast, derive),
        which made the value the treatment was given."""
        if not treated:
            return list(self.steps)
        result = []
        for position, entry in enumerate(self.steps):
            kind, options = next(iter(entry.items()))
            # The treated fields whose treatment is this step, or comes after this step if it changes values.
            pending = {name for name in treated if self.fields[name].step is not None
                       and (position == self.fields[name].step if kind == "pii" else
                            kind in _VALUE_STEPS and position < self.fields[name].step)}
            if not pending:
                result.append(entry)
                continue
            trace = trace_steps(self.steps[:position])
            kept = _without(options, {column for column in _columns_of(options) if trace.field_of(column) in pending})
            if kept:
                result.append({kind: kept})
        return result

    def dropped(self, treated: frozenset[str]) -> list[str]:
        return [name for name in treated if self.fields[name].mode == DROP]


NO_PROTECTION = RecordProtection()


def record_protection(steps: Sequence[dict], plan: TablePlan | None, declared: Iterable[str],
                      keep_declared: bool = False) -> RecordProtection:
    """The protection of a table with these `steps:` (secrets resolved), built into ``plan``, and these columns
    declared PII (the table's `pii:`, the connector's, dlt `x-pii` hints: resource fields or raw columns)."""
    steps = tuple(entry for entry in steps if isinstance(entry, dict) and len(entry) == 1)
    fields: dict[str, Treatment] = {}
    columns: dict[str, Treatment] = {}
    for position, entry in enumerate(steps):
        kind, options = next(iter(entry.items()))
        if kind != "pii" or not isinstance(options, dict):
            continue
        trace = trace_steps(steps[:position])
        for column, spec in options.items():
            mode, settings = mode_of(spec)
            if mode not in (HASH, MASK, DROP):
                continue
            salt = settings.get("salt") if mode == HASH and isinstance(settings, dict) else None
            treatment = Treatment(mode, column, position, salt)
            fields.setdefault(trace.field_of(column), treatment)
            columns.setdefault(column, treatment)
    if not keep_declared:
        final = trace_steps(steps)
        for name in declared:
            source_field = final.field_of(name)
            if source_field in fields or name in columns:
                continue
            treatment = Treatment(MASK, name)
            fields.setdefault(source_field, treatment)
            for column in (name, *_loaded_names(final, source_field)):
                columns.setdefault(column, treatment)
    if not fields and not columns:
        return NO_PROTECTION
    return RecordProtection(steps, plan, fields, columns)


def marks_of(text: str | None) -> dict[str, str]:
    """A `pii_treatment` value read back: {} for rows quarantined before records were treated."""
    if not text:
        return {}
    try:
        marks = json.loads(text)
    except ValueError:
        return {}
    return {str(name): str(mark) for name, mark in marks.items()} if isinstance(marks, dict) else {}


def redacted(text: str | None, shown: dict[str, str]) -> str | None:
    """``text`` (a reason) with each raw value in ``shown`` replaced by how it may be shown."""
    if not text or not shown:
        return text
    for raw, now in sorted(shown.items(), key=lambda item: -len(item[0])):
        if not raw:
            continue
        for before, after in ((repr(raw), repr(now)), (f'"{raw}"', f'"{now}"'), (f"'{raw}'", f"'{now}'")):
            text = text.replace(before, after)
        if len(raw) >= 4:  # a short value would match inside other words; it is only replaced where quoted
            text = text.replace(raw, now)
    return text


def _loaded_names(trace, source_field: str) -> list[str]:
    """The raw columns that hold a resource field as it arrived (itself, or what a rename made of it)."""
    names = [column for column, origin in trace.origins.items() if origin.fields == {source_field}
             and not origin.derived]
    return names if names or source_field in trace.removed else [source_field]


def _readable(record: dict) -> dict:
    """A record with nested values as JSON text: rows of a batch are flat, and a frame of mixed nesting fails."""
    return {name: json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
            for name, value in record.items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _columns_of(options: Any) -> list[str]:
    if isinstance(options, dict):
        return [str(column) for column in options]
    if isinstance(options, str):
        return [] if options == "all" else [options]
    return [str(column) for column in options or ()]


def _without(options: Any, columns: set[str]) -> Any:
    if not columns:
        return options
    if isinstance(options, dict):
        return {column: spec for column, spec in options.items() if column not in columns}
    if isinstance(options, str):
        return options if options not in columns else []
    return [column for column in options if column not in columns]

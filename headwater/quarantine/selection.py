"""Which quarantined rows a command works on, and how a record's values read on the command line.

`headwater quarantine show` prints a record as `field=value` pairs, and `replay --where field=value`
matches the same text, so what the one prints the other takes. Rows are chosen by exact values
compared in Python, never by SQL written by the user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from headwater.common.file_rows import FILE_ROW_COLUMNS

# Written into the record of a landing-file line that could not be read (connectors.filesystem.parsed).
RAW_LINE = "_raw_line"


def value_text(value: Any) -> str:
    """A record value as `show` prints it and `--where` matches it: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def shown_fields(record: Any) -> list[tuple[str, str]]:
    """The record's (field, value text) pairs worth showing: where a landing-file row came from is its location."""
    if not isinstance(record, dict):
        return [("record", value_text(record))]
    return [(name, value_text(value)) for name, value in record.items()
            if name not in FILE_ROW_COLUMNS and not (name == RAW_LINE and value is None)]


def parse_assignment(text: str) -> tuple[str, str]:
    """`FIELD=VALUE` from the command line; the value may be empty or hold `=` itself."""
    name, equals, value = text.partition("=")
    if not equals or not name.strip():
        raise ValueError(f"expected FIELD=VALUE, e.g. qty=5; got {text!r}")
    return name.strip(), value


@dataclass(frozen=True)
class Selection:
    """Quarantined rows with this rule, at one of these locations, whose record has these field values (all given)."""

    rule: str | None = None
    locations: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()

    @property
    def everything(self) -> bool:
        return self.rule is None and not self.locations and not self.fields

    def matches(self, rule: str, location: str, record: Any) -> bool:
        if self.rule is not None and rule != self.rule:
            return False
        if self.locations and location not in self.locations:
            return False
        if not self.fields:
            return True
        if not isinstance(record, dict):
            return False
        return all(value_text(record.get(name)) == value for name, value in self.fields)

    def describe(self) -> str:
        """The filters in words, e.g. `rule range, location items.csv:3, qty=50`."""
        parts = [f"rule {self.rule}"] if self.rule is not None else []
        if self.locations:
            parts.append(f"location {' or '.join(self.locations)}")
        parts.extend(f"{name}={value}" for name, value in self.fields)
        return ", ".join(parts) or "every quarantined row"

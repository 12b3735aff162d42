"""Text holding NUL characters, which MariaDB and SQLite store and PostgreSQL cannot.

Postgres text (and jsonb, as the escape \\u0000) cannot hold the character U+0000, so a row carrying one
would fail the whole load. Per table, such a row is either

- ``reject``ed (the default): it goes to the table's quarantine with a reason naming the column, and
  the other rows load; the value is never changed behind the user's back;
- or the NUL characters are ``strip``ped from the value and the row loads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from headwater.common.nul_characters import (
    JSON_NUL,
    NUL,
    REJECT,
    RULE,
    STRIP,
    NulHandling,
    json_holds_nul,
    nul_reason,
    without_nul,
)
from headwater.quarantine.records import location_of, record_json

# Rows a connector sets aside, as headwater's quarantine takes them (see headwater.load.table_processor).
REJECTED_COLUMNS = ("record", "rule", "reason", "location")


@dataclass(frozen=True)
class NulRule:
    """How each table of a source treats NUL characters: ``default`` unless ``tables`` names the table."""

    default: NulHandling = REJECT
    tables: dict[str, NulHandling] = field(default_factory=dict)

    def for_table(self, table: str) -> NulHandling:
        return self.tables.get(table, self.default)


@dataclass
class Checked:
    good: pa.Table
    rejected: pa.Table | None = None  # REJECTED_COLUMNS, one row per rejected row


def handle_nul_characters(
    batch: pa.Table, handling: NulHandling, text_columns: list[str], json_columns: list[str],
    table: str, key_columns: list[str], cursor_column: str | None = None,
) -> Checked:
    """``batch`` with its NUL characters stripped, or the rows holding one split off as rejected.

    Rejected rows keep their key and cursor columns, typed, for dlt's incremental step and the quarantine.
    """
    found = {}
    text_columns = [name for name in text_columns if _may_hold_nul(batch.column(name))]
    for name, needle in [(name, NUL) for name in text_columns] + [(name, JSON_NUL) for name in json_columns]:
        hits = pc.fill_null(pc.match_substring(batch.column(name), needle), False)
        if pc.any(hits).as_py():
            if name in json_columns:  # the escape's text may also be an escaped backslash and "u0000"
                hits = _json_hits(batch.column(name), hits)
                if not pc.any(hits).as_py():
                    continue
            found[name] = hits
    if not found:
        return Checked(batch)
    if handling == STRIP:
        for name in found:
            index = batch.schema.get_field_index(name)
            column = batch.column(name)
            if name in json_columns:
                column = _strip_json(column, found[name])
            else:
                column = pc.replace_substring(column, NUL, "")
            batch = batch.set_column(index, batch.schema.field(index), column)
        return Checked(batch)
    return _reject(batch, found, table, key_columns, cursor_column)


def _may_hold_nul(column: pa.ChunkedArray) -> bool:
    """Whether a zero byte is anywhere in the column's character data: one scan of the buffer, not per value."""
    for chunk in column.chunks:
        data = chunk.buffers()[2] if chunk.type in (pa.string(), pa.large_string()) else None
        if data is None:
            return True
        if data.size and pc.min(pa.Array.from_buffers(pa.uint8(), data.size, [None, data])).as_py() == 0:
            return True
    return False


def _reject(batch: pa.Table, found: dict[str, pa.ChunkedArray], table: str, key_columns: list[str],
            cursor_column: str | None) -> Checked:
    any_hit = None
    for hits in found.values():
        any_hit = hits if any_hit is None else pc.or_(any_hit, hits)
    rows = batch.filter(any_hit).to_pylist()
    flags = {name: batch.filter(any_hit).column(name).to_pylist() for name in found}
    entries = {name: [] for name in REJECTED_COLUMNS}
    for position, row in enumerate(rows):
        columns = [name for name in found if _has_nul(flags[name][position], name)]
        entries["record"].append(record_json(row))
        entries["rule"].append(RULE)
        entries["reason"].append(nul_reason(columns))
        entries["location"].append(location_of(row, table, key_columns))
    rejected = pa.table({name: pa.array(values, pa.string()) for name, values in entries.items()})
    for name in dict.fromkeys([*key_columns, *([cursor_column] if cursor_column else [])]):
        if name in batch.column_names and name not in rejected.column_names:
            rejected = rejected.append_column(batch.schema.field(name), batch.filter(any_hit).column(name))
    return Checked(batch.filter(pc.invert(any_hit)), rejected)


def _has_nul(value: Any, name: str) -> bool:
    return isinstance(value, str) and (NUL in value or (JSON_NUL in value and json_holds_nul(json.loads(value))))


def _json_hits(column: pa.ChunkedArray, hits: pa.ChunkedArray) -> pa.Array:
    values = column.to_pylist()
    return pa.array([bool(hit) and json_holds_nul(json.loads(values[i])) for i, hit in enumerate(hits.to_pylist())])


def _strip_json(column: pa.ChunkedArray, hits: pa.ChunkedArray) -> pa.Array:
    # Only the values holding the escape are parsed: dropping the characters keeps the rest of the JSON as it was.
    values = column.to_pylist()
    for position, hit in enumerate(hits.to_pylist()):
        if hit:
            values[position] = json.dumps(without_nul(json.loads(values[position])), ensure_ascii=False)
    return pa.array(values, column.type)

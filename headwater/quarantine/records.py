"""The rows of a quarantine table, and the dlt hints that send them there.

Columns of `raw_<source>.<table>__quarantine`:

| column | meaning |
|---|---|
| `quarantine_id` | stable id of the rejected row: hash of table, location and record; the merge key |
| `record` | the row as it arrived (before any step), JSON text, its personal fields treated (`protection.py`) |
| `rule` | what rejected it: a rule name, or `columns`, `encoding`, `json`, `cast` for unreadable lines |
| `reason` | why, in words, with the offending value |
| `location` | `file:line` for landing files, else the resource and the row's key |
| `status` | `quarantined`; `replayed` once it loaded; `superseded`: the table held a newer version of its key |
| `quarantined_at` | when it was (last) rejected |
| `replayed_at` | when a replay loaded it or found it superseded; null while quarantined |
| `attempts` | how many replays it has been through |
| `read_load_id` | the load that read the row from its source; null outside an extract: `_dlt_load_id` stands for it |
| `pii_treatment` | which fields of `record` are treated, and how: `{"email": "hash:1a2b3c4d", "ssn": "drop"}` |
| key and cursor columns | an incremental table's (dlt's incremental step reads them); a replay's loaded rows' key |
| `_dlt_load_id` | the load that wrote this version of the row (a replay's, once replayed) |

The table merges on `quarantine_id`: reading the same bad line again, or replaying it, updates
its row instead of adding one, which is what makes a replay exactly-once (see `replay.py`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from typing import Any, Iterable

import dlt
import polars as pl
import pyarrow as pa
from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable

from headwater.common.file_rows import FILE_COLUMN, LINE_COLUMN
from headwater.quarantine.naming import quarantine_table_name

QUARANTINED, REPLAYED, SUPERSEDED = "quarantined", "replayed", "superseded"
ID = "quarantine_id"
RECORD = "record"
READ_LOAD_ID = "read_load_id"
PII_TREATMENT = "pii_treatment"
# The quarantine table's own columns; any other column is a key or cursor column of the rejected row.
OWN_COLUMNS = frozenset({ID, RECORD, "rule", "reason", "location", "status", "quarantined_at", "replayed_at",
                         "attempts", READ_LOAD_ID, PII_TREATMENT})
# apply_plan marks each rejected row with these.
RULE_COLUMN, REASON_COLUMN = "_rule", "_reason"


def quarantine_hints(table: str) -> dict:
    # columns={}: a table variant starts from a copy of the resource's hints; without this the quarantine
    # table would take the source table's columns, NOT NULL ones included, which its rows do not carry.
    return dlt.mark.make_hints(
        table_name=quarantine_table_name(table), write_disposition="merge", primary_key=ID, columns={}
    )


def mark(rows: pa.Table, table: str):
    """Route an Arrow table of quarantine rows to the table's quarantine, in the same load package.

    As a table variant: the hints then apply to these rows only, and the batches that follow still
    go to the table itself.
    """
    return dlt.mark.with_hints(rows, quarantine_hints(table), create_table_variant=True)


def quarantine_id(table: str, location: str, record: str) -> str:
    return hashlib.sha256(f"{table}\0{location}\0{record}".encode()).hexdigest()[:32]


def record_json(row: dict[str, Any]) -> str:
    return json.dumps(row, default=_json_value, ensure_ascii=False, sort_keys=False)


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def _extracting_load_id() -> str | None:
    """The load a dlt extract is writing rows into; None outside one (the rows then get it as `_dlt_load_id`)."""
    try:
        return dlt.current.load_package_state()["load_id"]
    except CurrentLoadPackageStateNotAvailable:
        return None


def location_of(row: dict[str, Any], resource: str, key_columns: Iterable[str]) -> str:
    """`file:line` for landing files; otherwise the resource and the row's key, when it has one."""
    if row.get(FILE_COLUMN) is not None and row.get(LINE_COLUMN) is not None:
        return f"{row[FILE_COLUMN]}:{row[LINE_COLUMN]}"
    keys = [f"{name}={row[name]}" for name in key_columns if row.get(name) is not None]
    return f"{resource}[{', '.join(keys)}]" if keys else resource


def build_rows(
    table: str,
    entries: list[dict[str, Any]],
    key_columns: dict[str, pl.DataType | None],
    now: datetime | None = None,
    attempts: int = 0,
) -> pa.Table:
    """Quarantine rows from entries of {record (JSON text), rule, reason, location, keys: {column: value}}, and
    `pii_treatment` where the record's personal fields are treated (headwater.quarantine.protection).

    `key_columns` are the primary-key and cursor columns the incremental step needs, with the
    type they have in the table (None: keep as found).
    """
    now = now or datetime.now(timezone.utc)
    reading_load = _extracting_load_id()
    data: dict[str, list] = {
        ID: [entry.get("id") or quarantine_id(table, entry["location"], entry["record"]) for entry in entries],
        "record": [entry["record"] for entry in entries],
        "rule": [entry["rule"] for entry in entries],
        "reason": [entry["reason"] for entry in entries],
        "location": [entry["location"] for entry in entries],
        "status": [entry.get("status", QUARANTINED) for entry in entries],
        "quarantined_at": [entry.get("quarantined_at", now) for entry in entries],
        "replayed_at": [entry.get("replayed_at") for entry in entries],
        "attempts": [entry.get("attempts", attempts) for entry in entries],
        READ_LOAD_ID: [entry.get(READ_LOAD_ID) or reading_load for entry in entries],
        PII_TREATMENT: [entry.get(PII_TREATMENT) for entry in entries],
    }
    frame = pl.DataFrame(
        data,
        schema={
            ID: pl.String, "record": pl.String, "rule": pl.String, "reason": pl.String, "location": pl.String,
            "status": pl.String, "quarantined_at": pl.Datetime("us", "UTC"),
            "replayed_at": pl.Datetime("us", "UTC"), "attempts": pl.Int64, READ_LOAD_ID: pl.String,
            PII_TREATMENT: pl.String,
        },
    )
    keys = []
    for name, dtype in key_columns.items():
        values = pl.Series(name, [entry.get("keys", {}).get(name) for entry in entries], strict=False)
        if values.dtype == pl.Null and dtype is None:  # no value and no type to give the column
            continue
        if dtype is not None and values.dtype != dtype:
            values = values.cast(dtype, strict=False)
        keys.append(values)
    return frame.with_columns(keys).to_arrow() if keys else frame.to_arrow()

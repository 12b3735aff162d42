"""`headwater quarantine replay`: quarantined rows go through the table's current steps and rules again.

Exactly once, even if the replay dies midway:

1. Packages an earlier run or replay left pending are loaded first (headwater.load.recovery), so the
   quarantine table read in step 2 already reflects every replay that got as far as extracting.
2. Only rows with `status = 'quarantined'` are read.
3. The rows that now pass go to the table, and *in the same dlt load package* every replayed
   row's quarantine entry is rewritten (merge on `quarantine_id`) as `replayed`, or, when it
   still fails, as `quarantined` with the new rule and reason. The run goes through the source's
   own pipeline (`headwater_<source>`, same schema and destination), so its load id, schema and
   state are recorded like any other load.

A package is either loaded (both changes visible) or pending (recovered by step 1 of the next
replay or run). Tables that merge on a key take a re-applied job without duplicates as well.

A replay never takes a table back in time: a row that passes is applied only when the table holds
no newer version of its key (by cursor, file position or load; headwater.quarantine.versions). A row
that loses is not loaded; its entry is marked `superseded`, in the same package, so it is not
replayed again.

A replay can take only some rows (a `Selection`: rule, location, record values) and set fields of
their records first (`--set`). The edited record is written back in the same package as the rows it
loads, so a fix is either loaded and recorded together or not at all. `prepare_replay` does all the
reading and checking, so a caller can say how many rows match before `PreparedReplay.load` writes.

Personal data is treated exactly once (headwater.quarantine.protection): the fields a record holds treated
(its `pii_treatment`) skip the table's `pii` step and the steps before it that changed their values, and
stay as they are; fields that arrive raw (a `--set` value, a row quarantined before records were treated)
go through the whole plan. A field treated otherwise than the table treats it now cannot be loaded as it
is: the row stays quarantined, with a reason that says which value to give. Every record written back is
treated, and so is every reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import dlt
import polars as pl

from headwater.common.file_rows import FILE_COLUMN, FILE_ROW_COLUMNS, REPLACES_FILES_HINT
from headwater.common.timestamps import iso_timestamp
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ProjectConfig, SourceConfig
from headwater.quarantine import records
from headwater.quarantine.naming import QUARANTINE_SUFFIX, quarantine_table_name
from headwater.quarantine.protection import Protected, RecordProtection, marks_of
from headwater.quarantine.selection import RAW_LINE, Selection
from headwater.quarantine.versions import Version, superseded, version_order

# Replaying into these would rewrite the whole table from a handful of rows.
UNSUPPORTED = {"replace": "it is replaced on every load", "scd2": "scd2 would retire every row not replayed"}
DLT_TYPES = {
    "bigint": pl.Int64, "double": pl.Float64, "bool": pl.Boolean, "text": pl.String,
    "timestamp": pl.Datetime("us", "UTC"), "date": pl.Date, "decimal": pl.Float64,
}
# Added to the reason of a line that could not be read and was replayed unchanged (once: it starts the same).
UNREADABLE_HINT_START = " (still unreadable"
UNREADABLE_HINT = f"{UNREADABLE_HINT_START}: give its fields with `replay --set FIELD=VALUE`, which drops {RAW_LINE})"
# Added to the reason of a row holding a personal value treated otherwise than the table treats it now.
TREATED_HINT_START = " (not replayed: "
WAITING_FOR_VALUE = "value to give (--set)"


class ReplayError(ValueError):
    """The replay cannot run as asked; str() says why and what to do."""


@dataclass
class TableReplay:
    table: str
    pending: int = 0  # quarantined rows found, before the selection
    matched: int = 0  # quarantined rows this replay takes: all of them, or those the selection picks
    replayed: int = 0  # loaded into the table by this replay
    superseded: int = 0  # passed, but not loaded: the table already held a newer version of the key
    still_quarantined: int = 0  # went through again and failed again
    skipped: str | None = None  # why the table was not replayed
    reasons: dict[str, int] = field(default_factory=dict)  # rule -> rows still failing


@dataclass
class PreparedReplay:
    """A replay read and checked, with its outcome per table already known; nothing is written until `load`."""

    results: list[TableReplay]
    pipeline: dlt.Pipeline
    items: list

    def load(self) -> list[TableReplay]:
        from headwater.load.pipeline import LOADER_FILE_FORMAT

        if self.items:
            schema = self.pipeline.default_schema
            info = self.pipeline.run(self.items, schema=schema, loader_file_format=LOADER_FILE_FORMAT)
            info.raise_on_failed_jobs()
        return self.results


def replay(
    config: ProjectConfig,
    source: SourceConfig,
    address: PostgresAddress,
    tables: list[str] | None = None,
    selection: Selection | None = None,
    edits: dict[str, str] | None = None,
) -> list[TableReplay]:
    return prepare_replay(config, source, address, tables, selection, edits).load()


def prepare_replay(
    config: ProjectConfig,
    source: SourceConfig,
    address: PostgresAddress,
    tables: list[str] | None = None,
    selection: Selection | None = None,
    edits: dict[str, str] | None = None,
) -> PreparedReplay:
    """Read the quarantined rows `selection` picks, set `edits` (field -> value as typed) in their records,
    and send them through the table's plan; raises ReplayError before anything is written."""
    from headwater.load.pipeline import LOADER_FILE_FORMAT, open_pipeline
    from headwater.load.recovery import recover
    from headwater.load.table_processor import protection_lookup

    pipeline = open_pipeline(config, source, address)
    recover(pipeline, LOADER_FILE_FORMAT, protection=protection_lookup(config, source, pipeline))
    pipeline.sync_destination()
    if not pipeline.default_schema_name:
        raise ReplayError(f"source {source.name!r} has not been loaded yet: nothing is quarantined")
    schema = pipeline.default_schema
    suffix = QUARANTINE_SUFFIX
    names = tables or sorted(name[: -len(suffix)] for name in schema.tables if name.endswith(suffix))
    column_types = address.column_types(pipeline.dataset_name)
    results, items = [], []
    for table in names:
        result, table_items = _replay_table(config, source, pipeline, table, selection or Selection(), edits or {},
                                            column_types)
        results.append(result)
        items.extend(table_items)
    return PreparedReplay(results, pipeline, items)


def _replay_table(config, source, pipeline, table: str, selection: Selection, edits: dict[str, str],
                  column_types: dict[tuple[str, str], str]):
    from headwater.load.table_processor import table_plan, table_protection
    from headwater.plugins.manager import connector_registry

    result = TableReplay(table)
    schema = pipeline.default_schema
    quarantine = quarantine_table_name(table)
    if quarantine not in schema.tables:
        known = ", ".join(sorted(n for n in schema.data_table_names() if not n.endswith(QUARANTINE_SUFFIX)))
        if table not in schema.tables:
            raise ReplayError(f"source {source.name!r} has no table {table!r}; tables: {known}")
        return result, []
    target = schema.tables.get(table)
    disposition = (target or {}).get("write_disposition", "append")
    if disposition in UNSUPPORTED or (target or {}).get("x-merge-strategy") == "scd2":
        result.skipped = f"not replayed: {UNSUPPORTED.get(disposition, UNSUPPORTED['scd2'])}; reload the source instead"
        return result, []
    pending, chosen = _pending(pipeline, quarantine), []
    result.pending = len(pending)
    for entry in pending:
        record = _parsed(entry["record"])
        if selection.matches(entry["rule"], entry["location"], record):
            chosen.append((entry, record))
    result.matched = len(chosen)
    if not chosen:
        return result, []
    marks = [marks_of(entry.get(records.PII_TREATMENT)) for entry, _ in chosen]
    if edits:
        values = _typed_edits(edits, f"{source.name}.{table}", target or {}, [record for _, record in chosen])
        chosen = [_edited(entry, record, values) for entry, record in chosen]
        # A value given now arrives as it is: the plan treats it.
        marks = [{name: mark for name, mark in held.items() if name not in values
                  and (name != RAW_LINE or (isinstance(record, dict) and RAW_LINE in record))}
                 for held, (_, record) in zip(marks, chosen, strict=True)]

    now = datetime.now(timezone.utc)
    config_table = next((t for t in source.tables if t.name == table), None)
    connector = connector_registry().get(source.connector)
    protection = table_protection(config, source, table, connector_pii=connector.pii if connector else None,
                                  hinted_columns=(target or {}).get("columns"))
    # Each record written back holds its personal fields treated, whatever happens to it.
    guards = protection.protect([record if isinstance(record, dict) else {} for _, record in chosen], marks=marks)
    chosen = [(_guarded(entry, record, guard), record) for (entry, record), guard in zip(chosen, guards, strict=True)]
    readable, updates = [], []
    for (entry, record), held, guard in zip(chosen, marks, guards, strict=True):
        if not isinstance(record, dict) or RAW_LINE in record:
            reason = entry["reason"].split(UNREADABLE_HINT_START)[0] + UNREADABLE_HINT
            updates.append(_update(entry, now, records.QUARANTINED, entry["rule"], reason))
        elif (treated_otherwise := protection.unreplayable(record, held)) is not None:
            reason = f"{entry['reason'].split(TREATED_HINT_START)[0]} ({treated_otherwise})"
            updates.append(_update(entry, now, records.QUARANTINED, entry["rule"], reason))
        else:
            readable.append((entry, record, guard, protection.treated_fields(held)))
    good = None
    if readable:
        frame = pl.DataFrame([record for _, record, _, _ in readable], infer_schema_length=None, strict=False)
        frame = frame.with_row_index("_quarantine_row")
        frame, cast_failures = _cast_like(frame, target or {})
        passed = frame.filter(~pl.col("_quarantine_row").is_in(list(cast_failures)))
        for index, reason in cast_failures.items():
            entry, _, guard, _ = readable[index]
            updates.append(_update(entry, now, records.QUARANTINED, "cast", guard.reason(reason)))

        def plan_for(treated: frozenset[str]):  # the plan that leaves the fields a record holds treated alone
            return table_plan(config, config_table, protection.steps_for(treated) if treated else None)

        passed, rejected = _through_plan(passed, readable, protection, plan_for)
        for row in rejected:
            entry, _, guard, _ = readable[row["_quarantine_row"]]
            updates.append(_update(entry, now, records.QUARANTINED, row["_rule"], guard.reason(row["_reason"])))
        older = _superseded(pipeline, column_types, table, target or {}, _cursor(pipeline, table, config_table),
                            [entry for entry, _, _, _ in readable], passed)
        for index in sorted(older):
            updates.append(_update(readable[index][0], now, records.SUPERSEDED, None, None))
        passed = passed.filter(~pl.col("_quarantine_row").is_in(list(older)))
        key = _recorded_key(target or {}, passed)
        for row in passed.select(["_quarantine_row", *key]).iter_rows(named=True):
            loaded_key = {name: row[name] for name in key}
            updates.append(_update(readable[row["_quarantine_row"]][0], now, records.REPLAYED, None, None, loaded_key))
        result.replayed, result.superseded = passed.height, len(older)
        good = passed.drop("_quarantine_row")
    for update in updates:
        if update["status"] == records.QUARANTINED:
            result.still_quarantined += 1
            # A row that waits for a personal value is counted as such, not under the rule it once broke.
            why = WAITING_FOR_VALUE if TREATED_HINT_START in (update["reason"] or "") else update["rule"]
            result.reasons[why] = result.reasons.get(why, 0) + 1

    hints = _table_hints(target or {})
    items = []
    if good is not None and good.height:
        items.append(dlt.mark.with_hints(good.to_arrow(), dlt.mark.make_hints(table_name=table, **hints)))
    keys = [name for name in chosen[0][0] if name not in records.OWN_COLUMNS and not name.startswith("_dlt")]
    key_types = {name: None for name in keys}
    if good is not None:
        key_types |= {name: good.schema[name] for name in _recorded_key(target or {}, good) if name not in key_types}
    items.append(records.mark(records.build_rows(table, updates, key_types), table))
    # Named like the table's own resource so the schema keeps attributing the table to it; no
    # incremental is attached, so the table's cursor state is left as it is.

    def batches():  # a generator, so dlt unwraps each marked batch to its own table
        yield from items

    resource_hints = {name: hints[name] for name in ("write_disposition", "primary_key", "columns") if name in hints}
    return result, [dlt.resource(batches, name=table, table_name=table, **resource_hints)]


def _through_plan(passed: pl.DataFrame, readable: list, protection: RecordProtection, plan_for):
    """The rows through the table's plan: (rows that pass, rows it rejects with `_rule` and `_reason`).

    Rows are taken in groups by the fields their records hold treated (`plan_for(treated)` builds the plan that
    leaves those alone); a field dropped in quarantine stays out of the rows, and so out of the table.
    """
    from headwater.processing import apply_plan

    groups: dict[frozenset[str], list[int]] = {}
    for index, (_, _, _, treated) in enumerate(readable):
        groups.setdefault(treated, []).append(index)
    good, rejected = [], []
    for treated, indexes in groups.items():
        rows = passed.filter(pl.col("_quarantine_row").is_in(indexes)).drop(protection.dropped(treated), strict=False)
        plan = plan_for(treated)
        if plan is None:
            good.append(rows)
            continue
        outcome = apply_plan(rows, plan)
        good.append(outcome.good)
        rejected.extend(outcome.rejected.iter_rows(named=True))
    if len(good) == 1:
        return good[0], rejected
    return pl.concat(good, how="diagonal_relaxed").sort("_quarantine_row"), rejected


def _guarded(entry: dict, record: Any, guard: Protected) -> dict:
    """The quarantine entry with its record's personal fields treated: what is written back."""
    if not isinstance(record, dict) or (not guard.marks and guard.record == record):
        return entry
    return {**entry, "record": records.record_json(guard.record), records.PII_TREATMENT: guard.marks_json}


def _pending(pipeline, quarantine: str) -> list[dict]:
    with pipeline.sql_client() as client:
        relation = client.make_qualified_table_name(quarantine)
        with client.execute_query(
            f"select * from {relation} where status = %s order by location", records.QUARANTINED
        ) as cursor:
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _parsed(record: str) -> Any:
    try:
        return json.loads(record)
    except ValueError:  # edited by hand into something that is not JSON: it stays quarantined, as unreadable
        return record


def _typed_edits(edits: dict[str, str], where: str, target: dict, chosen: list[Any]) -> dict[str, Any]:
    """The `--set` values, checked against the fields the rows have and typed like the table's columns.

    A field that is neither in the records nor a column of the table is refused: loaded, it would add a column.
    """
    columns = target.get("columns", {})
    fields = list(dict.fromkeys(
        [name for record in chosen if isinstance(record, dict) for name in record] + list(columns)
    ))
    settable = [name for name in fields if name not in FILE_ROW_COLUMNS and name != RAW_LINE
                and not name.startswith("_dlt")]
    typed = {}
    for name, text in edits.items():
        if name not in settable:
            kept = name in FILE_ROW_COLUMNS or name == RAW_LINE or name.startswith("_dlt")
            problem = "is kept by Headwater and cannot be set" if kept else f"is not a field of {where}"
            raise ReplayError(f"--set {name}={text}: {name!r} {problem}; fields: {', '.join(settable)}")
        typed[name] = _typed_value(name, text, columns.get(name, {}).get("data_type"), where)
    return typed


def _typed_value(name: str, text: str, data_type: str | None, where: str) -> Any:
    """The value as the JSON record should hold it; timestamps, dates and decimals stay text, checked."""
    try:
        if data_type == "bigint":
            return int(text)
        if data_type == "double":
            return float(text)
        if data_type == "bool":
            if text.strip().lower() not in ("true", "false"):
                raise ValueError(text)
            return text.strip().lower() == "true"
        if data_type == "decimal":
            Decimal(text)
        elif data_type == "timestamp" and iso_timestamp(text) is None:
            raise ValueError(text)
        elif data_type == "date":
            date.fromisoformat(text)
    except (ValueError, InvalidOperation):
        raise ReplayError(f"--set {name}={text}: {text!r} is not a valid {data_type} (column {name} of {where}); "
                          "nothing was replayed") from None
    return text


def _edited(entry: dict, record: Any, values: dict[str, Any]) -> tuple[dict, Any]:
    """The entry with its record's fields set; a line that could not be read is taken as corrected (no _raw_line).

    A whole file that could not be read (`_raw_line` null) has no fields to correct: it stays as it is.
    """
    if not isinstance(record, dict) or (RAW_LINE in record and record[RAW_LINE] is None):
        return entry, record
    edited = {name: value for name, value in record.items() if name != RAW_LINE} | values
    return {**entry, "record": records.record_json(edited)}, edited


def _superseded(pipeline, column_types, table: str, target: dict, cursor: str | None, entries: list[dict],
                passed: pl.DataFrame) -> set[int]:
    """The rows of `passed` (by `_quarantine_row`, an index into `entries`) that a newer version of their key
    supersedes, in the table or among themselves. Only tables that merge on a key replace a version."""
    order = version_order(target.get("columns", {}), cursor) if target.get("write_disposition") == "merge" else None
    if order is None or not passed.height or any(name not in passed.columns for name in order.key):
        return set()
    columns = ["_quarantine_row", *order.key, *(name for name in order.columns if name in passed.columns)]
    rows = passed.select(columns).to_dicts()
    versions = [Version(tuple(row[name] for name in order.key), tuple(row.get(name) for name in order.columns),
                        _read_load_id(entries[row["_quarantine_row"]])) for row in rows]
    with pipeline.sql_client() as client:
        lost = superseded(client, column_types, table, quarantine_table_name(table), order, versions)
    return {rows[position]["_quarantine_row"] for position in lost}


def _cursor(pipeline, table: str, config_table) -> str | None:
    """The table's incremental cursor: as configured, else as dlt recorded it (a connector's own, rest_api's)."""
    if config_table is not None and config_table.cursor:
        return config_table.cursor
    for state in (pipeline.state.get("sources") or {}).values():
        incremental = ((state.get("resources") or {}).get(table) or {}).get("incremental") or {}
        for path in incremental:
            return path
    return None


def _primary_key(target: dict) -> list[str]:
    return [name for name, column in target.get("columns", {}).items() if column.get("primary_key")]


def _recorded_key(target: dict, loaded: pl.DataFrame) -> list[str]:
    """The key columns written into the quarantine rows of the rows a replay loads: a later replay then knows which
    quarantined row (and which load read it) a version in the table came from (headwater.quarantine.versions)."""
    return [name for name in _primary_key(target) if name in loaded.columns and name not in records.OWN_COLUMNS]


def _read_load_id(entry: dict) -> str | None:
    """The load that read the quarantined row; rows quarantined before this was kept have it as their own load."""
    return entry.get(records.READ_LOAD_ID) or entry.get("_dlt_load_id")


def _update(entry: dict, now: datetime, status: str, rule: str | None, reason: str | None,
            loaded_key: dict | None = None) -> dict:
    """The quarantine row rewritten after a replay attempt (same id: the merge replaces it)."""
    resolved = status != records.QUARANTINED  # loaded, or superseded by a newer version
    return {
        "id": entry[records.ID],
        "record": entry["record"],
        "rule": rule or entry["rule"],
        "reason": reason or entry["reason"],
        "location": entry["location"],
        "status": status,
        "quarantined_at": entry["quarantined_at"] if resolved else now,
        "replayed_at": now if resolved else None,
        "attempts": (entry.get("attempts") or 0) + 1,
        records.READ_LOAD_ID: _read_load_id(entry),
        records.PII_TREATMENT: entry.get(records.PII_TREATMENT),
        "keys": {name: value for name, value in entry.items() if name not in records.OWN_COLUMNS} | (loaded_key or {}),
    }


def _table_hints(target: dict) -> dict:
    """The table's own write disposition and key, as stored in the pipeline's schema.

    A replay loads a few rows of a landing file, not the whole file: the hints that make a load replace
    a file's earlier rows (headwater.common.file_rows) are switched off, and a keyless table is appended to.
    """
    disposition = target.get("write_disposition", "append")
    strategy = target.get("x-merge-strategy")
    key = _primary_key(target)
    hints: dict = {"write_disposition": {"disposition": "merge", "strategy": strategy} if strategy else disposition}
    # Column types are not repeated as hints: the stored schema passed to the run already has them.
    if key:
        hints["primary_key"] = key
    else:
        hints["write_disposition"] = "append"
    if FILE_COLUMN in target.get("columns", {}):
        hints["columns"] = {FILE_COLUMN: {"name": FILE_COLUMN, "merge_key": False}}
        hints["additional_table_hints"] = {REPLACES_FILES_HINT: False}
    return hints


def _cast_like(frame: pl.DataFrame, target: dict) -> tuple[pl.DataFrame, dict[int, str]]:
    """Values from JSON records, given the table's column types; rows whose value does not fit fail as `cast`."""
    failures: dict[int, str] = {}
    casts = []
    for name, column in target.get("columns", {}).items():
        dtype = DLT_TYPES.get(column.get("data_type", ""))
        if name not in frame.columns or dtype is None or frame.schema[name] == dtype:
            continue
        values = frame[name]
        if values.dtype == pl.String and isinstance(dtype, pl.Datetime):
            # Value by value: a replay handles few rows, and one bad value must not hide the format of the others.
            typed = pl.Series(name, [iso_timestamp(value) for value in values], dtype=pl.Datetime("us", "UTC"))
        elif values.dtype == pl.String and dtype == pl.Date:
            typed = values.str.to_date(strict=False)
        else:
            typed = values.cast(dtype, strict=False)
        for index in (values.is_not_null() & typed.is_null()).arg_true().to_list():
            failures.setdefault(index, f"{name}: {values[index]!r} is not a valid {column['data_type']}")
        casts.append(typed.alias(name))
    return frame.with_columns(casts), failures

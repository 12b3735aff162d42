"""Per table, between the connector and dlt: run the table's steps and rules, and quarantine what fails.

The processor is a step on the dlt resource. Each batch is split into the rows that load and
the rows that do not; both leave in the same load package (the rejected ones marked for the
table's `__quarantine` table), so a run records both or neither. Rows a connector already
rejected (landing-file lines it could not read) arrive marked and are given the same columns.

The rows that load are then given the table's column types (headwater.common.widening): a batch narrower
than a column is cast up to it, one that needs a wider type widens the column in dlt's schema, so
files and extracts whose types drift land in one table. A column whose type the connector declares
(a database column's) keeps it, unless a step changes it (a `cast` of a text column to int, a hash of
a number): the step's type then replaces the declared one, which would otherwise turn the values
back into the source's type, or fail the load. A batch of a landing file loaded before
(headwater.common.file_rows) makes a keyless table replace that file's earlier rows in this load.

Every quarantine record leaves with the table's personal fields treated as its `pii` step treats them
(headwater.quarantine.protection), so no raw personal value reaches a load file or the quarantine table.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

import dlt
import polars as pl
import pyarrow as pa
from dlt.extract import DltResource
from dlt.extract.items import DataItemWithMeta
from dlt.extract.items_transform import YieldMapItem

from headwater.common.file_rows import FILE_COLUMN, REPLACES_FILES_HINT, is_reread
from headwater.common.widening import conform_batch, retype_hint
from headwater.quarantine import records
from headwater.quarantine.naming import is_quarantine_table
from headwater.quarantine.protection import NO_PROTECTION, RecordProtection, record_protection

# A keyless table that gets a file again: that file's earlier rows are replaced in the same load.
FILE_SCOPED_REPLACE = {"write_disposition": {"disposition": "merge", "strategy": "delete-insert"},
                       "merge_key": FILE_COLUMN}


class _BatchYieldMap(YieldMapItem):
    """A yield-map that receives a page of rows as one list, so a plan runs once per page, not per row."""

    def __call__(self, item: Any, meta: Any = None) -> Iterator[Any]:
        yield from self._f_meta(item, meta)


class TableProcessor:
    """Callable dlt step for one table; see the module docstring."""

    def __init__(self, table: str, resource: DltResource, plan=None, protection: RecordProtection = NO_PROTECTION):
        self.table = table
        self.resource = resource
        self.plan = plan if plan is not None and not getattr(plan, "empty", False) else None
        self.protection = protection
        self._key_columns: list[str] | None = None
        self._typed_by_source: frozenset[str] | None = None

    def attach(self) -> None:
        # Placed like add_yield_map: before dlt's incremental step, which therefore also sees the
        # quarantine rows; they carry the key and cursor columns it needs (see key_columns).
        self.resource.add_step(_BatchYieldMap(self))
        self.typed_by_source()

    def __call__(self, item: Any, meta: Any = None) -> Iterator[Any]:
        if _quarantine_mark(meta):  # lines the connector could not read
            yield records.mark(self._from_connector(pa.table(item) if not isinstance(item, pa.Table) else item),
                               self.table)
            return
        if self.plan is None or _empty(item):
            yield self._typed(item, meta)
            return
        from headwater.processing import apply_plan

        frame, back = _to_frame(item)
        result = apply_plan(frame, self.plan)
        if result.good.height or not result.rejected.height:
            good = back(result.good)
            if isinstance(good, pa.Table) and isinstance(item, pa.Table) and item.schema.metadata:
                good = good.replace_schema_metadata(item.schema.metadata)  # keeps the re-read mark
            # Arrow batches carry their types, which only the connector's declared ones override; rows as dicts
            # are typed by dlt from their values, which loses what a step made of them (a decimal's precision).
            watched = self.typed_by_source() if isinstance(good, pa.Table) else frozenset(frame.columns)
            yield self._typed(good, meta, _retyped(frame.schema, result.good, watched))
        if result.rejected.height:
            yield records.mark(self._from_rejected(result.rejected), self.table)

    def _typed(self, item: Any, meta: Any, retyped: dict[str, pa.DataType] | None = None) -> Any:
        """The batch in the table's column types, with the hints that change them or its write mode.

        ``retyped``: columns a step gave another type than the connector declares or dlt would infer, with
        that type. It replaces theirs, widened to the type the table already has (types only widen).
        """
        if isinstance(item, pa.RecordBatch):
            item = pa.Table.from_batches([item])
        if _names_another_table(meta):
            return _with_meta(item, meta)
        retyped = retyped or {}
        hints: dict = {}
        schema = _live_schema()
        if isinstance(item, pa.Table) and schema is not None:
            columns = schema.get_table_columns(self.table) if self.table in schema.tables else {}
            item, widened = conform_batch(item, columns, _capabilities(), schema.naming.normalize_identifier,
                                          self.typed_by_source(), frozenset(retyped))
            if widened:
                hints["columns"] = widened
        elif retyped:  # rows as dicts, or outside an extract
            columns = schema.get_table_columns(self.table) if schema is not None and self.table in schema.tables else {}
            normalize = schema.naming.normalize_identifier if schema is not None else str
            hints["columns"] = {name: retype_hint(columns.get(normalize(name)) or {}, arrow_type)
                                for name, arrow_type in retyped.items()}
        if is_reread(item):
            if self.resource.write_disposition == "append":
                hints.update(FILE_SCOPED_REPLACE)
            else:  # a keyed table: the merge deletes the file's earlier rows first (headwater.postgres.loader)
                hints["additional_table_hints"] = {REPLACES_FILES_HINT: True}
        if not hints or meta is not None:  # a connector's own hints on the batch stay as they are
            return _with_meta(item, meta)
        return dlt.mark.with_hints(item, dlt.mark.make_hints(**hints))

    def typed_by_source(self) -> frozenset[str]:
        """Columns the connector gives a type (a database column's): their batches are not re-typed.

        Read when the processor is attached, before any batch: the hints that widen a column are merged
        into the resource's hints later, and must not count as the connector's.
        """
        if self._typed_by_source is None:
            hinted = self.resource.columns if isinstance(self.resource.columns, dict) else {}
            self._typed_by_source = frozenset(name for name, hint in hinted.items() if hint.get("data_type"))
        return self._typed_by_source

    def key_columns(self) -> list[str]:
        """Primary-key and cursor columns, when the resource is incremental (dlt's step needs them)."""
        if self._key_columns is None:
            columns: list[str] = []
            wrapper = self.resource.incremental
            incremental = getattr(wrapper, "incremental", wrapper)
            if incremental is not None and getattr(incremental, "cursor_path", None):
                key = getattr(incremental, "primary_key", None) or self.resource._hints.get("primary_key") or []
                columns = [key] if isinstance(key, str) else list(key)
                if incremental.cursor_path not in columns:
                    columns.append(incremental.cursor_path)
            self._key_columns = columns
        return self._key_columns

    def _from_rejected(self, rejected: pl.DataFrame) -> pa.Table:
        keys = self.key_columns()
        originals = rejected.drop([records.RULE_COLUMN, records.REASON_COLUMN])
        protected = self.protection.protect(originals.to_dicts(), frame=originals)
        entries = []
        for row, rule, reason in zip(
            protected, rejected[records.RULE_COLUMN], rejected[records.REASON_COLUMN], strict=True
        ):
            entries.append({
                "record": records.record_json(row.record),
                "rule": rule,
                "reason": row.reason(reason),
                "location": records.location_of(row.record, self.resource.name, keys or _primary_key(self.resource)),
                "keys": {name: row.record.get(name) for name in keys},
                records.PII_TREATMENT: row.marks_json,
            })
        # A key column the treatment changed (a hashed key) keeps the type the treatment gave it.
        types = {name: None if name in self.protection.fields else originals.schema.get(name) for name in keys}
        return records.build_rows(self.table, entries, types)

    def _from_connector(self, table: pa.Table) -> pa.Table:
        keys = self.key_columns()
        entries = []
        now = datetime.now(timezone.utc)
        rows = table.to_pylist()
        found = [json.loads(row["record"]) for row in rows]
        protected = self.protection.protect([record if isinstance(record, dict) else {} for record in found])
        for row, record, treated in zip(rows, found, protected, strict=True):
            entry = {
                "record": records.record_json(treated.record) if self.protection.active and isinstance(
                    record, dict) else row["record"],
                "rule": row["rule"],
                "reason": treated.reason(row["reason"]),
                "location": row.get("location") or self.resource.name,
                # a connector may send the key and cursor columns typed; the record holds them as JSON
                "keys": {name: treated.record.get(name) if name in treated.marks else
                         row[name] if name in row else record.get(name) for name in keys},
                records.PII_TREATMENT: treated.marks_json,
            }
            if row.get("status") == records.REPLAYED:  # an earlier rejection the connector now read cleanly
                entry.update(status=records.REPLAYED, replayed_at=now)
            entries.append(entry)
        return records.build_rows(self.table, entries, {name: None for name in keys})


def _retyped(before: pl.Schema, good: pl.DataFrame, watched: frozenset[str]) -> dict[str, pa.DataType]:
    """The `watched` columns a step changed the type of (a `cast`, a hash), with their Arrow type now.

    A connector's declared type (a database `text` column's, say) would otherwise stay the column's type:
    cast values would land as text again, or, with a precision the cast brings (a decimal's), fail the load.
    """
    changed = [name for name in watched
               if name in before and name in good.columns and good.schema[name] != before[name]]
    if not changed:
        return {}
    types = good.select(changed).head(0).to_arrow().schema
    return {name: types.field(name).type for name in changed}


def attach_processor(resource: DltResource, table: str, plan=None,
                     protection: RecordProtection = NO_PROTECTION) -> TableProcessor:
    processor = TableProcessor(table, resource, plan, protection)
    processor.attach()
    return processor


def unchanged_tables(dlt_source) -> frozenset[str]:
    """The selected tables whose rows no step, rule or protection changes: they land as the connector gives them
    (which lets a connector pass them to Postgres without decoding them, headwater.postgres.copy_ahead)."""
    unchanged = set()
    for name, resource in dlt_source.selected_resources.items():
        step = resource._pipe.get_by_type(_BatchYieldMap)
        processor = getattr(step, "_f_meta", None) if step is not None else None
        if isinstance(processor, TableProcessor) and processor.plan is None and processor.protection is NO_PROTECTION:
            unchanged.add(name)
    return frozenset(unchanged)


def _live_schema():
    """The schema dlt is extracting into: the stored types plus this run's changes (None outside an extract)."""
    try:
        return dlt.current.source_schema()
    except Exception:  # a direct call, e.g. in a test: no types to conform to
        return None


def _capabilities():
    from dlt.common.configuration.container import Container
    from dlt.common.destination import DestinationCapabilitiesContext

    return Container().get(DestinationCapabilitiesContext) or DestinationCapabilitiesContext.generic_capabilities()


def _names_another_table(meta: Any) -> bool:
    hints = getattr(meta, "hints", None)
    return isinstance(hints, dict) and bool(hints.get("table_name"))


def _quarantine_mark(meta: Any) -> bool:
    hints = getattr(meta, "hints", None)
    return isinstance(hints, dict) and is_quarantine_table(str(hints.get("table_name") or ""))


def _with_meta(item: Any, meta: Any) -> Any:
    # Hints a connector put on a batch (e.g. another table name) stay on it.
    return DataItemWithMeta(meta, item) if meta is not None else item


def _empty(item: Any) -> bool:
    if isinstance(item, (pa.Table, pa.RecordBatch)):
        return item.num_rows == 0
    return isinstance(item, list) and not item


def _to_frame(item: Any):
    """A batch as a Polars frame, and how to turn the good rows back into what dlt got before."""
    if isinstance(item, (pa.Table, pa.RecordBatch)):
        return pl.from_arrow(item), lambda frame: _with_field_metadata(frame.to_arrow(), item.schema)
    if isinstance(item, pl.DataFrame):
        return item, lambda frame: frame.to_arrow()
    if hasattr(item, "to_dict") and hasattr(item, "columns"):  # pandas
        return pl.from_pandas(item), lambda frame: frame.to_arrow()
    rows = item if isinstance(item, list) else [item]
    # Rows given as dicts go back to dlt as dicts: dlt keeps typing and nesting them as it did before
    # the table had rules (Arrow would turn ISO dates into text and nested lists into JSON columns).
    frame = pl.DataFrame(rows, infer_schema_length=None, strict=False)
    return frame, lambda good: good.to_dicts()


def _with_field_metadata(table: pa.Table, before: pa.Schema) -> pa.Table:
    """The field metadata a batch had before its plan (a JSON text column's mark) on the columns after it."""
    marked = {field.name: field.metadata for field in before if field.metadata}
    if not any(name in marked for name in table.column_names):
        return table
    schema = pa.schema([field.with_metadata(marked[field.name]) if field.name in marked else field
                        for field in table.schema], metadata=table.schema.metadata)
    return pa.Table.from_arrays(table.columns, schema=schema)


def _primary_key(resource: DltResource) -> list[str]:
    key = resource._hints.get("primary_key") or []
    return [key] if isinstance(key, str) else list(key)


def table_plan(config, table_config, steps: list[dict] | None = None):
    """The table's built steps and rules (secrets resolved), or None when it has neither.

    ``steps``: resolved steps to build instead of the table's own (a replay's, RecordProtection.steps_for).
    """
    if table_config is None or not (table_config.steps or table_config.rules):
        return None
    from headwater.plugins.manager import step_registry
    from headwater.processing import build_plan

    if steps is None:
        steps = resolved_steps(config, table_config)
    variables = config.variables
    rules = variables.resolve(list(table_config.rules)) if variables else list(table_config.rules)
    return build_plan(steps, rules, project_dir=config.root, registry=step_registry())


def resolved_steps(config, table_config) -> list[dict]:
    steps = list(table_config.steps) if table_config is not None else []
    return config.variables.resolve(steps) if config.variables else steps


def table_protection(config, source, table: str, plan=None, connector_pii: dict | None = None,
                     hinted_columns: dict | None = None) -> RecordProtection:
    """How the table's quarantine records keep personal data out: its `pii` steps, and the columns declared PII
    by its `pii:` list, the connector (``connector_pii``: resource -> columns) or an `x-pii` column hint."""
    table_config = next((entry for entry in source.tables if entry.name == table), None)
    declared = set(table_config.pii if table_config is not None else ())
    declared |= set((connector_pii or {}).get(table, ()))
    declared |= {name for name, hint in (hinted_columns or {}).items() if isinstance(hint, dict) and hint.get("x-pii")}
    steps = resolved_steps(config, table_config)
    if plan is None and steps:
        plan = table_plan(config, table_config)
    return record_protection(steps, plan, declared, config.quarantine_of(source).keeps_declared_pii)


def protection_lookup(config, source, pipeline, connector_pii: dict | None = None) -> Callable[[str], RecordProtection]:
    """table -> its RecordProtection, built when first asked for (rows Postgres refuses are rare); the column hints
    come from the pipeline's schema, ``connector_pii`` from the source's connector when not given."""
    built: dict[str, RecordProtection] = {}
    if connector_pii is None:
        from headwater.plugins.manager import connector_registry

        connector = connector_registry().get(source.connector)
        connector_pii = connector.pii if connector is not None else {}

    def protection_of(table: str) -> RecordProtection:
        if table not in built:
            schema = pipeline.default_schema if pipeline.default_schema_name else None
            hinted = (schema.tables.get(table) or {}).get("columns") if schema is not None else None
            built[table] = table_protection(config, source, table, connector_pii=connector_pii, hinted_columns=hinted)
        return built[table]

    return protection_of


def attach_processors(config, source, dlt_source, connector_pii: dict | None = None) -> None:
    """Give every selected table of a dlt source its processor (steps, rules, quarantine)."""
    configured = {table.name: table for table in source.tables}
    for name, resource in dlt_source.selected_resources.items():
        plan = table_plan(config, configured.get(name))
        hinted = resource.columns if isinstance(resource.columns, dict) else None
        protection = table_protection(config, source, name, plan, connector_pii, hinted)
        attach_processor(resource, name, plan, protection)

"""The two leftmost layers: connector resources (``source:<source>``) and the raw tables dlt loaded.

A raw table is described from dlt's stored schema (headwater.load.stored_schemas). Each of its
columns comes from a resource field: the field of the same name, unless the table's ``steps:`` in
headwater.yaml rename, derive, look it up, mask, hash or drop it (headwater.processing.column_trace).

Naming of resource fields: top-level fields by their name; fields inside nested data by their path
joined with ``__`` as dlt names them (``customers__addresses.city`` <- ``source:shop_db.customers``
field ``addresses__city``; a list of scalars, dlt's ``value`` column, is ``addresses__tags__value``).
dlt's own columns (``_dlt_*``) and the columns a file connector adds (``_file_name``,
``_file_modified_at``, ``_line``) have no resource field.

Quarantine tables (``<table>__quarantine``) are kept, marked with ``quarantine_of``: their
``record`` column holds the rejected row as it arrived, before any step, so every field of the
resource reaches it; its personal fields (those of a ``pii`` step, and declared PII) arrive treated
(headwater.quarantine.protection), as masking edges.

PII (``ColumnInfo.pii``) is declared by the table's ``pii:`` in headwater.yaml, the connector's
``pii`` metadata (both may name a resource field or a raw column) and dlt ``x-pii`` column hints;
it is set on the resource field and on the raw columns that carry it.
"""

from __future__ import annotations

from headwater.common.file_rows import FILE_ROW_COLUMNS
from headwater.lineage.model import (
    DIRECT,
    INDIRECT,
    RESOURCE_PREFIX,
    ColumnInfo,
    ColumnRef,
    Edge,
    Lineage,
    TableInfo,
    Unresolved,
)
from headwater.load.stored_schemas import DLT_PREFIX, StoredTable, stored_tables
from headwater.postgres.row_counts import RowCount, count_rows
from headwater.processing.column_trace import Origin, StepTrace, trace_steps
from headwater.project.config import ProjectConfig, SourceConfig
from headwater.quarantine.naming import table_of
from headwater.quarantine.protection import record_protection
from headwater.quarantine.records import OWN_COLUMNS, RECORD

LOADER_COLUMNS = FILE_ROW_COLUMNS  # added by the filesystem connector, not a source field
TEXT_TYPES = frozenset({"text"})


def add_raw_layers(lineage: Lineage, project: ProjectConfig, connection, registry=None) -> None:
    """Resource and raw tables of every enabled source, the edges between them and their PII tags."""
    for source in project.sources:
        if source.enabled:
            connector = registry.get(source.connector) if registry is not None else None
            connector_pii = dict(getattr(connector, "pii", None) or {})
            _add_source(lineage, project, source, connection, connector_pii)


def _add_source(lineage: Lineage, project: ProjectConfig, source: SourceConfig, connection,
                connector_pii: dict[str, list[str]]) -> None:
    tables = stored_tables(connection, source.dataset)
    counts = count_rows(connection, [(source.dataset, table.name) for table in tables])
    configs = {table.name: table for table in source.tables}
    traces: dict[str, StepTrace] = {}
    for stored in tables:
        config = configs.get(stored.resource)
        if stored.resource not in traces:
            traces[stored.resource] = trace_steps(config.steps if config else (), project.root, project.variables)
            for problem in traces[stored.resource].problems:
                lineage.unresolved.append(Unresolved(f"{source.dataset}.{stored.resource}", None, problem))
        resource = _resource_table(lineage, source, stored.resource)
        count = counts.get((source.dataset, stored.name), RowCount(None))
        raw = lineage.add_table(TableInfo(
            schema=source.dataset, name=stored.name, layer="raw", description=stored.description,
            materialized="table", source=source.name, resource=stored.resource, parent=stored.parent,
            row_count=count.rows, row_count_estimated=count.estimated,
            quarantine_of=table_of(stored.name) if stored.is_quarantine else None,
        ))
        for name, hints in stored.columns.items():
            raw.columns[name] = ColumnInfo(ColumnRef(raw.schema, raw.name, name), data_type=hints.get("data_type"),
                                           description=hints.get("description") or "")
        if not stored.is_quarantine:
            _link(lineage, resource, raw, stored, traces[stored.resource])
    declared_of = {stored.resource: set() for stored in tables}
    for stored in tables:
        declared = set(connector_pii.get(stored.resource, ()))
        declared |= set(configs[stored.resource].pii if stored.resource in configs else ())
        declared |= {name for name, hints in stored.columns.items() if hints.get("x-pii")}
        declared_of[stored.resource] |= declared
    for stored in tables:  # after every table: the quarantine record holds all the resource's fields
        if stored.is_quarantine:
            config = configs.get(stored.resource)
            treated = record_protection(config.steps if config else (), None, declared_of[stored.resource],
                                        project.quarantine_of(source).keeps_declared_pii).fields
            _link_quarantine(lineage, lineage.tables[f"{source.dataset}.{stored.name}"], stored,
                             _resource_table(lineage, source, stored.resource), set(treated))
    for stored in tables:
        declared = set(connector_pii.get(stored.resource, ()))
        declared |= set(configs[stored.resource].pii if stored.resource in configs else ())
        declared |= {name for name, hints in stored.columns.items() if hints.get("x-pii")}
        if declared:
            _tag_pii(lineage, source, stored, declared, traces[stored.resource])


def _resource_table(lineage: Lineage, source: SourceConfig, resource: str) -> TableInfo:
    return lineage.add_table(TableInfo(schema=f"{RESOURCE_PREFIX}{source.name}", name=resource, layer="resource",
                                       source=source.name, resource=resource))


def _field(resource: TableInfo, name: str, data_type: str | None = None) -> ColumnInfo:
    info = resource.columns.get(name)
    if info is None:
        info = resource.columns[name] = ColumnInfo(ColumnRef(resource.schema, resource.name, name), data_type)
    return info


def _link(lineage: Lineage, resource: TableInfo, raw: TableInfo, stored: StoredTable, trace: StepTrace) -> None:
    for name, hints in stored.columns.items():
        target = raw.columns[name].ref
        if name.startswith(DLT_PREFIX) or name in LOADER_COLUMNS:
            continue
        if stored.parent and stored.path:  # nested: the field path below the root, its first step through renames
            path = [trace.field_of(stored.path[0]), *stored.path[1:], name]
            field = _field(resource, "__".join(path), hints.get("data_type"))
            lineage.edges.append(Edge(field.ref, target, DIRECT, subtype="IDENTITY"))
            continue
        origin = trace.origin(name)
        if origin is None or (name not in trace.origins and "__" in name):
            origin = _flattened(trace, name)
        if "trim" in trace.every_text_column and hints.get("data_type") in TEXT_TYPES:
            origin = Origin(origin.fields, origin.keys, ["trim", *origin.steps], origin.masking, origin.derived)
        raw.columns[name].masked = origin.masking
        plain = not origin.steps and not origin.derived
        # The field's type is the raw column's unless a step changed it (cast, derive, lookup, hash).
        same_type = not origin.derived and not any(step.startswith(("cast ", "pii hash")) for step in origin.steps)
        for field_name in sorted(origin.fields):
            field = _field(resource, field_name, hints.get("data_type") if same_type else None)
            lineage.edges.append(Edge(field.ref, target, DIRECT, transformation=origin.transformation,
                                      masking=origin.masking, subtype="IDENTITY" if plain else "TRANSFORMATION"))
        for key in sorted(origin.keys):
            lineage.edges.append(Edge(_field(resource, key).ref, target, INDIRECT,
                                      transformation=origin.transformation, subtype="JOIN"))
    for name, origin in trace.dropped.items():  # the field exists at the source but stops at load
        if not stored.parent:
            for field_name in origin.fields or {name}:
                field = _field(resource, field_name)
                field.masked = True
                field.description = field.description or f"dropped at load (pii: {{{name}: drop}})"


def _flattened(trace: StepTrace, name: str) -> Origin:
    """A flattened struct column (``address__city``): the struct field through the renames, then the path."""
    head, _, rest = name.partition("__")
    return Origin({f"{trace.field_of(head)}__{rest}"})


def _link_quarantine(lineage: Lineage, quarantine: TableInfo, stored: StoredTable, resource: TableInfo,
                     treated: set[str]) -> None:
    """``treated``: the fields the record holds hashed, masked or dropped (headwater.quarantine.protection)."""
    fields = sorted(resource.columns)
    for name in stored.columns:
        target = quarantine.columns[name].ref
        if name == RECORD:
            for field in fields:
                how = "; its pii treatment applied" if field in treated else ""
                lineage.edges.append(Edge(resource.columns[field].ref, target, DIRECT,
                                          transformation=f"the rejected row as JSON, before any step{how}",
                                          masking=field in treated, subtype="TRANSFORMATION"))
        elif name not in OWN_COLUMNS and name in resource.columns:  # key and cursor columns, as it arrived
            lineage.edges.append(Edge(resource.columns[name].ref, target, DIRECT, subtype="IDENTITY"))


def _tag_pii(lineage: Lineage, source: SourceConfig, stored: StoredTable, declared: set[str],
             trace: StepTrace) -> None:
    """Mark the declared names: resource fields of that name, raw columns of that name or copied from one."""
    raw = lineage.tables[f"{source.dataset}.{stored.name}"]
    resource = lineage.tables[f"{RESOURCE_PREFIX}{source.name}.{stored.resource}"]
    for name in declared & set(resource.columns):
        resource.columns[name].pii = True
    personal = {name for name, info in resource.columns.items() if info.pii}
    for name, info in raw.columns.items():
        fields = {edge.source.column for edge in lineage.inputs(info.ref, (DIRECT,))}
        if raw.quarantine_of:  # the record holds every field as it arrived, its personal ones treated
            info.pii = info.pii or bool(fields & personal and name in (RECORD, *personal))
            if name == RECORD and info.pii:
                masked = {edge.source.column for edge in lineage.inputs(info.ref, (DIRECT,)) if edge.masking}
                info.masked = fields & personal <= masked
            continue
        origin = None if stored.parent else trace.origin(name)
        copied = len(fields) == 1 and not (origin and origin.derived)
        if name in declared or (copied and fields <= declared):
            info.pii = True
            for field in fields:
                resource.columns[field].pii = True

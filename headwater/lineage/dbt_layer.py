"""The dbt layers: one table per model (its layer is its schema), column edges read from the compiled SQL.

Models are traced one at a time, in dependency order, against the columns of their inputs: the
dbt catalog for relations dbt knows, dlt's stored schema for raw tables (nested tables included).
A model not built yet is not in the catalog; its columns are then the output names sqlglot reads,
so the models downstream of it can still be traced.
"""

from __future__ import annotations

from headwater.lineage.dbt_artifacts import DbtArtifacts, DbtNode
from headwater.lineage.model import DIRECT, INDIRECT, ColumnInfo, ColumnRef, Edge, Lineage, TableInfo, Unresolved
from headwater.lineage.sql_lineage import IDENTITY, trace_model

# Columns dbt adds to a snapshot: not in its SQL, so not traced, and not a problem.
SNAPSHOT_COLUMNS = frozenset({"dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to", "dbt_is_deleted"})
DBT_CHECK_PREFIX = "dbt:"


def add_dbt_layers(lineage: Lineage, artifacts: DbtArtifacts) -> None:
    """Model tables, their column edges and descriptions; source descriptions go onto the raw tables."""
    _describe_sources(lineage, artifacts)
    known = {(table.schema, table.name): {name: info.data_type or "text" for name, info in table.columns.items()}
             for table in lineage.tables.values() if table.layer != "resource"}
    known.update({relation: columns for relation, columns in artifacts.columns.items() if columns})
    for node in artifacts.nodes:
        table = _model_table(lineage, node, artifacts.columns.get((node.schema, node.alias)))
        if node.resource_type != "seed":
            _trace(lineage, node, table, known, in_catalog=(node.schema, node.alias) in artifacts.columns)
        known[(table.schema, table.name)] = {name: info.data_type or "text" for name, info in table.columns.items()}
        _add_tests(table, node.tests)


def _describe_sources(lineage: Lineage, artifacts: DbtArtifacts) -> None:
    for source in artifacts.sources:
        table = lineage.tables.get(f"{source.schema}.{source.identifier}")
        if table is None:  # declared in dbt, not loaded by a Headwater source: known from the catalog only
            columns = artifacts.columns.get((source.schema, source.identifier))
            if columns is None:
                continue
            table = lineage.add_table(TableInfo(source.schema, source.identifier, "raw", source=source.source_name,
                                                materialized="table"))
            for name, data_type in columns.items():
                table.columns[name] = ColumnInfo(ColumnRef(table.schema, table.name, name), data_type)
        table.description = table.description or source.description
        for name, description in source.column_descriptions.items():
            if name in table.columns and description and not table.columns[name].description:
                table.columns[name].description = description
        _add_tests(table, source.tests)


def _model_table(lineage: Lineage, node: DbtNode, catalog_columns: dict[str, str] | None) -> TableInfo:
    table = lineage.add_table(TableInfo(
        schema=node.schema, name=node.alias, layer=node.schema, description=node.description,
        materialized=node.materialized, sql=node.compiled_code,
    ))
    for name, data_type in (catalog_columns or {}).items():
        table.columns[name] = ColumnInfo(ColumnRef(table.schema, table.name, name), data_type,
                                         description=node.column_descriptions.get(name, ""))
    return table


def _trace(lineage: Lineage, node: DbtNode, table: TableInfo, known: dict, *, in_catalog: bool) -> None:
    if not node.compiled_code:
        lineage.unresolved.append(Unresolved(table.key, None, "dbt did not compile this model; nothing to trace"))
        return
    trace = trace_model(node.compiled_code, known, node.database)
    lineage.unresolved += [Unresolved(table.key, None, reason) for reason in trace.unresolved]
    for name, column in trace.columns.items():
        if name not in table.columns:
            table.columns[name] = ColumnInfo(ColumnRef(table.schema, table.name, name),
                                             description=node.column_descriptions.get(name, ""))
        target = table.columns[name].ref
        for key, direct in column.direct.items():
            lineage.edges.append(Edge(
                ColumnRef(*key), target, DIRECT,
                transformation="" if direct.subtype == IDENTITY else column.transformation,
                masking=direct.masking, subtype=direct.subtype,
            ))
        for (key, subtype), clause in column.indirect.items():
            lineage.edges.append(Edge(ColumnRef(*key), target, INDIRECT, transformation=clause, subtype=subtype))
        lineage.unresolved += [Unresolved(table.key, name, reason) for reason in column.unresolved]
    if in_catalog and not trace.unresolved:
        for name in table.columns:
            if name not in trace.columns and not (node.resource_type == "snapshot" and name in SNAPSHOT_COLUMNS):
                lineage.unresolved.append(Unresolved(
                    table.key, name, "in the database relation but not an output of the compiled SQL "
                    "(the relation may be older than the model)"))


def _add_tests(table: TableInfo, tests: dict[str | None, list[str]]) -> None:
    for column, names in tests.items():
        checks = table.checks if column is None else getattr(table.columns.get(column), "checks", None)
        if checks is None:
            continue
        for name in names:
            if f"{DBT_CHECK_PREFIX}{name}" not in checks:
                checks.append(f"{DBT_CHECK_PREFIX}{name}")

"""The lineage as an OpenLineage RunEvent (plain JSON-ready dicts, spec 2-0-2), for Marquez, DataHub & co.

One COMPLETE event per pipeline run: job ``headwater`` / ``<project>.daily``; inputs are the raw
tables; outputs are the dbt models, each with a ``schema`` facet and a ``columnLineage`` facet
whose input fields are the model's own inputs (the previous layer), with DIRECT transformations
(IDENTITY, TRANSFORMATION, AGGREGATION; ``masking`` where the value is hashed or masked) and
INDIRECT ones (JOIN, GROUP_BY, FILTER, SORT, WINDOW, CONDITIONAL). Datasets are named as the
OpenLineage Postgres integration names them: namespace ``postgres://host:port``, name
``database.schema.table``. Connector resources are not Postgres datasets and are left out.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

from headwater import __version__
from headwater.lineage.model import RESOURCE_PREFIX, Edge, Lineage, TableInfo
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ProjectConfig

# OpenLineage asks for a URI naming the producing software and its version.
PRODUCER = f"urn:headwater:{__version__}"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
_FACET_SCHEMAS = {
    "schema": "https://openlineage.io/spec/facets/1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "columnLineage": "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json"
                     "#/$defs/ColumnLineageDatasetFacet",
    "jobType": "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "documentation": "https://openlineage.io/spec/facets/1-1-0/DocumentationDatasetFacet.json"
                     "#/$defs/DocumentationDatasetFacet",
}
JOB_NAMESPACE = "headwater"


def openlineage_event(lineage: Lineage, project: ProjectConfig, address: PostgresAddress,
                      run_id: str | None = None) -> dict:
    """A COMPLETE RunEvent of the project's daily job describing ``lineage``.

    ``run_id`` is the run's id (a Prefect flow run id, say); a value that is not a UUID is turned into
    one deterministically (uuid5), and without one a new UUID is made.
    """
    namespace = f"postgres://{address.host}:{address.port}"
    raw = [table for table in _sorted(lineage) if table.layer == "raw"]
    models = [table for table in _sorted(lineage) if table.layer not in ("raw", "resource")]
    return {
        "eventType": "COMPLETE",
        "eventTime": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "run": {"runId": _run_uuid(run_id), "facets": {}},
        "job": {
            "namespace": JOB_NAMESPACE,
            "name": f"{project.name}.daily",
            "facets": {"jobType": _facet("jobType", processingType="BATCH", integration="HEADWATER", jobType="JOB")},
        },
        "inputs": [_dataset(table, namespace, address.database) for table in raw],
        "outputs": [_dataset(table, namespace, address.database, lineage) for table in models],
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
    }


def events_file(project: ProjectConfig) -> Path:
    """Where the daily flow keeps one OpenLineage event per run, one JSON object per line."""
    return project.state_dir / "openlineage" / "events.jsonl"


def append_event(path: Path, event: dict) -> Path:
    """Add ``event`` as one line of the JSONL file at ``path`` (created with its folder when missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(event, separators=(",", ":")) + "\n")
    return path


def dataset_name(database: str, schema: str, table: str) -> str:
    return f"{database}.{schema}.{table}"


def _dataset(table: TableInfo, namespace: str, database: str, lineage: Lineage | None = None) -> dict:
    fields = []
    for info in table.columns.values():
        field = {"name": info.ref.column, "type": info.data_type or ""}
        if info.description:
            field["description"] = info.description
        fields.append(field)
    facets = {"schema": _facet("schema", fields=fields)}
    if table.description:
        facets["documentation"] = _facet("documentation", description=table.description)
    if lineage is not None:
        facets["columnLineage"] = _facet("columnLineage", fields=_column_lineage(lineage, table, namespace, database))
    dataset = {"namespace": namespace, "name": dataset_name(database, table.schema, table.name), "facets": facets}
    dataset["outputFacets" if lineage is not None else "inputFacets"] = {}
    return dataset


def _column_lineage(lineage: Lineage, table: TableInfo, namespace: str, database: str) -> dict:
    incoming: dict[str, dict[tuple[str, str, str], list[Edge]]] = {}
    for edge in lineage.edges:
        if edge.target.table_key == table.key and not edge.source.schema.startswith(RESOURCE_PREFIX):
            incoming.setdefault(edge.target.column, {}).setdefault(
                (edge.source.schema, edge.source.table, edge.source.column), []).append(edge)
    fields = {}
    for column in table.columns:
        if column not in incoming:
            continue
        fields[column] = {"inputFields": [
            {"namespace": namespace, "name": dataset_name(database, schema, name), "field": field,
             "transformations": [_transformation(edge) for edge in edges]}
            for (schema, name, field), edges in sorted(incoming[column].items())
        ]}
    return fields


def _transformation(edge: Edge) -> dict:
    transformation = {"type": edge.kind.upper(), "subtype": edge.subtype or "", "masking": edge.masking}
    if edge.transformation:
        transformation["description"] = edge.transformation
    return transformation


def _facet(name: str, **body) -> dict:
    return {"_producer": PRODUCER, "_schemaURL": _FACET_SCHEMAS[name], **body}


def _sorted(lineage: Lineage) -> list[TableInfo]:
    return [lineage.tables[key] for key in sorted(lineage.tables)]


def _run_uuid(run_id: str | None) -> str:
    if run_id is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(str(run_id)))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"headwater:{run_id}"))

"""What dlt loaded into ``raw_<source>``, read from the schemas and the state dlt stores in the destination.

dlt writes its whole schema (tables, columns, data types, hints) into ``raw_<source>._dlt_version``
with every change; the newest row per schema name describes the tables as they are. Reading it
needs no local pipeline state. Nested tables have a ``parent`` and no ``resource``: their resource
is the root table's. Tables named in the schema but never created (no data seen yet) are left out.

dlt also commits its pipeline state with every load that changed it, into
``raw_<source>._dlt_pipeline_state`` (compressed), in the same transaction as the rows: the
``last_value`` of a table's incremental is the newest cursor value the source delivered and the
destination holds. Reading it costs one small row, where ``max(<cursor>)`` over the raw table reads
the whole table unless the cursor is indexed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from headwater.quarantine.naming import is_quarantine_table

DLT_PREFIX = "_dlt"


@dataclass
class StoredTable:
    """One table of a dlt schema, as stored in the destination."""

    name: str
    resource: str  # the resource that produced it (the root table's, for nested tables)
    parent: str | None = None
    columns: dict[str, dict] = field(default_factory=dict)  # dlt column schemas, in table order
    description: str = ""
    # Nested tables: the field path below the root table, ``customers__addresses__tags`` -> [addresses, tags].
    path: list[str] = field(default_factory=list)

    @property
    def is_quarantine(self) -> bool:
        return is_quarantine_table(self.name)


def stored_schemas(connection, dataset: str) -> list[dict]:
    """The newest stored schema of each dlt schema name in ``dataset`` (none when dlt never loaded there)."""
    exists = connection.execute("select to_regclass(%s)", (f'"{dataset}"._dlt_version',)).fetchone()[0]
    if exists is None:
        return []
    rows = connection.execute(
        sql.SQL("select distinct on (schema_name) schema from {}._dlt_version "
                "order by schema_name, inserted_at desc").format(sql.Identifier(dataset))
    ).fetchall()
    return sorted(filter(None, (_decoded(row[0]) for row in rows)), key=lambda schema: schema.get("name", ""))


def _decoded(stored: str) -> dict | None:
    try:
        return json.loads(stored)
    except (TypeError, ValueError):  # a schema dlt stored compressed: left out, the tables still show in the database
        return None


def existing_tables(connection, dataset: str) -> set[str]:
    rows = connection.execute(
        "select table_name from information_schema.tables where table_schema = %s", (dataset,)
    ).fetchall()
    return {row[0] for row in rows}


def stored_tables(connection, dataset: str) -> list[StoredTable]:
    """Every data table dlt created in ``dataset`` (system ``_dlt*`` tables left out), roots before children."""
    existing = existing_tables(connection, dataset)
    found: dict[str, StoredTable] = {}
    for schema in stored_schemas(connection, dataset):
        tables = schema.get("tables") or {}
        for name, table in tables.items():
            if name.startswith(DLT_PREFIX) or name not in existing:
                continue
            found[name] = StoredTable(
                name=name,
                resource=_resource(tables, name),
                parent=table.get("parent"),
                columns={column: hints for column, hints in (table.get("columns") or {}).items()
                         if hints.get("data_type")},  # columns without a type were never created
                description=table.get("description") or "",
                path=_path(tables, name),
            )
    return sorted(found.values(), key=lambda table: (table.name.count("__"), table.name))


def _root(tables: dict, name: str) -> dict:
    table, seen = tables.get(name) or {}, {name}
    while table.get("parent") and table["parent"] in tables and table["parent"] not in seen:
        seen.add(table["parent"])
        table = tables[table["parent"]]
    return table


def _path(tables: dict, name: str) -> list[str]:
    path, seen = [], {name}
    while (parent := (tables.get(name) or {}).get("parent")) and parent not in seen:
        # dlt names a nested table <parent>__<field>; the field may itself hold "__" (a flattened struct)
        path.insert(0, name[len(parent) + 2:] if name.startswith(f"{parent}__") else name)
        seen.add(parent)
        name = parent
    return path


def _resource(tables: dict, name: str) -> str:
    root = _root(tables, name)
    return root.get("resource") or root.get("name") or name


def pipeline_name(source: str) -> str:
    """The dlt pipeline of a source (headwater.load.pipeline opens it), whose state the destination keeps."""
    return f"headwater_{source}"


def cursor_values(connection, dataset: str, pipeline_name: str) -> dict[tuple[str, str], Any]:
    """(resource, cursor column) -> ``last_value`` of every incremental in the pipeline's newest committed state.

    Empty when dlt never stored a state there (nothing loaded yet, or tables dlt did not write).
    """
    from dlt.common.versioned_state import decompress_state

    found = connection.execute(
        "select to_regclass(%s), to_regclass(%s)",
        (f'"{dataset}"._dlt_pipeline_state', f'"{dataset}"._dlt_loads'),
    ).fetchone()
    if None in found:
        return {}
    # The query dlt itself restores the state with: the newest state of a completed load (status 0).
    row = connection.execute(
        sql.SQL("select s.state from {}._dlt_pipeline_state s join {}._dlt_loads l on l.load_id = s._dlt_load_id "
                "where s.pipeline_name = %s and l.status = 0 order by l.load_id desc limit 1").format(
            sql.Identifier(dataset), sql.Identifier(dataset)),
        (pipeline_name,),
    ).fetchone()
    if row is None:
        return {}
    try:
        state = decompress_state(row[0])
    except Exception:  # a state this dlt cannot read: the caller falls back to the table itself
        return {}
    values = {}
    for source_state in (state.get("sources") or {}).values():
        for resource, resource_state in ((source_state or {}).get("resources") or {}).items():
            for cursor, incremental in ((resource_state or {}).get("incremental") or {}).items():
                if isinstance(incremental, dict) and incremental.get("last_value") is not None:
                    values[resource, cursor] = incremental["last_value"]
    return values

"""dbt's view of the project: models with their compiled SQL and descriptions, sources, column types.

One ``dbt docs generate`` (in-process, headwater.marts.transform.generate_docs) writes both artifacts:
``manifest.json`` (compiled SQL, dependencies, descriptions, materialization, tests) and
``catalog.json`` (the columns and types of every relation dbt knows, read from the database).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from headwater import __version__
from headwater.postgres.address import PostgresAddress

MANIFEST, CATALOG = "manifest.json", "catalog.json"
# Beside the artifacts: the digest of what the last generate read (docs_inputs).
INPUTS_FILE = "headwater_inputs.sha256"
# Folders of a dbt project that dbt writes or installs, not sources of its docs.
GENERATED_FOLDERS = frozenset({"target", "logs", "dbt_packages", "__pycache__"})
TRACED_TYPES = ("model", "snapshot", "seed")


class LineageError(Exception):
    """Lineage cannot be built at all (dbt could not produce its artifacts); str() says why."""


@dataclass
class DbtNode:
    """A model, snapshot or seed."""

    unique_id: str
    name: str
    resource_type: str
    database: str
    schema: str
    alias: str
    materialized: str | None
    description: str
    compiled_code: str | None
    depends_on: list[str]
    column_descriptions: dict[str, str] = field(default_factory=dict)
    tests: dict[str | None, list[str]] = field(default_factory=dict)  # column (None: the table) -> test names


@dataclass
class DbtSource:
    unique_id: str
    source_name: str
    name: str
    schema: str
    identifier: str
    description: str
    column_descriptions: dict[str, str] = field(default_factory=dict)
    tests: dict[str | None, list[str]] = field(default_factory=dict)


@dataclass
class DbtArtifacts:
    nodes: list[DbtNode]  # in dependency order: every node after the nodes it reads
    sources: list[DbtSource]
    columns: dict[tuple[str, str], dict[str, str]]  # (schema, relation) -> {column: type}, from the catalog


def load_artifacts(
    project_dir: Path, state_dir: Path, address: PostgresAddress, *, refresh: bool = True,
    progress: Callable[[str], None] | None = None,
) -> DbtArtifacts:
    """The artifacts of ``dbt docs generate``, generated again only when what it reads has changed.

    ``refresh`` False reuses whatever artifacts exist. Otherwise they are regenerated when the dbt
    project's files or the columns of the database's tables differ from the last generate (docs_inputs):
    a run that changed neither costs no dbt invocation, not even dbt's import.
    """
    from headwater.marts.transform import docs_target_dir

    target = docs_target_dir(state_dir)
    have = (target / MANIFEST).is_file() and (target / CATALOG).is_file()
    if have and not refresh:
        return read_artifacts(target)
    inputs = docs_inputs(project_dir, address)
    if not have or _read(target / INPUTS_FILE) != inputs:
        from headwater.marts.transform import generate_docs

        if progress:
            progress("lineage: running dbt docs generate (first time, or the dbt project or a table's columns "
                     "changed)")
        (target / INPUTS_FILE).unlink(missing_ok=True)
        result = generate_docs(project_dir=project_dir, state_dir=state_dir, address=address)
        if not result.success:
            raise LineageError(f"dbt docs generate failed: {result.error}")
        (target / INPUTS_FILE).write_text(inputs)
    return read_artifacts(target)


def docs_inputs(project_dir: Path, address: PostgresAddress) -> str:
    """A digest of what `dbt docs generate` reads: the dbt project's files and every table's columns."""
    digest = hashlib.sha256(f"headwater {__version__}\n".encode())
    for path in sorted(project_dir.rglob("*")):
        parts = path.relative_to(project_dir).parts
        if path.is_file() and not any(part in GENERATED_FOLDERS or part.startswith(".") for part in parts):
            digest.update(f"{'/'.join(parts)}\n".encode())
            digest.update(path.read_bytes())
    with address.connect(autocommit=True, connect_timeout=10) as connection:
        rows = connection.execute(
            "select table_schema, table_name, column_name, data_type, ordinal_position "
            "from information_schema.columns where table_schema not in ('pg_catalog', 'information_schema') "
            "and table_schema not like 'pg\\_%' order by 1, 2, 5"
        ).fetchall()
    for row in rows:
        digest.update(("\t".join(map(str, row)) + "\n").encode())
    return digest.hexdigest()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_artifacts(target: Path) -> DbtArtifacts:
    manifest = json.loads((target / MANIFEST).read_text())
    catalog = json.loads((target / CATALOG).read_text())
    tests = _tests(manifest)
    nodes = [
        DbtNode(
            unique_id=uid,
            name=node["name"],
            resource_type=node["resource_type"],
            database=node.get("database") or "",
            schema=node["schema"],
            alias=node.get("alias") or node["name"],
            materialized=(node.get("config") or {}).get("materialized"),
            description=node.get("description") or "",
            compiled_code=node.get("compiled_code"),
            depends_on=list((node.get("depends_on") or {}).get("nodes") or []),
            column_descriptions=_descriptions(node),
            tests=tests.get(uid, {}),
        )
        for uid, node in manifest.get("nodes", {}).items()
        if node.get("resource_type") in TRACED_TYPES
    ]
    sources = [
        DbtSource(
            unique_id=uid,
            source_name=source["source_name"],
            name=source["name"],
            schema=source["schema"],
            identifier=source.get("identifier") or source["name"],
            description=source.get("description") or "",
            column_descriptions=_descriptions(source),
            tests=tests.get(uid, {}),
        )
        for uid, source in manifest.get("sources", {}).items()
    ]
    columns = {}
    for entry in [*catalog.get("nodes", {}).values(), *catalog.get("sources", {}).values()]:
        metadata = entry.get("metadata") or {}
        ordered = sorted((entry.get("columns") or {}).values(), key=lambda column: column.get("index") or 0)
        columns[(metadata.get("schema"), metadata.get("name"))] = {column["name"]: column.get("type")
                                                                   for column in ordered}
    return DbtArtifacts(_in_dependency_order(nodes), sources, columns)


def _descriptions(node: dict) -> dict[str, str]:
    return {name: column.get("description") or "" for name, column in (node.get("columns") or {}).items()}


def _tests(manifest: dict) -> dict[str, dict[str | None, list[str]]]:
    """Generic data tests per attached node and column: {node id: {column or None: [not_null, unique, ...]}}."""
    found: dict[str, dict[str | None, list[str]]] = {}
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "test":
            continue
        name = (node.get("test_metadata") or {}).get("name") or node.get("name")
        attached = node.get("attached_node") or next(iter((node.get("depends_on") or {}).get("nodes") or []), None)
        if attached:
            tests = found.setdefault(attached, {}).setdefault(node.get("column_name"), [])
            if name not in tests:
                tests.append(name)
    return found


def _in_dependency_order(nodes: list[DbtNode]) -> list[DbtNode]:
    by_id = {node.unique_id: node for node in nodes}
    ordered: list[DbtNode] = []
    placed: set[str] = set()

    def place(node: DbtNode, visiting: frozenset = frozenset()) -> None:
        if node.unique_id in placed or node.unique_id in visiting:
            return
        for parent in node.depends_on:
            if parent in by_id:
                place(by_id[parent], visiting | {node.unique_id})
        placed.add(node.unique_id)
        ordered.append(node)

    for node in sorted(nodes, key=lambda item: item.unique_id):
        place(node)
    return ordered

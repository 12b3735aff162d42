"""A project with one filesystem source, `drops`, over a landing folder: the shape most file tests need."""

from __future__ import annotations

import json
from pathlib import Path

from headwater.load.pipeline import SourceLoad, load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ProjectConfig, load_project


def landing_project(root: Path, files: dict) -> tuple[Path, ProjectConfig]:
    """(landing folder, project) with `drops` reading ``files`` (table -> glob or {glob, ...}) from the folder."""
    landing = root / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    settings = json.dumps({"bucket_url": str(landing), "files": files})
    (root / "headwater.yaml").write_text(f"sources:\n  drops:\n    connector: filesystem\n    settings: {settings}\n")
    return landing, load_project(root / "headwater.yaml", connector_registry())


def load_drops(project: ProjectConfig, database_url: str) -> SourceLoad:
    result = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                         PostgresAddress.from_url(database_url))
    assert result.ok, result.error
    return result

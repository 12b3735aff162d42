"""A one-source Headwater project on disk, loaded the way `headwater` and the daily flow load it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import yaml

from headwater.common.runtime import CONFIG_FILE
from headwater.load.pipeline import SourceLoad, load_source
from headwater.plugins.connectors import Connector
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ConfigError, ProjectConfig, SourceConfig, load_project

SOURCE_NAME = "acceptance"
DATASET = f"raw_{SOURCE_NAME}"


def project_document(connector: str, settings: dict[str, Any], tables: dict[str, dict]) -> dict[str, Any]:
    """headwater.yaml content with one source; dbt and Soda are off because only loading is under test."""
    return {
        "project": SOURCE_NAME,
        "sources": {
            SOURCE_NAME: {
                "connector": connector,
                "settings": plain(settings),
                "tables": plain(tables),
            }
        },
        "transform": {"enabled": False},
        "quality": {"enabled": False},
    }


def plain(value: Any) -> Any:
    """Settings as YAML can hold them: paths become strings, tuples lists (hooks often return either)."""
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


@dataclass(frozen=True)
class AcceptanceProject:
    """A written and validated project: its config, the one source in it and that source's connector."""

    config: ProjectConfig
    source: SourceConfig
    connector: Connector

    @classmethod
    def write(
        cls, folder: Path, connector: str, settings: dict[str, Any], tables: dict[str, dict]
    ) -> "AcceptanceProject":
        """Write headwater.yaml into folder and validate it; ConfigError carries every problem found."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CONFIG_FILE
        document = project_document(connector, settings, tables)
        path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
        registry = connector_registry()
        config = load_project(path, registry)
        source = config.source(SOURCE_NAME)
        found = registry.get(source.connector)
        if found is None:  # load_project already reports an unknown connector; kept for type checkers
            raise ConfigError(path, [])
        return cls(config=config, source=source, connector=found)

    @property
    def path(self) -> Path:
        return self.config.path

    def load(self, address: PostgresAddress) -> SourceLoad:
        """One run of the source into `address`, exactly as the daily flow's load task runs it."""
        return load_source(self.config, self.source, self.connector, address)


def forget_active_pipeline() -> None:
    """Deactivate the pipeline dlt keeps as the process's current one after a run."""
    from dlt.common.configuration.container import Container
    from dlt.common.pipeline import PipelineContext

    context = Container()[PipelineContext]
    if context.is_active():
        context.deactivate()

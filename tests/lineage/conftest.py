"""The bundled shop loaded once per module: every source through dlt, then `dbt run` (marts built in place)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ProjectConfig, load_project
from tests.conftest import copy_shop_project, fresh_database


@dataclass
class LoadedShop:
    root: Path
    project: ProjectConfig
    address: PostgresAddress
    database_url: str


@pytest.fixture(scope="module")
def scratch_database_url():
    """A fresh database for the whole module, dropped afterwards."""
    with fresh_database("hw_test_lineage") as url:
        yield url


@pytest.fixture(scope="module")
def loaded_shop(tmp_path_factory, scratch_database_url):
    """A copy of the shop project whose sources are loaded and whose models are built, selected for the CLI."""
    from headwater.example.session import running_example
    from headwater.load.pipeline import load_source
    from headwater.marts.transform import run_dbt

    root = copy_shop_project(tmp_path_factory.mktemp("lineage") / "shop")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEADWATER_CONFIG", str(root / "headwater.yaml"))
        patch.setenv("HEADWATER_DATABASE_URL", scratch_database_url)
        patch.delenv("SHOP_API_TOKEN", raising=False)
        registry = connector_registry()
        project = load_project(root / "headwater.yaml", registry)
        address = PostgresAddress.from_url(scratch_database_url)
        with running_example(project):
            for source in project.sources:
                result = load_source(project, source, registry.get(source.connector), address)
                assert result.error is None, result.error
        built = run_dbt(["run"], project_dir=project.transform_dir, state_dir=project.state_dir, address=address)
        assert built.success, built.error
        yield LoadedShop(root, project, address, scratch_database_url)


@pytest.fixture(scope="module")
def shop_lineage(loaded_shop):
    from headwater.lineage.build import build_lineage

    return build_lineage(loaded_shop.project, loaded_shop.address)

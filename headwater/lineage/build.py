"""Build the column lineage of a project: connector resources -> raw tables -> dbt models, with checks and PII.

    from headwater.lineage.build import build_lineage
    lineage = build_lineage(project, address)          # runs `dbt docs generate` first
    lineage.upstream(ColumnRef.parse("marts.customers.lifetime_revenue"))

Each layer is read by its own module: raw_layer (dlt's stored schemas and headwater.yaml steps),
dbt_artifacts + dbt_layer (manifest, catalog, compiled SQL through sql_lineage), checks (Soda contracts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from headwater.lineage.checks import add_checks
from headwater.lineage.dbt_artifacts import LineageError, load_artifacts
from headwater.lineage.dbt_layer import add_dbt_layers
from headwater.lineage.model import Lineage
from headwater.lineage.raw_layer import add_raw_layers
from headwater.postgres.address import PostgresAddress
from headwater.project.config import ProjectConfig

__all__ = ["LineageError", "build_lineage"]

logger = logging.getLogger(__name__)


def build_lineage(project: ProjectConfig, address: PostgresAddress, *, refresh: bool = True,
                  progress: Callable[[str], None] | None = None) -> Lineage:
    """The lineage of every column, from connector resource fields to the published dbt models.

    ``refresh`` runs ``dbt docs generate`` when what it reads changed since the last one (needs the
    database); False reuses the artifacts of the last generate when they exist. ``progress`` is told
    when dbt runs. Raises LineageError when dbt cannot produce its artifacts.
    Whatever cannot be traced is listed in ``Lineage.unresolved``.
    """
    from headwater.plugins.manager import connector_registry

    started = time.perf_counter()
    lineage = Lineage()
    with address.connect(autocommit=True, connect_timeout=10) as connection:
        add_raw_layers(lineage, project, connection, connector_registry())
    if project.transform_dir is not None:
        artifacts = load_artifacts(project.transform_dir, project.state_dir, address, refresh=refresh,
                                   progress=progress)
        add_dbt_layers(lineage, artifacts)
    if project.quality_dir is not None:
        add_checks(lineage, project.quality_dir)
    logger.info("lineage: %d tables, %d edges, %d unresolved in %.2fs", len(lineage.tables), len(lineage.edges),
                len(lineage.unresolved), time.perf_counter() - started)
    return lineage

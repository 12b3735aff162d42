"""headwater.load.pipeline: a configured source becomes a dlt pipeline run with the table options applied."""

from __future__ import annotations

import textwrap

import dlt

from headwater.load.pipeline import load_source
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query


@dlt.resource(name="readings")
def readings(count: int):
    """Sensor readings, as a single resource rather than a source."""
    yield [{"sensor": index % 2, "reading_id": index, "value": index * 1.5} for index in range(count)]


def test_a_connector_that_is_a_single_resource_loads_with_table_options(tmp_path, database_url):
    registry = ConnectorRegistry()
    registry.registrar(Plugin("sensors", "headwater-sensors", "1.0"))("sensors", readings)
    path = tmp_path / "headwater.yaml"
    path.write_text(textwrap.dedent("""\
        sources:
          plant:
            connector: sensors
            settings: {count: 5}
            tables:
              readings: {primary_key: reading_id}
        """))
    project = load_project(path, registry)
    address = PostgresAddress.from_url(database_url)
    for _ in range(2):  # merged on the key: the second run replaces, never duplicates
        result = load_source(project, project.source("plant"), registry.get("sensors"), address)
        assert result.ok, result.error
        assert [(table.table, table.rows) for table in result.tables] == [("readings", 5)]
    assert query(database_url, "select count(*), count(distinct reading_id), sum(value) from raw_plant.readings") == [
        (5, 5, 15.0)
    ]

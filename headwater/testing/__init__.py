"""The connector acceptance kit: standard pytest tests for any Headwater connector plugin.

    from headwater.testing import ConnectorAcceptanceTests

    class TestMyConnector(ConnectorAcceptanceTests):
        connector = "my_connector"
        package = "headwater-my-connector"
        tables = {"items": {"primary_key": "id"}}
        ...  # make_source, add_rows, make_empty_source, expected_rows

See docs/acceptance-kit.md.

Imports: common, project, plugins, load, local, postgres.
"""

from headwater.common.runtime import quiet_telemetry

# Before dlt is imported by the modules below: tests must not phone home either.
quiet_telemetry()

from headwater.testing.suite import AcceptanceFailure, ConnectorAcceptanceTests  # noqa: E402

__all__ = ["AcceptanceFailure", "ConnectorAcceptanceTests"]

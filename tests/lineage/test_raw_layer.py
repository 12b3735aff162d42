"""Resource fields -> raw columns, read from a real dlt load: steps, nested tables, quarantine, PII declarations."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from headwater.lineage.build import build_lineage
from headwater.lineage.model import DIRECT, INDIRECT, ColumnRef, Lineage
from headwater.lineage.raw_layer import add_raw_layers
from headwater.load.pipeline import load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.processing.column_trace import expression_columns, trace_steps
from headwater.project.config import load_project
from tests.connectors.rest_api_server import ApiServer, Reply

ROWS = [
    {"id": 1, "cust_name": "Ada", "email": "ada@example.com", "phone": "+44 20 7946 0958", "ssn": "123-45-6789",
     "birthday": "1815-12-10", "quantity": 2, "price": 2.5, "address": {"city": "London", "zip": "N1"},
     "addresses": [{"city": "London", "tags": ["home", "billing"]}, {"city": "Paris", "tags": []}]},
    # No email: rejected by the rule, so it goes to customers__quarantine as it arrived.
    {"id": 2, "cust_name": "Bo", "email": None, "phone": "+46 8 123 456", "ssn": "987-65-4321",
     "birthday": "1990-01-01", "quantity": 1, "price": 10.0, "address": {"city": "Oslo", "zip": "0150"},
     "addresses": []},
]
TABLE = {
    "primary_key": "id",
    "pii": ["name"],  # the name after the rename: lineage finds the field behind it
    "steps": [
        {"rename": {"cust_name": "name"}},
        {"derive": {"total": "quantity * price"}},
        {"lookup": {"file": "segments.csv", "on": "id", "columns": ["segment"]}},
        {"pii": {"email": {"hash": {"salt": "${PII_SALT}"}}, "phone": "mask", "ssn": "drop"}},
    ],
    "rules": [{"required": ["email"]}],
}


def ref(text: str) -> ColumnRef:
    return ColumnRef.parse(text)


@pytest.fixture
def crm(tmp_path, database_url):
    """A rest_api source `crm` loaded once into a fresh database; its project has no dbt or contracts."""
    (tmp_path / ".headwater").mkdir()
    (tmp_path / ".headwater" / "secrets.env").write_text("PII_SALT=pepper\n")
    (tmp_path / "segments.csv").write_text("id,segment\n1,gold\n2,silver\n")
    with ApiServer() as api:
        api.get("/customers")(lambda request: Reply(body={"data": ROWS}))
        resource = {"name": "customers", "endpoint": {"path": "customers", "data_selector": "data",
                                                       "paginator": "single_page"},
                    "columns": {"birthday": {"data_type": "text", "x-pii": True}}}
        config = {"sources": {"crm": {"connector": "rest_api",
                                      "settings": {"client": {"base_url": api.url}, "resources": [resource]},
                                      "tables": {"customers": TABLE}}}}
        (tmp_path / "headwater.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        project = load_project(tmp_path / "headwater.yaml", connector_registry())
        address = PostgresAddress.from_url(database_url)
        result = load_source(project, project.source("crm"), connector_registry().get("rest_api"), address)
        assert result.error is None, result.error
    return project, address


def test_steps_nested_tables_and_quarantine(crm):
    project, address = crm
    lineage = build_lineage(project, address)
    assert not lineage.unresolved

    def inputs(column: str) -> dict[str, tuple]:
        return {str(e.source): (e.kind, e.transformation, e.masking) for e in lineage.inputs(ref(column))}

    raw = lineage.tables["raw_crm.customers"]
    assert (raw.layer, raw.source, raw.resource, raw.row_count) == ("raw", "crm", "customers", 1)
    assert inputs("raw_crm.customers.id") == {"source:crm.customers.id": (DIRECT, "", False)}
    assert inputs("raw_crm.customers.name") == {"source:crm.customers.cust_name": (DIRECT, "", False)}
    assert inputs("raw_crm.customers.email") == {
        "source:crm.customers.email": (DIRECT, "pii hash (HMAC-SHA256)", True)}
    assert inputs("raw_crm.customers.phone") == {"source:crm.customers.phone": (DIRECT, "pii mask", True)}
    assert inputs("raw_crm.customers.total") == {
        "source:crm.customers.quantity": (DIRECT, "derive total = quantity * price", False),
        "source:crm.customers.price": (DIRECT, "derive total = quantity * price", False)}
    # A looked-up column: the key picks the reference row, so the key field is an indirect input.
    assert inputs("raw_crm.customers.segment") == {
        "source:crm.customers.id": (INDIRECT, "lookup segments.csv on id", False)}
    assert inputs("raw_crm.customers.address__city") == {"source:crm.customers.address__city": (DIRECT, "", False)}
    assert inputs("raw_crm.customers._dlt_id") == {}
    assert "ssn" not in raw.columns
    assert {name for name, info in raw.columns.items() if info.masked} == {"email", "phone"}

    # Nested lists become child tables; their fields are named by path under the root resource.
    addresses = lineage.tables["raw_crm.customers__addresses"]
    assert (addresses.parent, addresses.resource, addresses.row_count) == ("customers", "customers", 2)
    assert inputs("raw_crm.customers__addresses.city") == {"source:crm.customers.addresses__city": (DIRECT, "", False)}
    assert inputs("raw_crm.customers__addresses__tags.value") == {
        "source:crm.customers.addresses__tags__value": (DIRECT, "", False)}
    assert inputs("raw_crm.customers__addresses._dlt_parent_id") == {}

    fields = lineage.tables["source:crm.customers"].columns
    assert set(fields) == {"id", "cust_name", "email", "phone", "ssn", "birthday", "quantity", "price",
                           "address__city", "address__zip", "addresses__city", "addresses__tags__value"}
    assert fields["ssn"].masked and "drop" in fields["ssn"].description  # it never lands
    assert lineage.outputs(ref("source:crm.customers.ssn"), (DIRECT,))[0].target == ref(
        "raw_crm.customers__quarantine.record")

    # PII: headwater.yaml names the renamed column; dlt's x-pii hint marks birthday.
    assert {name for name, info in fields.items() if info.pii} == {"cust_name", "birthday"}
    assert {name for name, info in raw.columns.items() if info.pii} == {"name", "birthday"}

    # The quarantined row keeps every field as it arrived, before any step; its personal fields treated.
    quarantine = lineage.tables["raw_crm.customers__quarantine"]
    assert (quarantine.quarantine_of, quarantine.resource, quarantine.row_count) == ("customers", "customers", 1)
    record_inputs = lineage.inputs(ref("raw_crm.customers__quarantine.record"))
    assert {e.source.column for e in record_inputs} == set(fields)
    assert {e.source.column for e in record_inputs if e.masking} == {"cust_name", "email", "phone", "ssn",
                                                                     "birthday"}
    assert quarantine.columns["record"].pii and quarantine.columns["record"].masked
    assert lineage.inputs(ref("raw_crm.customers__quarantine.status")) == []


def test_connector_metadata_declares_pii(crm):
    project, address = crm
    registry = SimpleNamespace(get=lambda name: SimpleNamespace(pii={"customers": ["phone", "address__zip"]}))
    lineage = Lineage()
    with address.connect(autocommit=True) as connection:
        add_raw_layers(lineage, project, connection, registry)
    declared = {str(info.ref) for table in lineage.tables.values() for info in table.columns.values() if info.pii}
    assert {"source:crm.customers.phone", "raw_crm.customers.phone", "source:crm.customers.address__zip",
            "raw_crm.customers.address__zip"} <= declared
    phone = lineage.column(ref("raw_crm.customers.phone"))
    assert phone.pii and phone.masked  # declared PII that arrives masked


def test_step_tracing_without_a_database(tmp_path):
    (tmp_path / "countries.csv").write_text("code,country_name,region\nGB,United Kingdom,Europe\n")
    trace = trace_steps([
        {"rename": {"nm": "name", "cc": "country_code"}},
        {"cast": {"qty": "int"}},
        {"trim": "all"},
        {"normalise": {"name": ["collapse_spaces", "title"]}},
        {"derive": {"total": "qty * unit_price", "label": "name || ' (' || country_code || ')'"}},
        {"derive": {"big": "CASE WHEN total > 100 THEN 'yes' ELSE 'no' END"}},
        {"lookup": {"file": "countries.csv", "on": {"country_code": "code"}}},
        {"only_big": {"min": 10}},
    ], tmp_path)
    assert trace.origin("name").fields == {"nm"} and trace.origin("name").transformation == "collapse_spaces; title"
    assert trace.origin("nm") is None
    assert trace.origin("qty").transformation == "cast int"
    assert trace.origin("total").fields == {"qty", "unit_price"}
    assert trace.origin("label").fields == {"nm", "cc"}
    assert trace.origin("big").fields == {"qty", "unit_price"} and trace.origin("big").derived
    for added in ("country_name", "region"):
        assert (trace.origin(added).fields, trace.origin(added).keys) == (set(), {"cc"})
    assert trace.every_text_column == ["trim"]
    assert trace.problems == ["steps.7.only_big is a plugin step: the columns it adds or changes are traced as if "
                              "it left them unchanged"]
    assert trace.origin("untouched").fields == {"untouched"}
    assert expression_columns("coalesce(a, 0) + \"B c\" * 2") == ["a", "B c"]

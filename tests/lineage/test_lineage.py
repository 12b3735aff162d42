"""Column lineage of the bundled shop, loaded for real: dlt schemas, dbt artifacts, sqlglot, Soda contracts, CLI."""

from __future__ import annotations

import json
import re

import pytest

from headwater.cli import main
from headwater.lineage.build import build_lineage
from headwater.lineage.model import DIRECT, INDIRECT, ColumnRef
from tests.conftest import copy_shop_project, query

REVENUE = ColumnRef.parse("marts.customers.lifetime_revenue")
RAW_EMAIL = ColumnRef.parse("raw_shop_db.customers.email")


def ref(text: str) -> ColumnRef:
    return ColumnRef.parse(text)


def test_lifetime_revenue_comes_from_the_api_amount_and_is_picked_by_file_fields(shop_lineage):
    direct_only = {edge.source for edge in shop_lineage.upstream(REVENUE, (DIRECT,))}
    everything = {edge.source for edge in shop_lineage.upstream(REVENUE)}

    # The value: payments.amount from the API, through staging and raw.
    assert direct_only == {ref("staging.stg_shop_api__payments.amount"), ref("raw_shop_api.payments.amount"),
                           ref("source:shop_api.payments.amount")}
    [into_mart] = shop_lineage.inputs(REVENUE, (DIRECT,))
    assert into_mart.subtype == "AGGREGATION" and "sum(amount)" in into_mart.transformation
    assert not into_mart.masking

    # Which rows it sums: the orders from the landing files (join and group keys) and the payment status filter.
    indirect = {(edge.source, edge.subtype) for edge in shop_lineage.inputs(REVENUE, (INDIRECT,))}
    assert {(ref("staging.stg_shop_files__orders.order_id"), "JOIN"),
            (ref("staging.stg_shop_files__orders.customer_id"), "GROUP_BY"),
            (ref("staging.stg_shop_files__orders.customer_id"), "JOIN"),
            (ref("staging.stg_shop_api__payments.order_id"), "JOIN"),
            (ref("staging.stg_shop_api__payments.status"), "FILTER"),
            (ref("staging.stg_shop_db__customers.customer_id"), "JOIN")} == indirect
    for field in ("order_id", "customer_id"):
        resource_field = ref(f"source:shop_files.orders.{field}")
        assert resource_field in everything and resource_field not in direct_only
        # ... via the raw column and the staging column, each hop a plain copy.
        raw, staging = ref(f"raw_shop_files.orders.{field}"), ref(f"staging.stg_shop_files__orders.{field}")
        assert [(e.source, e.kind) for e in shop_lineage.inputs(raw)] == [(resource_field, DIRECT)]
        assert [(e.source, e.kind) for e in shop_lineage.inputs(staging)] == [(raw, DIRECT)]
    assert {shop_lineage.tables[key].layer for key in ("source:shop_api.payments", "raw_shop_api.payments",
                                                       "staging.stg_shop_api__payments", "marts.customers")} == {
        "resource", "raw", "staging", "marts"}
    assert not shop_lineage.unresolved


def test_email_downstream_is_every_model_that_selects_it(shop_lineage):
    # Expected from the models themselves: each model whose compiled SQL mentions email and outputs an email column.
    models = [table for table in shop_lineage.tables.values() if table.sql is not None]
    expected = {ref(f"{table.key}.email") for table in models
                if re.search(r"\bemail\b", table.sql) and "email" in table.columns}
    assert expected == {ref("staging.stg_shop_db__customers.email"), ref("marts.customers.email")}

    downstream = shop_lineage.downstream(RAW_EMAIL)
    assert {edge.target for edge in downstream} == expected
    assert all(edge.kind == DIRECT and not edge.masking for edge in downstream)
    lowered = next(e for e in downstream if e.target == ref("staging.stg_shop_db__customers.email"))
    assert (lowered.subtype, lowered.transformation) == ("TRANSFORMATION", "lower(email)")


def test_raw_and_resource_layers_come_from_dlt_schemas_and_headwater_yaml(shop_lineage, loaded_shop):
    for key, table in shop_lineage.tables.items():
        if table.layer == "raw":
            assert table.row_count == query(loaded_shop.database_url, f"select count(*) from {key}")[0][0] > 0
    customers = shop_lineage.tables["raw_shop_db.customers"]
    assert (customers.source, customers.resource, customers.materialized) == ("shop_db", "customers", "table")
    assert customers.columns["customer_id"].data_type == "bigint"
    # dbt source descriptions land on the raw columns, Soda checks on raw and mart columns.
    assert customers.columns["email"].description.startswith("The customer's email address")
    assert customers.columns["email"].checks == ["missing"] and "row_count" in customers.checks
    mart = shop_lineage.tables["marts.customers"]
    assert {"missing", "invalid"} <= set(mart.columns["lifetime_revenue"].checks)
    assert "dbt:not_null" in mart.columns["lifetime_revenue"].checks
    assert mart.columns["lifetime_revenue"].data_type == "numeric(12,2)" and mart.materialized == "table"
    assert mart.description.startswith("One row per customer")

    # headwater.yaml: pii [name, email] on resource field and raw column; trim/normalise on the load edge.
    fields = shop_lineage.tables["source:shop_db.customers"].columns
    assert {name for name, info in fields.items() if info.pii} == {"name", "email"}
    assert {name for name, info in customers.columns.items() if info.pii} == {"name", "email"}
    [load_edge] = shop_lineage.inputs(RAW_EMAIL)
    assert (load_edge.source, load_edge.transformation, load_edge.masking) == (
        ref("source:shop_db.customers.email"), "trim; lower", False)
    # dlt's columns and the file connector's own have no resource field.
    for column in ("raw_shop_db.customers._dlt_load_id", "raw_shop_files.orders._file_name",
                   "raw_shop_files.orders._line"):
        assert shop_lineage.inputs(ref(column)) == []
    assert set(shop_lineage.tables["source:shop_files.orders"].columns) == {
        "order_id", "customer_id", "product_id", "quantity", "unit_price", "status", "ordered_at", "updated_at"}


MODELS = {
    "star_of_unknown.sql": "select * from public.not_loaded_anywhere",
    "broken.sql": "select customer_id,, from from {{ ref('stg_shop_db__customers') }} where ((",
    "missing_column.sql": "select customer_id, no_such_column from {{ ref('stg_shop_db__customers') }}",
    "masked_contacts.sql": """
        select
            customer_id,
            md5(email) as email_hash,
            concat(md5(email), customer_name) as mixed,
            left(customer_name, 1) as initial,
            case when email like '%@example.com' then 'internal' else 'external' end as email_kind
        from {{ ref('stg_shop_db__customers') }}
    """,
}


@pytest.fixture(scope="module")
def extended_lineage(loaded_shop, tmp_path_factory):
    """The same database, read by a copy of the project with four more (unbuilt) models."""
    root = copy_shop_project(tmp_path_factory.mktemp("extended") / "shop")
    for name, sql in MODELS.items():
        (root / "transform" / "models" / "marts" / name).write_text(sql)
    from headwater.plugins.manager import connector_registry
    from headwater.project.config import load_project

    project = load_project(root / "headwater.yaml", connector_registry())
    return build_lineage(project, loaded_shop.address)


def test_what_cannot_be_traced_is_reported_by_name(extended_lineage):
    by_table = {}
    for item in extended_lineage.unresolved:
        by_table.setdefault(item.table, []).append(item)
    assert set(by_table) == {"marts.star_of_unknown", "marts.broken", "marts.missing_column"}
    [star] = by_table["marts.star_of_unknown"]
    assert star.column is None and "select * from public.not_loaded_anywhere could not be expanded" in star.reason
    [broken] = by_table["marts.broken"]
    assert broken.column is None and "could not read the compiled SQL" in broken.reason
    [missing] = by_table["marts.missing_column"]
    assert missing.column == "no_such_column"
    assert "staging.stg_shop_db__customers has no column no_such_column" in missing.reason
    # What can be traced still is.
    assert [e.source for e in extended_lineage.inputs(ref("marts.missing_column.customer_id"))] == [
        ref("staging.stg_shop_db__customers.customer_id")]


def test_hashing_and_masking_functions_mark_the_edge(extended_lineage):
    def edges(column: str) -> dict[str, tuple]:
        return {e.source.column: (e.kind, e.masking, e.subtype)
                for e in extended_lineage.inputs(ref(f"marts.masked_contacts.{column}"))}

    assert edges("email_hash") == {"email": (DIRECT, True, "TRANSFORMATION")}
    assert edges("mixed") == {"email": (DIRECT, True, "TRANSFORMATION"),
                              "customer_name": (DIRECT, False, "TRANSFORMATION")}
    assert edges("initial") == {"customer_name": (DIRECT, True, "TRANSFORMATION")}
    assert edges("email_kind") == {"email": (INDIRECT, False, "CONDITIONAL")}  # picks a label, is not the value
    assert edges("customer_id") == {"customer_id": (DIRECT, False, "IDENTITY")}
    # The new model is now downstream of the raw email too.
    targets = {e.target for e in extended_lineage.downstream(RAW_EMAIL)}
    assert {ref("marts.masked_contacts.email_hash"), ref("marts.masked_contacts.mixed"),
            ref("marts.masked_contacts.email_kind")} <= targets


def test_cli_prints_the_upstream_tree(loaded_shop, shop_lineage, capsys):
    assert main(["lineage", str(REVENUE), "--no-refresh"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("marts.customers.lifetime_revenue  marts · numeric(12,2) · checks:")
    assert "direct (aggregation): CAST(coalesce(sum(amount), 0) AS DECIMAL(12, 2))" in out
    assert "source:shop_api.payments.amount  resource · double" in out
    assert "indirect staging.stg_shop_files__orders.order_id" in out
    assert "indirect (join): JOIN ON paid_payments.order_id = orders.order_id" in out
    assert "source:shop_files.orders.customer_id  resource · bigint" in out
    assert "warning" not in out

    assert main(["lineage", str(REVENUE), "--no-refresh", "--direct-only"]) == 0
    direct = capsys.readouterr().out
    assert "source:shop_api.payments.amount" in direct and "indirect" not in direct and "shop_files" not in direct

    assert main(["lineage", "raw_shop_db.customers.email", "--no-refresh", "--downstream"]) == 0
    downstream = capsys.readouterr().out
    assert "PII" in downstream.splitlines()[0]
    assert "staging.stg_shop_db__customers.email" in downstream and "marts.customers.email" in downstream


def test_cli_unknown_column_names_close_matches(loaded_shop, capsys):
    assert main(["lineage", "marts.customers.lifetime_revenu", "--no-refresh"]) == 2
    err = capsys.readouterr().err
    assert "marts.customers has no column lifetime_revenu; did you mean: marts.customers.lifetime_revenue" in err
    assert main(["lineage", "mart.customer.email", "--no-refresh"]) == 2
    err = capsys.readouterr().err
    assert "no column mart.customer.email in the lineage" in err and "marts.customers.email" in err
    assert main(["lineage", "marts.customers", "--no-refresh"]) == 2
    assert "expected SCHEMA.TABLE.COLUMN" in capsys.readouterr().err
    assert main(["lineage", "--no-refresh"]) == 2


def test_cli_json_is_the_tree(loaded_shop, capsys):
    assert main(["lineage", str(REVENUE), "--no-refresh", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert (document["column"], document["direction"], document["unresolved"]) == (str(REVENUE), "upstream", [])
    tree = document["tree"]
    assert (tree["layer"], tree["type"]) == ("marts", "numeric(12,2)")
    children = {child["column"]: child for child in tree["inputs"]}
    amount = children["staging.stg_shop_api__payments.amount"]
    assert [(e["kind"], e["subtype"]) for e in amount["edges"]] == [("direct", "AGGREGATION")]
    order_id = children["staging.stg_shop_files__orders.order_id"]
    assert [(e["kind"], e["subtype"]) for e in order_id["edges"]] == [("indirect", "JOIN")]
    raw = order_id["inputs"][0]
    assert raw["column"] == "raw_shop_files.orders.order_id" and raw["layer"] == "raw"
    assert raw["inputs"][0]["column"] == "source:shop_files.orders.order_id"

    assert main(["lineage", "source:shop_db.customers.email", "--no-refresh", "--json", "--downstream"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["tree"]["pii"] is True
    assert [child["column"] for child in document["tree"]["outputs"]] == ["raw_shop_db.customers.email"]


def test_openlineage_export(loaded_shop, tmp_path, capsys):
    target = tmp_path / "events.jsonl"
    assert main(["lineage", "--openlineage", str(target), "--no-refresh"]) == 0
    lines = target.read_text().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    address = loaded_shop.address
    namespace, database = f"postgres://{address.host}:{address.port}", address.database
    assert event["eventType"] == "COMPLETE" and event["schemaURL"].endswith("OpenLineage.json#/$defs/RunEvent")
    assert event["job"] == {"namespace": "headwater", "name": "shop.daily", "facets": event["job"]["facets"]}
    assert event["run"]["runId"] and event["producer"]
    inputs = {dataset["name"] for dataset in event["inputs"]}
    assert {f"{database}.raw_shop_db.customers", f"{database}.raw_shop_api.payments",
            f"{database}.raw_shop_files.orders"} <= inputs
    outputs = {dataset["name"]: dataset for dataset in event["outputs"]}
    assert set(outputs) == {f"{database}.{schema}.{name}" for schema, name in (
        ("staging", "stg_shop_api__payments"), ("staging", "stg_shop_db__customers"),
        ("staging", "stg_shop_db__products"), ("staging", "stg_shop_files__orders"),
        ("marts", "customers"), ("marts", "orders"))}
    customers = outputs[f"{database}.marts.customers"]
    assert all(dataset["namespace"] == namespace for dataset in event["inputs"] + event["outputs"])
    fields = {field["name"]: field["type"] for field in customers["facets"]["schema"]["fields"]}
    assert fields["lifetime_revenue"] == "numeric(12,2)"
    facet = customers["facets"]["columnLineage"]
    assert facet["_schemaURL"].endswith("ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet")
    inputs = {(item["name"], item["field"]): item["transformations"]
              for item in facet["fields"]["lifetime_revenue"]["inputFields"]}
    assert inputs[(f"{database}.staging.stg_shop_api__payments", "amount")] == [{
        "type": "DIRECT", "subtype": "AGGREGATION", "masking": False,
        "description": "CAST(coalesce(sum(amount), 0) AS DECIMAL(12, 2))"}]
    assert [t["type"] for t in inputs[(f"{database}.staging.stg_shop_files__orders", "order_id")]] == ["INDIRECT"]
    assert {t["subtype"] for t in inputs[(f"{database}.staging.stg_shop_files__orders", "customer_id")]} == {
        "GROUP_BY", "JOIN"}

    assert main(["lineage", "--openlineage", "-", "--no-refresh"]) == 0
    assert json.loads(capsys.readouterr().out)["job"]["name"] == "shop.daily"


def test_openlineage_event_keeps_the_run_id_of_the_flow(loaded_shop, shop_lineage):
    from headwater.lineage.openlineage import openlineage_event

    run_id = "0b9e8a5e-4f0c-4c1e-9d8e-1f2a3b4c5d6e"
    event = openlineage_event(shop_lineage, loaded_shop.project, loaded_shop.address, run_id=run_id)
    assert event["run"]["runId"] == run_id
    named = openlineage_event(shop_lineage, loaded_shop.project, loaded_shop.address, run_id="daily-42")
    again = openlineage_event(shop_lineage, loaded_shop.project, loaded_shop.address, run_id="daily-42")
    assert named["run"]["runId"] == again["run"]["runId"] != run_id  # a stable UUID made from the name

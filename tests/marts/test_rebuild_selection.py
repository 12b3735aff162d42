"""The pure selection logic: changed tables → dbt selectors, failed raw contracts → held-back sources."""

from __future__ import annotations

from headwater.load.pipeline import SourceLoad, TableLoad
from headwater.marts.publish import audit_schemas, built_candidates
from headwater.marts.quality import CheckResult, ContractResult
from headwater.marts.rebuild import changed_relations, dbt_sources_by_relation, plan_rebuild
from headwater.marts.transform import DbtNodeResult, DbtRunResult

MANIFEST = {
    "sources": {
        f"source.shop.{source}.{table}": {
            "source_name": source, "name": table, "schema": f"raw_{source}", "identifier": table,
        }
        for source, table in [("shop_files", "orders"), ("shop_db", "customers"), ("shop_db", "products"),
                              ("shop_api", "payments")]
    }
}
SOURCES = dbt_sources_by_relation(MANIFEST)


def failed(schema: str, table: str) -> ContractResult:
    check = CheckResult(name="row_count", column=None, outcome="failed", measured=0, threshold="> 0")
    return ContractResult(schema=schema, table=table, passed=False, checks=[check])


def test_only_tables_that_received_rows_count_as_changed():
    loads = [
        SourceLoad(source="shop_db", dataset="raw_shop_db", seconds=0.1,
                   tables=[TableLoad("customers", rows=0, quarantined=2), TableLoad("products", rows=3)]),
        SourceLoad(source="shop_api", dataset="raw_shop_api", seconds=0.1, tables=[TableLoad("payments", rows=0)]),
    ]
    assert changed_relations(loads) == [("raw_shop_db", "products")]


def test_changed_tables_select_their_downstream_models():
    plan = plan_rebuild([("raw_shop_db", "products"), ("raw_shop_files", "orders")], [], SOURCES)
    assert plan.run
    assert plan.select == ["source:shop_db.products+", "source:shop_files.orders+"]
    assert plan.exclude == [] and plan.held_back == []


def test_no_change_means_no_dbt_run_unless_a_full_build_is_asked_for():
    assert not plan_rebuild([], [], SOURCES).run
    full = plan_rebuild([], [], SOURCES, full_build=True)
    assert full.run and full.select is None


def test_a_failed_raw_contract_holds_back_every_table_of_its_source():
    changed = [("raw_shop_db", "customers"), ("raw_shop_db", "products"), ("raw_shop_files", "orders")]
    plan = plan_rebuild(changed, [failed("raw_shop_db", "customers")], SOURCES)
    assert plan.held_back_sources == ["shop_db"]
    assert plan.held_back[0].reason == "contract raw_shop_db.customers failed: row_count=0"
    assert plan.select == ["source:shop_files.orders+"]
    # Models that read the held-back source and a healthy one are excluded too.
    assert plan.exclude == ["source:shop_db.customers+", "source:shop_db.products+"]


def test_nothing_runs_when_every_changed_source_is_held_back():
    plan = plan_rebuild([("raw_shop_api", "payments")], [failed("raw_shop_api", "payments")], SOURCES)
    assert not plan.run and plan.held_back_sources == ["shop_api"]


def test_a_warn_severity_miss_does_not_block():
    warned = CheckResult(name="row_count", column=None, outcome="warned", measured=1, threshold="> 5 (warn)",
                         severity="warn")
    failing = CheckResult(name="missing", column="id", outcome="failed", measured=2, threshold="= 0")
    assert not warned.blocking and failing.blocking


def test_only_models_built_by_this_run_are_publish_candidates():
    dbt = DbtRunResult(success=True, nodes=[
        DbtNodeResult("model.shop.orders", "orders", "model", "success", 0.1, 10, None),
        DbtNodeResult("model.shop.stg", "stg_shop_db__products", "model", "success", 0.1, None, None),
    ])
    # customers is still in the audit schema from an earlier, unpublished run: it is not published now.
    in_audit = {("marts__audit", "orders"), ("marts__audit", "customers")}
    assert built_candidates(dbt, in_audit, audit_schemas()) == [("marts", "orders")]

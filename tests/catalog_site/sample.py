"""A hand-built lineage graph shaped like the bundled shop, for renderer tests without a database."""

from __future__ import annotations

from headwater.lineage.model import INDIRECT, ColumnInfo, ColumnRef, Edge, Lineage, TableInfo, Unresolved

TABLES = {
    # key: (layer, columns, extra TableInfo fields)
    "source:shop_db.customers": ("resource", ["customer_id", "name", "email", "country"], {"source": "shop_db"}),
    "source:shop_files.orders": ("resource", ["order_id", "customer_id", "amount"], {"source": "shop_files"}),
    "raw_shop_db.customers": ("raw", ["customer_id", "name", "email", "country", "_dlt_load_id"],
                              {"source": "shop_db", "resource": "customers", "materialized": "table"}),
    "raw_shop_files.orders": ("raw", ["order_id", "customer_id", "amount"],
                              {"source": "shop_files", "resource": "orders", "materialized": "table"}),
    "staging.stg_shop_db__customers": ("staging", ["customer_id", "customer_name", "email", "email_hash"],
                                       {"materialized": "view"}),
    "staging.stg_shop_files__orders": ("staging", ["order_id", "customer_id", "amount"], {"materialized": "view"}),
    "marts.customers": ("marts", ["customer_id", "name", "email", "email_hash", "lifetime_revenue", "orders_count"],
                        {"materialized": "table", "description": "One row per customer <with> activity & revenue."}),
    "marts.unrelated": ("marts", ["x"], {"materialized": "table"}),
}

EDGES = [
    ("source:shop_db.customers.customer_id", "raw_shop_db.customers.customer_id"),
    ("source:shop_db.customers.name", "raw_shop_db.customers.name"),
    ("source:shop_db.customers.email", "raw_shop_db.customers.email"),
    ("source:shop_db.customers.country", "raw_shop_db.customers.country"),
    ("source:shop_files.orders.order_id", "raw_shop_files.orders.order_id"),
    ("source:shop_files.orders.customer_id", "raw_shop_files.orders.customer_id"),
    ("source:shop_files.orders.amount", "raw_shop_files.orders.amount"),
    ("raw_shop_db.customers.customer_id", "staging.stg_shop_db__customers.customer_id"),
    ("raw_shop_db.customers.name", "staging.stg_shop_db__customers.customer_name"),
    ("raw_shop_db.customers.email", "staging.stg_shop_db__customers.email"),
    ("raw_shop_files.orders.order_id", "staging.stg_shop_files__orders.order_id"),
    ("raw_shop_files.orders.customer_id", "staging.stg_shop_files__orders.customer_id"),
    ("raw_shop_files.orders.amount", "staging.stg_shop_files__orders.amount"),
    ("staging.stg_shop_db__customers.customer_id", "marts.customers.customer_id"),
    ("staging.stg_shop_db__customers.customer_name", "marts.customers.name"),
    ("staging.stg_shop_db__customers.email", "marts.customers.email"),
    ("staging.stg_shop_db__customers.email_hash", "marts.customers.email_hash"),
    ("staging.stg_shop_files__orders.amount", "marts.customers.lifetime_revenue"),
]
MASKING = [("raw_shop_db.customers.email", "staging.stg_shop_db__customers.email_hash")]
INDIRECT_EDGES = [("staging.stg_shop_files__orders.customer_id", "marts.customers.lifetime_revenue"),
                  ("staging.stg_shop_files__orders.customer_id", "marts.customers.orders_count")]
DECLARED_PII = {"raw_shop_db.customers.name", "raw_shop_db.customers.email"}


def shop_lineage() -> Lineage:
    lineage = Lineage()
    for key, (layer, columns, extra) in TABLES.items():
        schema, _, name = key.rpartition(".")
        table = lineage.add_table(TableInfo(schema, name, layer, **extra))
        for column in columns:
            ref = ColumnRef(schema, name, column)
            table.columns[column] = ColumnInfo(ref, "text", description=f"the {column}", pii=str(ref) in DECLARED_PII)
    lineage.tables["marts.customers"].columns["email"].checks.append("missing")
    lineage.tables["marts.customers"].checks.append("row_count")
    lineage.edges += [Edge(ColumnRef.parse(a), ColumnRef.parse(b)) for a, b in EDGES]
    lineage.edges += [Edge(ColumnRef.parse(a), ColumnRef.parse(b), masking=True, transformation="md5(email)")
                      for a, b in MASKING]
    lineage.edges += [Edge(ColumnRef.parse(a), ColumnRef.parse(b), kind=INDIRECT) for a, b in INDIRECT_EDGES]
    lineage.unresolved.append(Unresolved("marts.customers", "orders_count", "count(*) has no input column"))
    return lineage


def shop_history():
    """Three runs: a first full load, a day later with a quarantined row and a failing check, a crashed one."""
    from datetime import datetime, timedelta, timezone

    from headwater.ops.run_records import (
        CheckRecord,
        DbtNodeRecord,
        ExposureRecord,
        FreshnessRecord,
        History,
        LoadRecord,
        RunRecord,
    )

    start = datetime(2026, 11, 25, 6, 0, tzinfo=timezone.utc)
    runs = [
        RunRecord("run-1-aaaaaaaa", "succeeded", start, start + timedelta(seconds=40), 40.0, 280, "manual:ci", [], {}),
        RunRecord("run-2-bbbbbbbb", "failed", start + timedelta(days=1), start + timedelta(days=1, seconds=30), 30.0,
                  31, "deployment:daily", ["contract marts.customers: missing"], {}),
        RunRecord("run-3-cccccccc", "succeeded", start + timedelta(days=2), start + timedelta(days=2, seconds=9), 9.0,
                  0, "manual:ci", [], {}),
    ]
    loads = [
        LoadRecord("run-1-aaaaaaaa", "shop_db", "customers", 60, 60, 0, None),
        LoadRecord("run-1-aaaaaaaa", "shop_files", "orders", 222, 220, 2, None),
        LoadRecord("run-2-bbbbbbbb", "shop_db", "customers", 6, 5, 1, None),
        LoadRecord("run-2-bbbbbbbb", "shop_files", "orders", 26, 26, 0, None),
        LoadRecord("run-3-cccccccc", "shop_db", "customers", 0, 0, 0, None),
    ]
    checks = [
        CheckRecord("run-1-aaaaaaaa", "marts.customers", "row_count", None, "passed", 60, "> 0", None, None),
        CheckRecord("run-1-aaaaaaaa", "marts.customers", "missing", "email", "passed", 0, "= 0", None, None),
        CheckRecord("run-1-aaaaaaaa", "raw_shop_db.customers", "missing", "email", "passed", 0, "= 0", None, None),
        CheckRecord("run-2-bbbbbbbb", "marts.customers", "row_count", None, "passed", 65, "> 0", None, None),
        CheckRecord("run-2-bbbbbbbb", "marts.customers", "missing", "email", "failed", 1, "= 0", "error", None),
        CheckRecord("run-2-bbbbbbbb", "raw_shop_db.customers", "missing", "email", "warned", 1, "= 0", "warn", None),
    ]
    freshness = [
        FreshnessRecord(run.run_id, "shop_db", "customers", "cursor:updated_at", start, age, 26 * 3600.0, None,
                        status, status != "pass", run.ended_at)
        for run, age, status in zip(runs, (3600.0, 30 * 3600.0, 54 * 3600.0), ("pass", "warn", "warn"), strict=True)
    ]
    nodes = [DbtNodeRecord(run.run_id, "model.shop.customers", "customers", "model", "success", 0.3, 60)
             for run in runs[:2]]
    exposures = [ExposureRecord("run-3-cccccccc", "marts.customers.email", "raw_shop_db.customers.email",
                                "raw_shop_db.customers.email → marts.customers.email", "warn")]
    return History(True, runs, loads, checks, freshness, nodes, exposures, True)


def shop_site_data(tmp_path, lineage=None, history=None, lineage_error=None):
    """SiteData for the shop without a database: the sample lineage and history, a minimal project."""
    from headwater.catalog_site.collect import RowCount, SiteData
    from headwater.lineage.pii import pii_exposures, pii_tags
    from headwater.project.config import ProjectConfig, SourceConfig, TableConfig

    lineage = shop_lineage() if lineage is None else lineage
    project = ProjectConfig(
        path=tmp_path / "headwater.yaml", name="shop <test>",
        sources=(SourceConfig("shop_db", "sql_database", {}, (TableConfig("customers", "customer_id", "updated_at",
                                                                          pii=("name", "email")),)),
                 SourceConfig("shop_files", "filesystem", {}, (TableConfig("orders", "order_id"),))),
        transform_dir=tmp_path / "transform",
    )
    counts = {key: RowCount(10 * len(table.columns)) for key, table in lineage.tables.items()
              if table.layer != "resource"}
    return SiteData(project, lineage, lineage_error, shop_history() if history is None else history, counts,
                    pii_tags(lineage), pii_exposures(lineage))

"""The lineage diagram: which tables and edges a table's neighbourhood has, layers, PII marks, escaping, layout."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

from headwater.catalog_site.svg_lineage import layout, neighbourhood, render_lineage
from headwater.lineage.model import ColumnInfo, ColumnRef, Edge, Lineage, TableInfo
from headwater.lineage.pii import pii_exposures, pii_tags
from tests.catalog_site.sample import shop_lineage

UPSTREAM_OF_CUSTOMERS = {"source:shop_db.customers", "source:shop_files.orders", "raw_shop_db.customers",
                         "raw_shop_files.orders", "staging.stg_shop_db__customers", "staging.stg_shop_files__orders",
                         "marts.customers"}


def svg_root(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def boxes(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-table"): g for g in root.iter("g") if (g.get("class") or "").startswith("table")}


def test_a_mart_shows_its_whole_upstream_and_nothing_else():
    lineage = shop_lineage()
    hood = neighbourhood(lineage, "marts.customers")
    assert set(hood.columns) == UPSTREAM_OF_CUSTOMERS  # marts.unrelated is not in it
    # 7 into the mart (5 direct, 2 indirect), 4 + 2 into staging, 3 + 2 into raw
    assert len(hood.edges) == 18
    assert hood.columns["marts.customers"] == list(lineage.tables["marts.customers"].columns)  # every column, in order
    assert hood.columns["raw_shop_db.customers"] == ["customer_id", "name", "email"]  # only those that take part

    root = svg_root(render_lineage(lineage, "marts.customers"))
    assert set(boxes(root)) == UPSTREAM_OF_CUSTOMERS
    assert boxes(root)["marts.customers"].get("class") == "table focus"
    edges = [path for path in root.iter("path") if "edge" in path.get("class", "")]
    assert len(edges) == 18
    assert sum(1 for e in edges if e.get("data-kind") == "indirect") == 2
    assert {(e.get("data-from"), e.get("data-to")) for e in edges if "masking" in e.get("class")} == {
        ("raw_shop_db.customers.email", "staging.stg_shop_db__customers.email_hash")}
    columns = [(g.get("data-table"), g.get("data-column")) for g in root.iter("g") if g.get("data-column")]
    assert len(columns) == sum(len(names) for names in hood.columns.values())
    assert ("source:shop_db.customers", "email") in columns and ("staging.stg_shop_db__customers", "email") in columns


def test_a_raw_table_shows_its_resource_and_everything_downstream():
    hood = neighbourhood(shop_lineage(), "raw_shop_db.customers")
    assert set(hood.columns) == {"source:shop_db.customers", "raw_shop_db.customers", "staging.stg_shop_db__customers",
                                 "marts.customers"}
    assert "country" in hood.columns["raw_shop_db.customers"]  # the focus table lists every column
    assert "lifetime_revenue" not in hood.columns["marts.customers"]  # not fed by this table


def test_layers_run_left_to_right_and_boxes_do_not_overlap():
    geometry = layout(neighbourhood(shop_lineage(), "marts.customers"))
    layer = {key: box.layer for key, box in geometry.boxes.items()}
    assert layer == {"source:shop_db.customers": 0, "source:shop_files.orders": 0, "raw_shop_db.customers": 1,
                     "raw_shop_files.orders": 1, "staging.stg_shop_db__customers": 2,
                     "staging.stg_shop_files__orders": 2, "marts.customers": 3}
    xs = [{box.x for box in geometry.boxes.values() if box.layer == index} for index in range(4)]
    assert all(len(x) == 1 for x in xs) and [min(x) for x in xs] == sorted(min(x) for x in xs)
    for index in range(4):
        column = sorted((b for b in geometry.boxes.values() if b.layer == index), key=lambda b: b.y)
        for upper, lower in zip(column, column[1:], strict=False):
            assert upper.y + upper.height < lower.y
    for box in geometry.boxes.values():
        assert box.x + box.width <= geometry.width and box.y + box.height <= geometry.height
    # the customers chain shares one row, the orders chain the other
    rank = {key: sorted((b for b in geometry.boxes.values() if b.layer == box.layer), key=lambda b: b.y).index(box)
            for key, box in geometry.boxes.items()}
    assert rank["source:shop_db.customers"] == rank["raw_shop_db.customers"] == rank["staging.stg_shop_db__customers"]


def test_layout_is_deterministic_whatever_the_edge_order():
    lineage = shop_lineage()
    first = render_lineage(lineage, "marts.customers")
    random.Random(7).shuffle(lineage.edges)
    assert render_lineage(lineage, "marts.customers") == first


def test_pii_tags_exposures_and_links_are_drawn():
    lineage = shop_lineage()
    tags = pii_tags(lineage)
    exposed = {exposure.column for exposure in pii_exposures(lineage)}
    svg = render_lineage(lineage, "marts.customers", tags=tags, exposed=exposed,
                         link=lambda key: None if key.startswith("source:") else f"{key}.html")
    root = svg_root(svg)
    marks = {(g.get("data-table"), g.get("data-column")): (g.get("data-pii"), g.get("data-exposed"))
             for g in root.iter("g") if g.get("data-column")}
    assert marks[("raw_shop_db.customers", "email")] == ("pii", None)
    assert marks[("marts.customers", "email")] == ("derived", "true")
    assert marks[("marts.customers", "name")] == ("derived", "true")
    assert marks[("marts.customers", "email_hash")] == ("masked", None)
    assert marks[("marts.customers", "customer_id")] == (None, None)
    hrefs = {a.get("href") for a in root.iter("a")}
    assert hrefs == {"raw_shop_db.customers.html", "raw_shop_files.orders.html",
                     "staging.stg_shop_db__customers.html", "staging.stg_shop_files__orders.html"}  # not the focus


def test_names_are_escaped():
    lineage = Lineage()
    evil = '<img src=x onerror="alert(1)">&'
    for schema, layer in (("raw_x", "raw"), ("marts", "marts")):
        table = lineage.add_table(TableInfo(schema, evil, layer))
        table.columns[evil] = ColumnInfo(ColumnRef(schema, evil, evil))
    lineage.edges.append(Edge(ColumnRef("raw_x", evil, evil), ColumnRef("marts", evil, evil), transformation=evil))
    svg = render_lineage(lineage, f"marts.{evil}", link=lambda key: key + ".html")
    assert "<img" not in svg and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in svg
    root = svg_root(svg)
    assert {g.get("data-table") for g in root.iter("g") if g.get("data-table")} == {f"raw_x.{evil}", f"marts.{evil}"}


def test_a_table_without_edges_and_a_cycle():
    lineage = shop_lineage()
    root = svg_root(render_lineage(lineage, "marts.unrelated"))
    assert set(boxes(root)) == {"marts.unrelated"} and not list(root.iter("path"))
    # a cycle between two models (a broken graph) still draws, each table once
    lineage.edges.append(Edge(ColumnRef.parse("marts.customers.email"),
                              ColumnRef.parse("staging.stg_shop_db__customers.email")))
    root = svg_root(render_lineage(lineage, "marts.customers"))
    assert set(boxes(root)) == UPSTREAM_OF_CUSTOMERS

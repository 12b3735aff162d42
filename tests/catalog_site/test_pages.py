"""The pages rendered from hand-built data: what each shows, links that resolve, nothing external, escaping."""

from __future__ import annotations

import re

from headwater.catalog_site import render_site
from headwater.catalog_site.assets import STYLESHEET
from headwater.lineage.model import Lineage
from headwater.ops.run_records import History
from tests.catalog_site.dom import Page
from tests.catalog_site.sample import shop_site_data


def test_every_page_links_only_to_pages_of_the_site(tmp_path):
    pages = render_site(shop_site_data(tmp_path))
    assert list(pages)[:2] == ["index.html", "dashboard.html"]
    assert set(pages) == {"index.html", "dashboard.html", "source-shop_db.html", "source-shop_files.html",
                          "raw_shop_db.customers.html", "raw_shop_files.orders.html",
                          "staging.stg_shop_db__customers.html", "staging.stg_shop_files__orders.html",
                          "marts.customers.html", "marts.unrelated.html"}  # resources are on their source's page
    parsed = {name: Page(text) for name, text in pages.items()}
    for name, page in parsed.items():
        assert not re.search(r"""(href|src)\s*=\s*["']?\s*(https?:)?//""", pages[name]), name
        assert "http://" not in pages[name] and "https://" not in pages[name], name
        for target in page.links:
            file, _, fragment = target.partition("#")
            if file == "style.css":
                continue
            assert file in pages, (name, target)
            assert not fragment or fragment in parsed[file].ids, (name, target)
        assert {"index.html", "dashboard.html"} <= set(page.links)  # the nav


def test_index_groups_tables_by_layer_and_warns_of_recorded_exposures(tmp_path):
    index = render_site(shop_site_data(tmp_path))["index.html"]
    page = Page(index)
    layers = [attrs["data-layer"] for attrs in page.having() if "data-layer" in attrs and attrs.get("class") == "layer"]
    assert layers == ["resource", "raw", "staging", "marts"]
    assert {attrs["data-table"] for attrs in page.having() if "data-table" in attrs} == {
        "raw_shop_db.customers", "raw_shop_files.orders", "staging.stg_shop_db__customers",
        "staging.stg_shop_files__orders", "marts.customers", "marts.unrelated"}
    assert {attrs["data-source"] for attrs in page.having() if "data-source" in attrs} == {"shop_db", "shop_files"}
    assert 'id="pii-exposures"' in index and "marts.customers.email" in index  # recorded by the last run
    assert 'data-count="exposed"><div class="value">2<' in index  # from the lineage: email and name
    assert 'id="last-run" data-status="succeeded"' in index
    assert "shop &lt;test&gt;" in index and "shop <test>" not in index
    assert "One row per customer &lt;with&gt; activity &amp; revenue." in index


def test_a_mart_page_flags_exposed_columns_and_draws_its_lineage(tmp_path):
    html = render_site(shop_site_data(tmp_path))["marts.customers.html"]
    page = Page(html)
    rows = {attrs["data-column"] for attrs in page.having() if "data-column" in attrs and "data-table" not in attrs}
    assert rows == {"customer_id", "name", "email", "email_hash", "lifetime_revenue", "orders_count"}
    exposed_rows = re.findall(r'<tr class="exposed pii-derived"><td><code data-column="(\w+)"', html)
    assert sorted(exposed_rows) == ["email", "name"]
    assert '<tr class="pii-masked"><td><code data-column="email_hash"' in html
    svg = page.having(class_="lineage")
    assert svg and svg[0]["data-focus"] == "marts.customers"
    boxes = {attrs["data-table"] for tag, attrs in page.elements if tag == "g" and attrs["class"].startswith("table")}
    assert {"raw_shop_db.customers", "staging.stg_shop_db__customers", "source:shop_db.customers"} <= boxes
    assert 'id="unresolved"' in html and "count(*) has no input column" in html
    assert "Fix: hash it in the model" in html  # the exposure box says how to stop it
    # The indirect-edge switch is a checkbox right before the diagram; the stylesheet hides dashed edges from it.
    assert re.search(r'<input type="checkbox" id="hide-indirect"[^>]*><label for="hide-indirect"[^>]*>'
                     r'hide indirect edges</label><div class="diagram"><svg', html)
    assert ".hide-indirect:checked + .toggle + .diagram svg.lineage .edge.indirect { display: none; }" in STYLESHEET
    assert re.search(r'badge failed">missing<', html)  # the column's check, as the last run saw it


def test_raw_table_page_shows_freshness_and_last_load(tmp_path):
    html = render_site(shop_site_data(tmp_path))["raw_shop_db.customers.html"]
    assert "<dt>Freshness</dt><dd><span class=\"badge warn\">warn</span> age 2.2d" in html
    assert "<dt>Last load</dt><dd>5 rows in run run-2-bb" in html and "1 quarantined" in html
    assert 'href="source-shop_db.html#resource-customers"' in html


def test_dashboard_has_one_point_or_bar_per_run(tmp_path):
    data = shop_site_data(tmp_path)
    page = Page(render_site(data)["dashboard.html"])
    runs = [run.run_id for run in data.history.runs]
    charts = {attrs["data-chart"] for attrs in page.having() if "data-chart" in attrs}
    assert charts == {"quality", "rows-loaded", "quarantined", "freshness-breaches"}
    points = [attrs["data-key"] for attrs in page.having(class_="point")]
    assert points == runs[:2]  # the third run verified no contract: no point
    bars = [attrs["data-key"] for attrs in page.having(class_="bar")]
    assert bars == runs * 3  # rows loaded, quarantined, breaches
    values = [attrs["data-value"] for attrs in page.having(class_="point")]
    assert values == ["100", f"{100 / 3:g}"]
    contract_rows = [attrs["class"] for attrs in page.having() if attrs.get("class", "").startswith("contract ")]
    assert contract_rows == ["contract failed", "contract warned", "contract passed", "contract passed"]


def test_without_lineage_or_history_the_site_says_why(tmp_path):
    data = shop_site_data(tmp_path, history=History(), lineage_error="RuntimeError: dbt docs generate failed")
    data.lineage = Lineage(tables={key: table for key, table in data.lineage.tables.items() if table.layer == "raw"})
    data.tags, data.exposures = {}, []
    pages = render_site(data)
    assert 'id="lineage-missing"' in pages["index.html"] and "dbt docs generate failed" in pages["index.html"]
    assert "No lineage diagram: RuntimeError: dbt docs generate failed" in pages["raw_shop_db.customers.html"]
    assert "none yet" in pages["index.html"] and "No runs recorded yet" in pages["dashboard.html"]
    assert set(pages) == {"index.html", "dashboard.html", "source-shop_db.html", "source-shop_files.html",
                          "raw_shop_db.customers.html", "raw_shop_files.orders.html"}

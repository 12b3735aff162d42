"""`headwater docs` on the bundled example after two real daily runs, opened in headless Chromium.

One set of runs for the whole module: the daily flow loads the shop, the shop advances a day, the
flow runs again; then `headwater docs` writes the site and Chromium renders its pages (DOM and
screenshots). Screenshots are kept in test-artifacts/catalog_site/ at the repository root.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.catalog_site.dom import Page
from tests.conftest import REPO, copy_shop_project, query
from tests.servers import postgres_server_url

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts" / "catalog_site"
WINDOW = (1400, 1200)
INSTALL_HINT = ("headless Chromium is needed to render the catalog site: install it with "
                "`apt-get install -y --no-install-recommends chromium` (Debian/Ubuntu; .ci/run does this on CI)")
RAW_TABLES = {"raw_shop_files.orders", "raw_shop_db.customers", "raw_shop_db.products", "raw_shop_api.payments"}
MODELS = {"staging.stg_shop_files__orders", "staging.stg_shop_db__customers", "staging.stg_shop_db__products",
          "staging.stg_shop_api__payments", "marts.customers", "marts.orders"}


class Chromium:
    def __init__(self, executable: str, profile: Path):
        self.executable, self.profile = executable, profile

    def _run(self, url: str, *options: str) -> subprocess.CompletedProcess:
        # No background networking: this machine's network is closed, and Chromium would wait on it.
        command = [self.executable, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-quic", f"--user-data-dir={self.profile}", *options, url]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        result = subprocess.run(command, capture_output=True, text=True, timeout=90)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    def dom(self, page: Path) -> str:
        return self._run(page.as_uri(), "--dump-dom").stdout

    def screenshot(self, page: Path, png: Path) -> Path:
        png.parent.mkdir(parents=True, exist_ok=True)
        png.unlink(missing_ok=True)
        self._run(page.as_uri(), f"--screenshot={png}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
        return png


def find_chromium() -> str:
    """The Chromium executable; a missing one fails the test (never skips) and says how to install it."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return executable


@pytest.fixture(scope="module")
def chromium(tmp_path_factory) -> Chromium:
    return Chromium(find_chromium(), tmp_path_factory.mktemp("chromium-profile"))


@pytest.fixture(scope="module")
def example_site(prefect_api, tmp_path_factory):
    """Two daily runs of the example (the second a day later), then `headwater docs`; yields what it made."""
    root = copy_shop_project(tmp_path_factory.mktemp("docs-example") / "shop")
    config = root / "headwater.yaml"
    # A freshness SLA the simulated shop's old timestamps breach (warn only), so the dashboard has breaches.
    text = config.read_text()
    anchor = "  shop_db:\n    connector: sql_database\n"
    assert anchor in text
    config.write_text(text.replace(anchor, anchor + "    freshness: {warn_after: 26h}\n"))
    server = postgres_server_url()
    name = f"hw_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{server}/{name}"
    timings = {}
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HEADWATER_CONFIG", str(config))
            patch.setenv("HEADWATER_DATABASE_URL", database_url)
            patch.delenv("SHOP_API_TOKEN", raising=False)
            from flows.daily import daily

            started = time.perf_counter()
            first = daily()
            second = daily(advance_example=1)
            timings["two daily runs"] = time.perf_counter() - started
            assert first.ok and second.ok, first.failures + second.failures
            out = root / "site"
            started = time.perf_counter()
            docs = subprocess.run([sys.executable, "-m", "headwater.cli", "docs", "--out", str(out)], cwd=root,
                                  env=dict(os.environ), capture_output=True, text=True, timeout=300)
            timings["headwater docs"] = time.perf_counter() - started
            assert docs.returncode == 0, docs.stdout[-3000:] + docs.stderr[-3000:]
        yield {"out": out, "stdout": docs.stdout, "database_url": database_url, "timings": timings,
               "runs": [first, second]}
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print("timings:", {step: f"{seconds:.1f}s" for step, seconds in timings.items()})


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header; fails unless the file is a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_headwater_docs_reports_the_site(example_site):
    stdout, out = example_site["stdout"], example_site["out"]
    assert (out / "index.html").as_uri() in stdout
    assert "Wrote " in stdout and " pages (" in stdout
    assert "Lineage is missing" not in stdout
    for page in ("index.html", "dashboard.html", "marts.customers.html", "source-shop_db.html", "style.css"):
        assert (out / page).is_file(), page
    for page in out.glob("*.html"):  # everything is local: no http(s) link or asset anywhere
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page.name


def test_index_lists_every_table_of_the_example(example_site, chromium):
    index = Page(chromium.dom(example_site["out"] / "index.html"))
    listed = {attrs["data-table"] for tag, attrs in index.elements if tag == "li" and "data-table" in attrs}
    assert RAW_TABLES | MODELS <= listed
    assert {attrs["data-source"] for attrs in index.having() if "data-source" in attrs} == {
        "shop_files", "shop_db", "shop_api"}
    assert {"marts.customers.html", "raw_shop_db.customers.html", "dashboard.html",
            "source-shop_api.html"} <= set(index.links)
    assert index.having(id="last-run")[0]["data-status"] == "succeeded"


def test_customers_mart_page_has_columns_pii_flags_and_lineage(example_site, chromium):
    page = Page(chromium.dom(example_site["out"] / "marts.customers.html"))
    rows = [attrs["data-column"] for tag, attrs in page.elements if tag == "code" and "data-column" in attrs]
    assert rows == ["customer_id", "name", "email", "country", "orders_count", "lifetime_revenue", "first_order_at",
                    "last_order_at"]
    row_class = page.row_classes()
    assert "exposed" in row_class["email"] and "exposed" in row_class["name"], row_class  # PII published unmasked
    assert "pii" not in row_class["customer_id"] and "pii" not in row_class["orders_count"]
    svg = page.having(class_="lineage")
    assert svg and svg[0]["data-focus"] == "marts.customers"
    boxes = page.svg_boxes()
    assert {"marts.customers", "staging.stg_shop_db__customers", "raw_shop_db.customers",
            "source:shop_db.customers"} <= boxes
    assert {"staging.stg_shop_files__orders", "raw_shop_files.orders", "staging.stg_shop_api__payments"} <= boxes
    svg_columns = {(a["data-table"], a["data-column"]) for t, a in page.elements if t == "g" and "data-column" in a}
    assert ("source:shop_db.customers", "email") in svg_columns and ("raw_shop_db.customers", "email") in svg_columns
    pii_marks = {(a["data-table"], a["data-column"]): a.get("data-pii") for t, a in page.elements
                 if t == "g" and "data-column" in a}
    assert pii_marks[("raw_shop_db.customers", "email")] == "pii"
    assert pii_marks[("marts.customers", "email")] == "derived"
    edges = [a for t, a in page.elements if t == "path" and "edge" in (a.get("class") or "")]
    assert ("staging.stg_shop_db__customers.email", "marts.customers.email") in {
        (a["data-from"], a["data-to"]) for a in edges}


def test_dashboard_charts_have_a_point_or_bar_per_run(example_site, chromium):
    runs = [row[0] for row in query(example_site["database_url"],
                                    "select run_id from headwater_ops.runs order by started_at")]
    assert len(runs) == 2
    page = Page(chromium.dom(example_site["out"] / "dashboard.html"))
    charts = {attrs["data-chart"] for attrs in page.having() if "data-chart" in attrs}
    assert charts == {"quality", "rows-loaded", "quarantined", "freshness-breaches"}
    assert [attrs["data-key"] for attrs in page.having(class_="point")] == runs
    assert [attrs["data-value"] for attrs in page.having(class_="point")] == ["100", "100"]  # both runs all green
    bars = [attrs for attrs in page.having(class_="bar")]
    assert [bar["data-key"] for bar in bars] == runs * 3
    loaded = [int(bar["data-value"]) for bar in bars[:2]]
    assert loaded == [row[0] for row in query(example_site["database_url"],
                                              "select rows_loaded from headwater_ops.runs order by started_at")]
    breaches = [int(bar["data-value"]) for bar in bars[4:]]
    assert breaches == [row[0] for row in query(
        example_site["database_url"], "select count(*) filter (where breached) from headwater_ops.runs "
        "left join headwater_ops.freshness using (run_id) group by run_id, started_at order by started_at")]
    assert all(count > 0 for count in breaches)  # the shop's timestamps are weeks old: warn_after 26h breaks
    contracts = [attrs for attrs in page.having() if (attrs.get("class") or "").startswith("contract ")]
    assert len(contracts) >= 6 and all(attrs["class"] == "contract passed" for attrs in contracts)


def test_screenshots_of_the_site(example_site, chromium):
    out = example_site["out"]
    for name in ("index", "marts.customers", "dashboard"):
        png = chromium.screenshot(out / f"{name}.html", ARTIFACTS / f"{name}.png")
        assert png_size(png) == WINDOW
        assert png.stat().st_size > 30_000, f"{png} looks blank ({png.stat().st_size} bytes)"


def test_without_chromium_the_tests_fail_and_say_how_to_install_it(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y --no-install-recommends chromium"):
        find_chromium()

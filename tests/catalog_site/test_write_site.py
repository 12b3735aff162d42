"""write_site and `headwater docs` against a real database: history, row counts, fallback without lineage, files."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from headwater.catalog_site import build_site, collect, write_site
from headwater.cli import main
from headwater.lineage.pii import pii_exposures
from headwater.load.pipeline import SourceLoad, TableLoad
from headwater.marts.quality import CheckResult, ContractResult
from headwater.ops.history import RunInfo, record_run
from headwater.ops.summary import RunSummary
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.catalog_site.sample import shop_lineage

STARTED = datetime(2026, 11, 25, 6, 0, tzinfo=timezone.utc)


def no_lineage(project, address, *, refresh=True):
    raise RuntimeError("dbt docs generate failed: relation does not exist")


@pytest.fixture
def recorded(shop_project, database_url, monkeypatch):
    """The shop project on a database with one raw table (3 rows) and two recorded runs."""
    monkeypatch.setenv("HEADWATER_DATABASE_URL", database_url)
    address = PostgresAddress.from_url(database_url)
    with address.connect() as connection:
        connection.execute("create schema raw_shop_db")
        connection.execute("create table raw_shop_db.customers (customer_id bigint, name text, email text)")
        connection.execute("insert into raw_shop_db.customers values (1, 'Ada', 'a@x'), (2, 'Bo', 'b@x'), "
                           "(3, 'Cy', 'c@x')")
        connection.execute("create table raw_shop_db.customers__quarantine (reason text)")
        connection.execute("create table raw_shop_db._dlt_loads (load_id text)")
    for day, (loaded, quarantined, outcome) in enumerate(((3, 1, "passed"), (0, 0, "failed"))):
        run = RunInfo(run_id=f"run-{day}", flow_name="daily", started_at=STARTED + timedelta(days=day))
        summary = RunSummary(
            run_id=run.run_id, seconds=12.0,
            loads=[SourceLoad("shop_db", "raw_shop_db", 1.0, [TableLoad("customers", loaded, quarantined)])],
            contracts=[ContractResult("raw_shop_db", "customers", outcome == "passed",
                                      [CheckResult("missing", "email", outcome, 0, "= 0"),
                                       CheckResult("row_count", None, "passed", 3, "> 0")])],
        )
        if day == 1:  # the last run found PII in a mart
            summary.pii = pii_exposures(shop_lineage())
        record_run(address, summary, run)
    return load_project(shop_project / "headwater.yaml", connector_registry()), address


def test_without_lineage_the_site_lists_raw_tables_from_the_database(recorded, tmp_path, monkeypatch):
    project, address = recorded
    monkeypatch.setattr(collect, "build_lineage", no_lineage)
    steps = []
    result = build_site(project, address, tmp_path / "site", progress=steps.append)
    assert result.index == tmp_path / "site" / "index.html" and result.index.exists()
    assert result.lineage_error == "RuntimeError: dbt docs generate failed: relation does not exist"
    assert sorted(page.name for page in result.pages) == [
        "dashboard.html", "index.html", "raw_shop_db.customers.html", "source-shop_api.html",
        "source-shop_db.html", "source-shop_files.html"]  # no quarantine or _dlt table
    assert (tmp_path / "site" / "style.css").exists()
    assert steps[0].startswith("Building column lineage") and steps[-1].startswith("Writing pages")

    data = result.data
    assert [run.run_id for run in data.history.runs] == ["run-0", "run-1"]
    assert data.row_counts["raw_shop_db.customers"].rows == 3
    assert [row.mart_column for row in data.history.last_exposures()] == ["marts.customers.email",
                                                                          "marts.customers.name"]
    assert data.history.last_exposures()[0].sources == "raw_shop_db.customers.email"
    assert list(data.lineage.tables["raw_shop_db.customers"].columns) == ["customer_id", "name", "email"]

    index = result.index.read_text()
    assert "dbt docs generate failed" in index and 'id="pii-exposures"' in index
    table = (tmp_path / "site" / "raw_shop_db.customers.html").read_text()
    assert "<dt>Rows</dt><dd>3</dd>" in table
    assert 'badge pii-pii">PII<' in table  # pii: [name, email] in headwater.yaml
    dashboard = (tmp_path / "site" / "dashboard.html").read_text()
    assert dashboard.count('class="bar" data-key="run-') == 3 * 2
    assert dashboard.count('class="point"') == 2


def test_a_given_lineage_is_used_and_pages_of_vanished_tables_are_removed(recorded, tmp_path, monkeypatch):
    project, address = recorded
    out = tmp_path / "site"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    index = write_site(project, address, out, lineage=shop_lineage())
    assert index == out / "index.html"
    assert (out / "marts.customers.html").exists() and (out / "staging.stg_shop_db__customers.html").exists()
    monkeypatch.setattr(collect, "build_lineage", no_lineage)
    write_site(project, address, out)
    assert not (out / "marts.customers.html").exists()  # written by the last run, gone from the lineage now
    assert (out / "raw_shop_db.customers.html").exists() and (out / "notes.txt").read_text() == "mine"


def test_headwater_docs_writes_the_site_and_prints_its_url(recorded, tmp_path, monkeypatch, capsys, shop_project):
    project, _ = recorded
    monkeypatch.setattr(collect, "build_lineage", no_lineage)
    assert main(["docs", "--out", str(tmp_path / "out"), "--no-refresh"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "out" / "index.html").as_uri() in out
    assert "Wrote 6 pages (1 tables, 3 sources, index and dashboard)" in out
    assert "Lineage is missing from the site: RuntimeError: dbt docs generate failed" in out

    # Without --out: catalog.site_dir of headwater.yaml
    config = shop_project / "headwater.yaml"
    config.write_text(config.read_text() + "\ncatalog:\n  site_dir: build/catalog\n")
    assert main(["docs"]) == 0
    assert (shop_project / "build" / "catalog" / "index.html").as_uri() in capsys.readouterr().out

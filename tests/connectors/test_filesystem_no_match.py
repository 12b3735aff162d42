"""A table whose glob matches no file: the other tables load, and the run says which table found nothing and why.

The listing notes it in the table's resource state with the file reports, so the summary prints a warning
for the table and the run's record keeps it; once files match, the note is gone.
"""

from __future__ import annotations

import json

from rich.console import Console

from connectors.filesystem.listing import unmatched_tables
from headwater.common.file_rows import NO_MATCH, NO_MATCH_STATE_KEY
from headwater.ops.summary import RunSummary, print_summary
from headwater.plugins.manager import connector_registry
from headwater.project.config import load_project
from tests.landing_project import landing_project, load_drops

ORDERS = "order_id,amount\n1,9.5\n2,3.0\n"


def summary_text(load) -> str:
    console = Console(record=True, width=300)
    print_summary(RunSummary(loads=[load]), console)
    return console.export_text()


def tables(load) -> dict:
    return {table.table: table for table in load.tables}


def test_a_glob_matching_no_file_warns_for_its_table_while_the_others_load(tmp_path, database_url):
    landing, project = landing_project(tmp_path, {"orders": "orders/*.csv", "refunds": "refunds/*.csv"})
    (landing / "orders").mkdir()
    (landing / "orders" / "day1.csv").write_text(ORDERS)
    (landing / "refunds").mkdir()  # there, but empty on the first run

    first = load_drops(project, database_url)

    assert tables(first)["orders"].rows == 2
    refunds = tables(first)["refunds"]
    assert refunds.rows == 0
    assert [(report["file"], report["status"], report["reason"]) for report in refunds.files] == [
        ("refunds/*.csv", NO_MATCH, f"no file matches refunds/*.csv under {landing}")
    ]
    text = summary_text(first)
    assert (f"Warning raw_drops.refunds: no file matches refunds/*.csv under {landing}; nothing loads into it until "
            "files match (check bucket_url and the glob in headwater.yaml)") in text
    assert "raw_drops.orders:" not in text  # the table that found its files has nothing to warn about
    assert "Run succeeded" in text

    # No new file anywhere: orders still matches its files (nothing new, no warning), refunds still matches none.
    second = load_drops(project, database_url)
    assert [report["status"] for report in tables(second)["refunds"].files] == [NO_MATCH]
    assert "orders" not in tables(second) or not tables(second)["orders"].files
    assert "Warning raw_drops.orders" not in summary_text(second)

    # The files arrive: they load, and the note is gone from the state.
    (landing / "refunds" / "day2.csv").write_text("refund_id,order_id\n7,1\n")
    third = load_drops(project, database_url)
    assert tables(third)["refunds"].rows == 1
    assert [report["status"] for report in tables(third)["refunds"].files] == ["loaded"]
    assert "Warning" not in summary_text(third)
    state = json.loads((tmp_path / ".headwater").joinpath("pipelines").rglob("state.json").__next__().read_text())
    resources = state["sources"]["filesystem"]["resources"]
    assert NO_MATCH_STATE_KEY not in resources["refunds"]


def test_a_bucket_folder_that_does_not_exist_is_named(tmp_path, database_url):
    missing = tmp_path / "landing" / "nowhere"
    (tmp_path / "headwater.yaml").write_text(
        "sources:\n  drops:\n    connector: filesystem\n"
        f"    settings: {{bucket_url: '{missing}', files: {{orders: 'orders/*.csv'}}}}\n")
    project = load_project(tmp_path / "headwater.yaml", connector_registry())

    load = load_drops(project, database_url)

    assert load.ok
    assert [(table.table, table.rows) for table in load.tables] == [("orders", 0)]
    assert (f"Warning raw_drops.orders: folder {missing} does not exist, so no file matches orders/*.csv; nothing "
            "loads into it until files match") in summary_text(load)


def test_the_preflight_names_each_table_that_matches_nothing_and_what_to_do(tmp_path):
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "day1.csv").write_text(ORDERS)
    (tmp_path / "empty").mkdir()
    settings = {"bucket_url": str(tmp_path),
                "files": {"orders": "orders/*.csv", "refunds": {"glob": "refunds/*.csv"}, "empty": "empty/*"}}

    assert unmatched_tables(settings, None) == {
        "refunds": f"no file matches refunds/*.csv under {tmp_path}; drop the files there, or fix the glob "
                   "(files.refunds) or bucket_url",
        "empty": f"no file matches empty/* under {tmp_path}; drop the files there, or fix the glob (files.empty) "
                 "or bucket_url",
    }
    assert unmatched_tables(settings, ["orders"]) == {}
    assert unmatched_tables({**settings, "bucket_url": f"file://{tmp_path}/gone"}, ["orders"]) == {
        "orders": f"folder {tmp_path}/gone does not exist, so no file matches orders/*.csv; create it and drop the "
                  "files there, or fix bucket_url"
    }

"""Every landing file a run reads is recorded and shown: files that gave no row by name, widened columns."""

from __future__ import annotations

import io

from rich.console import Console

from headwater.ops.history import RunInfo, record_run
from headwater.ops.summary import RunSummary, print_summary
from headwater.postgres.address import PostgresAddress
from tests.conftest import query
from tests.landing_project import landing_project, load_drops


def test_files_and_widenings_reach_the_summary_and_headwater_ops(tmp_path, database_url):
    landing, project = landing_project(tmp_path, {"items": "*.csv"})
    address = PostgresAddress.from_url(database_url)

    def run(run_id: str) -> RunSummary:
        summary = RunSummary(loads=[load_drops(project, database_url)])
        record_run(address, summary, RunInfo(run_id=run_id, flow_name="daily"))
        return summary

    (landing / "a.csv").write_text("Title of the export\nid,amount\n1,10\n2,20\n")
    run("first")
    (landing / "b.csv").write_text("id,amount\n3,2.5\n")
    (landing / "c.csv").write_text("id,amount\n")
    summary = run("second")

    output = io.StringIO()
    print_summary(summary, Console(file=output, width=200))
    text = output.getvalue()
    assert "No rows from c.csv (raw_drops.items): the file has a header and no rows" in text
    assert "Widened raw_drops.items.amount: bigint -> double precision" in text

    files = query(database_url, "select run_id, file_name, status, lines, rows_read, rows_rejected, lines_skipped, "
                                "dialect from headwater_ops.file_loads order by run_id, file_name")
    assert [row[:7] for row in files] == [
        ("first", "a.csv", "loaded", 4, 2, 0, 2),
        ("second", "b.csv", "loaded", 2, 1, 0, 1),
        ("second", "c.csv", "header only", 1, 0, 0, 1),
    ]
    assert files[0][7].startswith("comma-delimited, utf-8") and "1 preamble line" in files[0][7]
    assert query(database_url, "select run_id, table_name, column_name, type_before, type_after "
                               "from headwater_ops.column_widenings") == [
        ("second", "items", "amount", "bigint", "double precision")]

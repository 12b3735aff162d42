"""The built-in filesystem connector: formats, fsspec URLs, globs, modification-time increments, bad files."""

from __future__ import annotations

import json
import os
import textwrap
import time
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.load.pipeline import load_source
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def project_with(tmp_path, bucket_url: str, files: str, primary_key: str = "id", columns: dict | None = None):
    """One filesystem source `drops` with table `items`; ``columns`` declares column types (strict)."""
    spec = f'"{files}"' if not columns else json.dumps({"glob": files, "columns": columns})
    path = tmp_path / "headwater.yaml"
    path.write_text(textwrap.dedent(f"""\
        sources:
          drops:
            connector: filesystem
            settings:
              bucket_url: "{bucket_url}"
              files: {{items: {spec}}}
            tables:
              items: {{primary_key: {primary_key}}}
        """))
    return load_project(path, connector_registry())


def load(project, database_url):
    source = project.source("drops")
    return load_source(project, source, connector_registry().get("filesystem"), PostgresAddress.from_url(database_url))


def write(path, text: str | bytes, mtime: float | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_csv_jsonl_and_parquet_land_in_one_table_with_one_set_of_types(tmp_path, database_url):
    landing = tmp_path / "landing"
    write(landing / "a.csv", "id,amount,seen_at\n1,1.50,2026-11-01T10:00:00+00:00\n2,2.25,2026-11-01T11:00:00Z\n")
    write(landing / "b.jsonl", '{"id": 3, "amount": 3.75, "seen_at": "2026-11-02T09:00:00+01:00"}\n')
    pq.write_table(pa.table({"id": [4], "amount": [4.0], "seen_at": [utc(2026, 11, 3, 8)]}), landing / "c.parquet")
    result = load(project_with(tmp_path, str(landing), "*"), database_url)
    assert result.ok, result.error
    assert result.rows == 4
    rows = query(database_url, "select id, amount, seen_at, _file_name from raw_drops.items order by id")
    assert rows == [
        (1, 1.5, utc(2026, 11, 1, 10), "a.csv"),
        (2, 2.25, utc(2026, 11, 1, 11), "a.csv"),
        (3, 3.75, utc(2026, 11, 2, 8), "b.jsonl"),  # +01:00 in the file, stored in UTC
        (4, 4.0, utc(2026, 11, 3, 8), "c.parquet"),
    ]
    types = dict(query(database_url, "select column_name, data_type from information_schema.columns "
                                     "where table_schema = 'raw_drops' and table_name = 'items'"))
    assert types["seen_at"] == "timestamp with time zone"
    assert types["amount"] == "double precision"


def test_file_urls_and_recursive_globs_select_the_right_files(tmp_path, database_url):
    landing = tmp_path / "landing"
    write(landing / "2026" / "11" / "one.csv", "id,v\n1,a\n")
    write(landing / "2026" / "12" / "two.csv", "id,v\n2,b\n")
    write(landing / "2026" / "12" / "notes.txt", "not data\n")
    result = load(project_with(tmp_path, landing.as_uri(), "**/*.csv"), database_url)
    assert result.ok, result.error
    assert query(database_url, "select id, v, _file_name from raw_drops.items order by id") == [
        (1, "a", "2026/11/one.csv"), (2, "b", "2026/12/two.csv"),
    ]


def test_only_new_or_modified_files_are_read_on_the_next_run(tmp_path, database_url):
    landing = tmp_path / "landing"
    past = time.time() - 3600
    write(landing / "day1.csv", "id,status\n1,placed\n2,placed\n", mtime=past)
    project = project_with(tmp_path, str(landing), "*.csv")
    assert load(project, database_url).rows == 2

    assert load(project, database_url).rows == 0  # nothing new: nothing read

    write(landing / "day2.csv", "id,status\n3,placed\n", mtime=past + 60)
    write(landing / "day1.csv", "id,status\n1,shipped\n2,placed\n", mtime=past + 120)  # rewritten in place
    second = load(project, database_url)
    assert second.rows == 3
    assert query(database_url, "select id, status from raw_drops.items order by id") == [
        (1, "shipped"), (2, "placed"), (3, "placed"),
    ]


@pytest.mark.parametrize(
    "name, content, rule, reason, location",
    [
        ("bad.csv", "id,v\n1,a\n2,b,extra\n3,c\n", "columns", "3 fields, the header has 2", "bad.csv:3"),
        ("bad.jsonl", '{"id": 1}\n{"id": 2,\n{"id": 3}\n', "json", "not a JSON object", "bad.jsonl:2"),
        # UTF-8 text (the é) and then bytes that are not UTF-8: that line alone is set aside.
        ("bad.csv", "id,v\n1,café\n2,".encode() + b"\xff\xfe\n3,c\n", "encoding", "not valid UTF-8 in v",
         "bad.csv:3"),
    ],
    ids=["csv-extra-field", "jsonl-broken-line", "csv-bad-encoding"],
)
def test_a_malformed_line_is_quarantined_by_name_and_line_and_the_rest_of_the_file_loads(
    tmp_path, database_url, name, content, rule, reason, location
):
    landing = tmp_path / "landing"
    past = time.time() - 3600
    write(landing / "good.csv", "id,v\n10,x\n", mtime=past)
    project = project_with(tmp_path, str(landing), "*")
    assert load(project, database_url).rows == 1

    write(landing / name, content)
    result = load(project, database_url)
    assert result.ok, result.error
    [items] = result.tables
    assert (items.read, items.loaded, items.quarantined) == (3, 2, 1)
    assert query(database_url, "select id from raw_drops.items order by id") == [(1,), (3,), (10,)]
    [(got_rule, got_reason, got_location)] = query(
        database_url, "select rule, reason, location from raw_drops.items__quarantine"
    )
    assert (got_rule, got_location) == (rule, location)
    assert got_reason.startswith(reason)


def test_a_corrupt_file_is_quarantined_by_name_and_the_other_files_of_the_source_load(tmp_path, database_url):
    landing = tmp_path / "landing"
    write(landing / "a.csv", "id,v\n1,x\n2,y\n")
    write(landing / "broken.parquet", b"PAR1 not really parquet")
    write(landing / "empty.csv", b"")
    write(landing / "header_only.csv", "id,v\n")
    result = load(project_with(tmp_path, str(landing), "*"), database_url)
    assert result.ok, result.error
    [items] = result.tables
    assert (items.read, items.loaded, items.quarantined) == (3, 2, 1)
    assert query(database_url, "select id, v from raw_drops.items order by id") == [(1, "x"), (2, "y")]
    [(rule, reason, location)] = query(database_url, "select rule, reason, location from raw_drops.items__quarantine")
    assert (rule, location) == ("file", "broken.parquet")
    assert reason.startswith("cannot be read as parquet")
    statuses = {report["file"]: (report["status"], report["rows"]) for report in items.files}
    assert statuses == {"a.csv": ("loaded", 2), "broken.parquet": ("unreadable", 0), "empty.csv": ("empty", 0),
                        "header_only.csv": ("header only", 0)}
    assert [report["file"] for report in items.problem_files] == ["broken.parquet", "empty.csv", "header_only.csv"]

    # The file is replaced by a good one: it loads, and its quarantine entry is marked replayed.
    pq.write_table(pa.table({"id": [3], "v": ["z"]}), landing / "broken.parquet")
    os.utime(landing / "broken.parquet", (time.time() + 60, time.time() + 60))
    assert load(project_with(tmp_path, str(landing), "*"), database_url).ok
    assert query(database_url, "select id, v from raw_drops.items order by id") == [(1, "x"), (2, "y"), (3, "z")]
    assert query(database_url, "select location, status from raw_drops.items__quarantine") == [
        ("broken.parquet", "replayed")]

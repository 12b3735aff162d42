"""Files of one table that differ in types, columns and versions land in one table, run after run.

Types widen instead of rejecting (an all-null file, late decimals, a word among numbers), even with
a view on the raw table; a file read again replaces its own rows; the latest version of a key wins.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from connectors.filesystem import blocks
from headwater.load.pipeline import load_source
from headwater.load.reload import plan_reload
from headwater.plugins.manager import connector_registry
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query


class Landing:
    """A landing folder and a one-table filesystem source `drops.items` reading it."""

    def __init__(self, root: Path, table: dict | None = None, files: dict | str = "*.csv"):
        self.folder = root / "landing"
        self.folder.mkdir(parents=True)
        self.clock = time.time() - 7200
        table_options = json.dumps(table or {})
        (root / "headwater.yaml").write_text(textwrap.dedent(f"""\
            sources:
              drops:
                connector: filesystem
                settings:
                  bucket_url: "{self.folder}"
                  files: {{items: {json.dumps(files)}}}
                tables:
                  items: {table_options}
            """))
        self.path = root / "headwater.yaml"

    def write(self, name: str, text: str) -> None:
        """Write a file with a modification time later than every file before it."""
        self.clock += 60
        path = self.folder / name
        path.write_text(text)
        os.utime(path, (self.clock, self.clock))

    def load(self, database_url: str, full_refresh: list[str] | None = None):
        project = load_project(self.path, connector_registry())
        reload = plan_reload(project, full_refresh=full_refresh) if full_refresh else None
        result = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                             PostgresAddress.from_url(database_url), reload)
        assert result.ok, result.error
        return result


def column_type(url: str, column: str, table: str = "items") -> str:
    return query(url, "select data_type from information_schema.columns where table_schema = 'raw_drops' "
                      "and table_name = %s and column_name = %s", table, column)[0][0]


def test_an_all_null_file_between_typed_files_loads_and_the_column_widens_later(tmp_path, database_url):
    landing = Landing(tmp_path)
    landing.write("1.csv", "id,amount\n1,10\n2,20\n")
    landing.load(database_url)
    assert column_type(database_url, "amount") == "bigint"
    landing.write("2.csv", "id,amount\n3,NA\n4,\n")  # every amount missing: no type at all
    landing.load(database_url)
    landing.write("3.csv", "id,amount\n5,0.03\n6,2.5\n")  # decimals: the column widens
    result = landing.load(database_url)
    assert column_type(database_url, "amount") == "double precision"
    [items] = result.tables
    assert [(w.column, w.before, w.after) for w in items.widened] == [("amount", "bigint", "double precision")]
    assert query(database_url, "select id, amount from raw_drops.items order by id") == [
        (1, 10.0), (2, 20.0), (3, None), (4, None), (5, 0.03), (6, 2.5)]
    assert query(database_url, "select count(*) from information_schema.tables where table_schema = 'raw_drops' "
                               "and table_name = 'items__quarantine'") == [(0,)]


def test_a_column_first_seen_empty_takes_the_type_of_its_first_values(tmp_path, database_url):
    landing = Landing(tmp_path)
    landing.write("1.csv", "id,amount,note\n1,NA,\n2,NA,\n")  # a new table whose amount and note are all missing
    landing.load(database_url)
    landing.write("2.csv", "id,amount,note\n3,7,hello\n")
    landing.load(database_url)
    assert (column_type(database_url, "amount"), column_type(database_url, "note")) == ("bigint", "character varying")
    assert query(database_url, "select id, amount, note from raw_drops.items order by id") == [
        (1, None, None), (2, None, None), (3, 7, "hello")]


def test_a_header_only_file_creates_the_table_its_columns_typed_by_the_first_values(tmp_path, database_url):
    landing = Landing(tmp_path)
    landing.write("empty_day.csv", "id,amount,seen_at\n")
    result = landing.load(database_url)
    assert [(f["file"], f["status"]) for f in result.tables[0].files] == [("empty_day.csv", "header only")]
    assert query(database_url, "select count(*) from raw_drops.items") == [(0,)]
    landing.write("day.csv", "id,amount,seen_at\n1,2.5,2024-05-01T10:00:00Z\n")
    landing.load(database_url)
    assert [column_type(database_url, name) for name in ("id", "amount", "seen_at")] == [
        "bigint", "double precision", "timestamp with time zone"]


def test_columns_widen_to_text_under_a_view_that_reads_them(tmp_path, database_url):
    landing = Landing(tmp_path)
    landing.write("1.csv", "id,code\n1,100\n2,200\n")
    landing.load(database_url)
    with_view = ("create schema staging; create view staging.items as select id, code from raw_drops.items; "
                 "comment on view staging.items is 'the items'; "
                 "create view staging.codes as select code from staging.items")
    query_all(database_url, with_view)
    landing.write("2.csv", "id,code\n3,A-7\n")
    result = landing.load(database_url)
    assert column_type(database_url, "code") == "character varying"
    assert [(w.column, w.after) for w in result.tables[0].widened] == [("code", "character varying")]
    assert query(database_url, "select id, code from staging.items order by id") == [(1, "100"), (2, "200"), (3, "A-7")]
    assert query(database_url, "select count(*) from staging.codes") == [(3,)]
    assert query(database_url, "select obj_description('staging.items'::regclass)") == [("the items",)]


def test_a_column_widens_inside_one_file_read_in_many_blocks(tmp_path, database_url, monkeypatch):
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 64)
    landing = Landing(tmp_path)
    values = [str(i) for i in range(1, 30)]
    values[12], values[25] = "12.5", "n/a"  # a decimal in a middle block, a missing value near the end
    landing.write("big.csv", "id,value\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values, start=1)))
    result = landing.load(database_url)
    [items] = result.tables
    assert (items.read, items.loaded, items.quarantined) == (29, 29, 0)
    assert column_type(database_url, "value") == "double precision"
    assert query(database_url, "select value from raw_drops.items order by id") == [
        (None if v == "n/a" else float(v),) for v in values]


def test_files_with_other_column_sets_and_orders_land_in_one_table(tmp_path, database_url):
    landing = Landing(tmp_path)
    landing.write("1.csv", "id,name,amount\n1,a,1.5\n")
    landing.write("2.csv", "amount,id\n2.5,2\n")  # reordered, one column fewer
    landing.write("3.csv", "id,extra,name\n3,new,c\n")  # a new column
    landing.load(database_url)
    assert query(database_url, "select id, name, amount, extra from raw_drops.items order by id") == [
        (1, "a", 1.5, None), (2, None, 2.5, None), (3, "c", None, "new")]


def test_a_file_that_grows_replaces_its_own_rows_in_a_keyless_table(tmp_path, database_url):
    landing = Landing(tmp_path)
    landing.write("log.csv", "at,event\n2024-01-01,start\n2024-01-02,step\n")
    landing.write("other.csv", "at,event\n2024-02-01,other\n")
    landing.load(database_url)
    landing.write("log.csv", "at,event\n2024-01-01,start\n2024-01-02,step\n2024-01-03,stop\n")
    result = landing.load(database_url)
    [items] = result.tables
    assert (items.loaded, [f["file"] for f in items.files]) == (3, ["log.csv"])
    assert query(database_url, "select _file_name, _line, event from raw_drops.items order by _file_name, _line") == [
        ("log.csv", 2, "start"), ("log.csv", 3, "step"), ("log.csv", 4, "stop"), ("other.csv", 2, "other")]
    landing.write("log.csv", "at,event\n2024-01-05,rewritten\n")  # rewritten shorter: its old rows go
    landing.load(database_url)
    assert query(database_url, "select _file_name, event from raw_drops.items order by _file_name, _line") == [
        ("log.csv", "rewritten"), ("other.csv", "other")]


def test_the_version_from_the_latest_file_then_the_latest_line_wins(tmp_path, database_url):
    landing = Landing(tmp_path, table={"primary_key": "id"})
    landing.write("monday.csv", "id,status\n1,placed\n2,placed\n2,packed\n")
    landing.write("tuesday.csv", "id,status\n1,shipped\n")
    landing.load(database_url)
    expected = [(1, "shipped", "tuesday.csv"), (2, "packed", "monday.csv")]
    assert query(database_url, "select id, status, _file_name from raw_drops.items order by id") == expected
    landing.load(database_url, full_refresh=["drops.items"])  # everything read again in one load
    assert query(database_url, "select id, status, _file_name from raw_drops.items order by id") == expected
    landing.write("monday.csv", "id,status\n2,cancelled\n3,placed\n")  # rewritten: key 1's old row there is gone
    landing.load(database_url)
    assert query(database_url, "select id, status, _file_name from raw_drops.items order by id") == [
        (1, "shipped", "tuesday.csv"), (2, "cancelled", "monday.csv"), (3, "placed", "monday.csv")]
    landing.write("tuesday.csv", "id,status\n4,placed\n")  # key 1 is in no file any more
    landing.load(database_url)
    assert [row[0] for row in query(database_url, "select id from raw_drops.items order by id")] == [2, 3, 4]


def test_declared_types_quarantine_what_does_not_fit_and_a_column_keeps_its_own_null_tokens(tmp_path, database_url):
    files = {"glob": "*.csv", "columns": {"amount": "decimal(10,2)", "country": {"type": "text", "null_values": [""]}}}
    landing = Landing(tmp_path, files=files)
    landing.write("1.csv", "id,country,amount\n1,NA,12.50\n2,,NA\n3,DE,abc\n4,FR,1.005\n")
    result = landing.load(database_url)
    [items] = result.tables
    assert (items.loaded, items.quarantined) == (2, 2)
    from decimal import Decimal

    # NA is Namibia in the country column; the amount column keeps the default tokens (NA is missing).
    assert query(database_url, "select id, country, amount from raw_drops.items order by id") == [
        (1, "NA", Decimal("12.50")), (2, None, None)]
    reasons = query(database_url, "select location, reason from raw_drops.items__quarantine order by location")
    assert reasons == [("1.csv:4", "amount: 'abc' is not a valid decimal"),
                       ("1.csv:5", "amount: '1.005' is not a valid decimal")]


def test_lists_and_structs_where_numbers_were_widen_the_column_to_their_json(tmp_path, database_url):
    import pyarrow as pa
    import pyarrow.parquet as pq

    landing = Landing(tmp_path, files="*.parquet")
    pq.write_table(pa.table({"id": [1], "amount": [10]}), landing.folder / "1.parquet")
    landing.load(database_url)
    pq.write_table(pa.table({"id": [2, 3], "amount": pa.array([[1, 2], None])}), landing.folder / "2.parquet")
    pq.write_table(pa.table({"id": [4], "amount": pa.array([{"net": 5, "tax": "1.5"}])}), landing.folder / "3.parquet")
    result = landing.load(database_url)
    [items] = result.tables
    assert (items.read, items.loaded, items.quarantined) == (3, 3, 0)
    assert column_type(database_url, "amount") == "character varying"
    assert query(database_url, "select id, amount from raw_drops.items order by id") == [
        (1, "10"), (2, "[1,2]"), (3, None), (4, '{"net":5,"tax":"1.5"}')]


def query_all(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)


@pytest.mark.parametrize("naming, expected", [("snake_case", ["product_type", "unit_price"]),
                                               ("sql_cs_v1", ["ProductType", "UnitPrice"])])
def test_naming_keeps_the_source_column_names_when_asked(tmp_path, database_url, naming, expected):
    folder = tmp_path / "landing"
    folder.mkdir()
    (folder / "p.csv").write_text("ProductType,UnitPrice\nbook,12.5\n")
    (tmp_path / "headwater.yaml").write_text(textwrap.dedent(f"""\
        sources:
          drops:
            connector: filesystem
            naming: {naming}
            settings: {{bucket_url: "{folder}", files: {{items: "*.csv"}}}}
        """))
    project = load_project(tmp_path / "headwater.yaml", connector_registry())
    result = load_source(project, project.source("drops"), connector_registry().get("filesystem"),
                         PostgresAddress.from_url(database_url))
    assert result.ok, result.error
    columns = [name for (name,) in query(database_url, "select column_name from information_schema.columns where "
                                                       "table_schema = 'raw_drops' and table_name = 'items' "
                                                       "and column_name not like '\\_%' order by ordinal_position")]
    assert columns == expected

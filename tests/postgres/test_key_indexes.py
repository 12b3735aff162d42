"""Merge tables get an index on their key, so an incremental merge looks its rows up instead of reading the table."""

from __future__ import annotations

import pytest

from headwater.postgres.copy_ahead import MIN_ROWS_VARIABLE
from headwater.postgres.key_indexes import INDEX_SUFFIX, MAX_IDENTIFIER, key_index_name
from tests.conftest import fresh_database, query
from tests.load.helpers import SOURCE_URL_VARIABLE, execute, load, write_project

ROWS = 2_000
# Rows of the table whose merge plan is checked: enough that reading it costs the planner more than
# looking up the few changed keys (on a small table Postgres rightly reads it whole).
PLANNED_ROWS = 200_000


def fill(url: str, rows: int) -> None:
    execute(url, "create table items (id int primary key, name text, updated_at timestamptz)")
    execute(url, f"insert into items select i, 'item ' || i, '2026-01-01'::timestamptz + i * interval '1 s' "
                 f"from generate_series(1, {rows}) i")


@pytest.fixture
def source_url(monkeypatch):
    with fresh_database("hw_src") as url:
        monkeypatch.setenv(SOURCE_URL_VARIABLE, url)
        yield url


def indexes(url: str, schema: str) -> dict[str, tuple[str, bool, str]]:
    """table -> (index name, unique, columns) of every index in ``schema``."""
    rows = query(url, "select t.relname, i.relname, x.indisunique, pg_get_indexdef(x.indexrelid) from pg_index x "
                      "join pg_class i on i.oid = x.indexrelid join pg_class t on t.oid = x.indrelid "
                      "join pg_namespace n on n.oid = t.relnamespace where n.nspname = %s", schema)
    return {table: (index, unique, definition.rsplit("(", 1)[1].rstrip(")"))
            for table, index, unique, definition in rows}


def delete_plan(url: str, schema: str) -> str:
    """Postgres's plan for the delete of dlt's merge, on the staging table as a load leaves it (emptied)."""
    rows = query(url, f'explain delete from "{schema}".items as d where exists '
                      f'(select 1 from "{schema}_staging".items as s where d.id = s.id)')
    return "\n".join(row[0] for row in rows)


def test_merge_tables_get_a_key_index_and_scd2_a_plain_one(tmp_path, source_url, database_url):
    fill(source_url, ROWS)
    path = write_project(tmp_path, {
        "m": "items: {primary_key: id, cursor: updated_at, write_disposition: merge}",
        "h": "items: {primary_key: id, cursor: updated_at, write_disposition: scd2}",
        "a": "items: {primary_key: id, cursor: updated_at, write_disposition: append}",
    })
    for source in ("m", "h", "a"):
        load(path, database_url, source)

    assert indexes(database_url, "raw_m")["items"] == ("items__hw_key", True, "id")
    assert indexes(database_url, "raw_h").get("items") == ("items__hw_key", False, "id")  # several versions per key
    assert "items" not in indexes(database_url, "raw_a")
    assert "items" not in indexes(database_url, "raw_m_staging")  # staging may hold a key twice before the merge

    # A plain index needs statistics to be chosen: a loaded table autovacuum has not analyzed yet is analyzed.
    execute(database_url, "alter table raw_h.items set (autovacuum_enabled = false)")
    statistics = "select reltuples from pg_class where oid = 'raw_h.items'::regclass"
    assert query(database_url, statistics) == [(-1,)]
    execute(source_url, "update items set name = 'changed', updated_at = now() where id = 3")
    load(path, database_url, "h")
    assert query(database_url, statistics) == [(ROWS,)]


def test_the_merge_of_a_few_changed_rows_looks_them_up_by_the_key_index(tmp_path, source_url, database_url):
    fill(source_url, PLANNED_ROWS)
    path = write_project(tmp_path, {"m": "items: {primary_key: id, cursor: updated_at, write_disposition: merge}"},
                         chunk_size=50_000)
    load(path, database_url, "m")
    execute(source_url, "update items set name = 'changed', updated_at = now() where id % 10000 = 0; "
                        "insert into items values (0, 'new', now())")
    assert load(path, database_url, "m").rows == 21

    # The raw table was just loaded and never analyzed, as in a real second run.
    assert "Index Scan using items__hw_key" in delete_plan(database_url, "raw_m")
    assert query(database_url, "select count(*), count(distinct id), count(*) filter (where name = 'changed') "
                               "from raw_m.items") == [(PLANNED_ROWS + 1, PLANNED_ROWS + 1, 20)]


def test_a_table_loaded_before_keys_were_indexed_gets_its_index_on_its_next_load(tmp_path, source_url,
                                                                               database_url):
    fill(source_url, ROWS)
    path = write_project(tmp_path, {"m": "items: {primary_key: id, cursor: updated_at, write_disposition: merge}"})
    load(path, database_url, "m")
    execute(database_url, "drop index raw_m.items__hw_key")  # as a table Headwater created before this index
    execute(source_url, "update items set name = 'changed', updated_at = now() where id = 7")
    load(path, database_url, "m")

    assert indexes(database_url, "raw_m")["items"] == ("items__hw_key", True, "id")
    assert query(database_url, "select name from raw_m.items where id = 7") == [("changed",)]


@pytest.mark.parametrize("ahead", [False, True])
def test_a_key_held_twice_gets_a_plain_index_and_a_table_no_longer_merged_loses_it(ahead, tmp_path, source_url,
                                                                                    database_url, monkeypatch):
    # ahead: the appended rows are COPY'd during extract (headwater.postgres.copy_ahead); dropping the index the
    # table had while merged must roll that COPY back first, or it would wait for it forever
    monkeypatch.setenv(MIN_ROWS_VARIABLE, "1" if ahead else "1000000")
    fill(source_url, ROWS)
    appended = write_project(tmp_path / "append", {
        "m": "items: {primary_key: id, cursor: updated_at, write_disposition: append}"})
    merged = write_project(tmp_path / "merge", {
        "m": "items: {primary_key: id, cursor: updated_at, write_disposition: merge}"})
    load(appended, database_url, "m")
    execute(source_url, "update items set name = 'twice', updated_at = now() where id = 5")
    load(appended, database_url, "m")  # id 5 is now in the raw table twice
    execute(source_url, "update items set name = 'merged', updated_at = now() where id = 6")
    load(merged, database_url, "m")

    assert indexes(database_url, "raw_m")["items"] == ("items__hw_key", False, "id")
    assert query(database_url, "select name from raw_m.items where id = 6") == [("merged",)]

    execute(source_url, "update items set name = 'appended', updated_at = now() where id = 6")
    load(appended, database_url, "m")
    assert "items" not in indexes(database_url, "raw_m")
    assert query(database_url, "select name from raw_m.items where id = 6 order by updated_at") == [
        ("merged",), ("appended",)]


def test_index_names_fit_postgres_identifiers():
    long_table = "t" * 70
    assert key_index_name("orders") == "orders__hw_key"
    name = key_index_name(long_table)
    assert len(name) <= MAX_IDENTIFIER and name.endswith(INDEX_SUFFIX)
    assert name != key_index_name("t" * 69)  # shortened names stay apart

"""Hard deletes: with `deletes:`, rows whose key the source deleted leave the raw table (or are flagged, or retired).

Real sources (PostgreSQL, MariaDB, SQLite), real dlt loads through headwater.load.pipeline.load_source into a fresh
Postgres destination. After rows are deleted at the source and the source is loaded again, the raw table's
keys are compared with the source's, exactly.
"""

from __future__ import annotations

import tracemalloc
import uuid

import pytest
import sqlalchemy as sa
from rich.console import Console

from headwater.load.deletes import detect_deletes
from headwater.load.pipeline import load_source, open_pipeline
from headwater.marts.rebuild import changed_relations
from headwater.ops.history import RunInfo, record_run
from headwater.ops.summary import RunSummary, print_summary
from headwater.postgres.address import PostgresAddress
from tests.conftest import query
from tests.load.helpers import SOURCE_URL_VARIABLE, execute, load, read, registry, write_project

# Text keys whose order differs between collations: MariaDB's utf8mb4_general_ci sorts case- and
# accent-insensitively (Ångström, apple, b, Banana, ..., zz), Postgres "C" and SQLite by bytes
# (Banana, Zebra, apple, ..., Éclair, émile).
WORDS = ["apple", "Banana", "b", "cherry", "Éclair", "eclairs", "Zebra", "zz", "Ångström", "émile"]
# First, middle and last in both orders.
DELETED_WORDS = ["Ångström", "Banana", "cherry", "émile", "zz"]

TABLES = """\
items: {primary_key: id, cursor: version, deletes: detect}
order_lines: {primary_key: [order_id, line_no], deletes: detect}
words: {primary_key: code, deletes: detect}
"""


def run_sql(url: str, *statements: str, rows: list[dict] | None = None) -> None:
    """Statements on a source database, each with ``rows`` as parameters when given."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement), rows) if rows else connection.execute(sa.text(statement))
    engine.dispose()


def source_keys(url: str, table: str, columns: str) -> list[tuple]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        keys = sorted(tuple(row) for row in connection.execute(sa.text(f"select {columns} from {table}")))
    engine.dispose()
    return keys


def raw_keys(url: str, relation: str, columns: str) -> list[tuple]:
    return sorted(query(url, f"select {columns} from {relation}"))


@pytest.fixture
def mariadb_url(mariadb):
    name = f"hw_src_{uuid.uuid4().hex[:10]}"
    with mariadb.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    yield mariadb.url(name, "charset=utf8mb4")
    with mariadb.connect() as admin, admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def any_source(request, tmp_path, monkeypatch):
    """A source database of each kind, referenced by the project as ${HW_TEST_SOURCE_URL}."""
    if request.param == "postgresql":
        return request.getfixturevalue("source_url")
    url = request.getfixturevalue("mariadb_url") if request.param == "mariadb" else f"sqlite:///{tmp_path}/src.db"
    monkeypatch.setenv(SOURCE_URL_VARIABLE, url)
    return url


def create_tables(url: str) -> None:
    run_sql(url,
            "create table items (id int primary key, name varchar(20), version int)",
            "create table order_lines (order_id int, line_no int, qty int, primary key (order_id, line_no))",
            "create table words (code varchar(20) primary key, note varchar(20))")
    run_sql(url, "insert into items values (:id, :name, 1)",
            rows=[{"id": i, "name": f"item {i}"} for i in range(1, 11)])
    run_sql(url, "insert into order_lines values (:order_id, :line_no, 1)",
            rows=[{"order_id": o, "line_no": n} for o in (1, 2, 3) for n in (1, 2, 3)])
    run_sql(url, "insert into words values (:code, 'x')", rows=[{"code": word} for word in WORDS])


def test_rows_deleted_at_the_source_leave_the_raw_table(tmp_path, any_source, database_url):
    create_tables(any_source)
    # Chunks of 3 keys: chunk borders fall between keys whose order the databases disagree on.
    path = write_project(tmp_path, {"src": TABLES}, chunk_size=3)
    load(path, database_url, "src")

    run_sql(any_source,
            "delete from items where id in (1, 5, 10)",
            "delete from order_lines where (order_id = 1 and line_no = 1) or (order_id = 2 and line_no = 2) "
            "or (order_id = 3 and line_no = 3)",
            *(f"delete from words where code = '{word}'" for word in DELETED_WORDS))
    result = load(path, database_url, "src")

    assert raw_keys(database_url, "raw_src.items", "id") == source_keys(any_source, "items", "id") == [
        (2,), (3,), (4,), (6,), (7,), (8,), (9,)]
    assert raw_keys(database_url, "raw_src.order_lines", "order_id, line_no") == source_keys(
        any_source, "order_lines", "order_id, line_no")
    assert len(raw_keys(database_url, "raw_src.order_lines", "order_id, line_no")) == 6
    assert raw_keys(database_url, "raw_src.words", "code") == source_keys(any_source, "words", "code") == sorted(
        (word,) for word in WORDS if word not in DELETED_WORDS)
    assert {table.table: (table.deletes.action, table.deletes.rows, table.deletes.source_keys)
            for table in result.tables} == {
        "items": ("removed", 3, 7), "order_lines": ("removed", 3, 6), "words": ("removed", 5, 5)}


def test_a_table_without_deletes_keeps_the_rows_the_source_deleted(tmp_path, source_url, database_url):
    create_tables(source_url)
    path = write_project(tmp_path, {"src": "items: {primary_key: id, cursor: version}\n"
                                           "words: {primary_key: code, deletes: detect}"})
    load(path, database_url, "src")
    execute(source_url, "delete from items where id <= 5; delete from words where code = 'apple'")
    result = load(path, database_url, "src")

    assert len(raw_keys(database_url, "raw_src.items", "id")) == 10
    assert ("apple",) not in raw_keys(database_url, "raw_src.words", "code")
    assert {table.table: table.deletes is not None for table in result.tables} == {"items": False, "words": True}


def flags(url: str) -> dict[int, tuple]:
    return {id_: (name, deleted_at) for id_, name, deleted_at in
            query(url, "select id, name, _deleted_at from raw_src.items order by id")}


def test_flag_keeps_gone_rows_marked_and_clears_the_mark_when_the_key_returns(tmp_path, source_url, database_url):
    create_tables(source_url)
    path = write_project(tmp_path, {"src": "items: {primary_key: id, cursor: version, deletes: flag}"})
    load(path, database_url, "src")
    execute(source_url, "delete from items where id in (2, 3)")

    flagged = load(path, database_url, "src").tables[0].deletes
    first = flags(database_url)
    assert (flagged.action, flagged.rows, flagged.restored) == ("flagged", 2, 0)
    assert [id_ for id_, (_, deleted_at) in first.items() if deleted_at] == [2, 3]  # every row is still there
    assert first[2][1] == first[3][1]  # both flagged by the same run

    again = load(path, database_url, "src").tables[0].deletes
    assert (again.rows, flags(database_url)) == (0, first)  # a flag keeps the time of the run that noticed

    # 2 comes back changed (a newer version, so it is read again); 3 comes back with its old version (not read).
    execute(source_url, "insert into items values (2, 'item 2 again', 2), (3, 'item 3', 1)")
    back = load(path, database_url, "src").tables[0].deletes
    assert (back.rows, back.restored) == (0, 1)  # 2's flag went with the row dlt replaced; 3's was cleared
    assert flags(database_url)[2] == ("item 2 again", None)
    assert flags(database_url)[3] == ("item 3", None)
    assert back.describe().startswith("1 flag cleared (_deleted_at emptied), its key is back in the source")


def test_scd2_retires_the_current_version_of_a_gone_key(tmp_path, source_url, database_url):
    create_tables(source_url)
    path = write_project(tmp_path, {"src": "items: {primary_key: id, cursor: version, write_disposition: scd2, "
                                           "deletes: detect}"})
    load(path, database_url, "src")
    execute(source_url, "delete from items where id = 4")
    retired = load(path, database_url, "src").tables[0].deletes

    assert (retired.action, retired.rows) == ("retired", 1)
    current = sorted(query(database_url, "select id from raw_src.items where _valid_to is null"))
    assert current == source_keys(source_url, "items", "id")
    [(name, valid_from, valid_to)] = query(database_url, "select name, _valid_from, _valid_to from raw_src.items "
                                                         "where id = 4")
    assert name == "item 4" and valid_to > valid_from  # its history stays, ended

    execute(source_url, "insert into items values (4, 'item 4 again', 2)")
    load(path, database_url, "src")
    assert query(database_url, "select name from raw_src.items where id = 4 and _valid_to is null") == [
        ("item 4 again",)]


def test_a_load_that_fails_removes_nothing(tmp_path, source_url, database_url):
    create_tables(source_url)
    path = write_project(tmp_path, {"src": "items: {primary_key: id, cursor: version, deletes: detect}"})
    load(path, database_url, "src")
    # The destination refuses the next row, so that run's load fails after its extract.
    execute(database_url, "alter table raw_src.items add constraint no_boom check (name <> 'boom')")
    execute(source_url, "delete from items where id in (1, 2); insert into items values (11, 'boom', 2)")

    project = read(path)
    result = load_source(project, project.source("src"), registry().get("sql_database"),
                         PostgresAddress.from_url(database_url))

    assert not result.ok and "no_boom" in result.error
    assert raw_keys(database_url, "raw_src.items", "id") == [(i,) for i in range(1, 11)]


def test_keys_that_arrive_after_the_extract_never_remove_a_loaded_row(tmp_path, source_url, database_url):
    create_tables(source_url)
    path = write_project(tmp_path, {"src": "items: {primary_key: id, cursor: version, deletes: detect}"})
    load(path, database_url, "src")
    loaded = raw_keys(database_url, "raw_src.items", "id")
    # What the source holds when the keys are read after the extract: new keys, the loaded ones unchanged.
    execute(source_url, "insert into items select i, 'new', 3 from generate_series(11, 60) i")

    found = detect_deletes_again(path, database_url)

    assert (found["items"].rows, found["items"].source_keys) == (0, 60)
    assert raw_keys(database_url, "raw_src.items", "id") == loaded  # nothing removed, nothing added


def detect_deletes_again(path, database_url: str):
    """What load_source does after a load, on its own: compare the raw tables with the source now."""
    project = read(path)
    source = project.source("src")
    address = PostgresAddress.from_url(database_url)
    naming = open_pipeline(project, source, address).default_schema.naming
    return detect_deletes(source, registry().get("sql_database"), project.resolved_settings(source), address, naming)


LARGE = 200_000
CHUNK = 5_000


def test_keys_are_compared_chunk_by_chunk_in_bounded_memory(tmp_path, source_url, database_url):
    execute(source_url, f"""
        create table events (id int primary key, kind text not null);
        insert into events select i, 'event' from generate_series(1, {LARGE}) i;
    """)
    path = write_project(tmp_path, {"src": "events: {primary_key: id, deletes: detect}"}, chunk_size=CHUNK)
    load(path, database_url, "src")
    execute(source_url, f"delete from events where id in (1, {LARGE // 2}, {LARGE})")

    tracemalloc.start()
    try:
        found = detect_deletes_again(path, database_url)["events"]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (found.rows, found.source_keys, found.chunks) == (3, LARGE - 3, LARGE // CHUNK)
    assert query(database_url, "select count(*), min(id), max(id) from raw_src.events") == [(LARGE - 3, 2, LARGE - 1)]
    # All 200,000 keys at once take about 17 MB as Python tuples; one chunk of 5,000 at a time stays far below.
    assert peak < 4_000_000, peak


def test_the_run_summary_and_history_say_what_was_removed(tmp_path, source_url, database_url):
    create_tables(source_url)
    path = write_project(tmp_path, {"src": "items: {primary_key: id, cursor: version, deletes: detect}"})
    load(path, database_url, "src")
    execute(source_url, "delete from items where id in (3, 7)")
    summary = RunSummary(loads=[load(path, database_url, "src")])

    console = Console(record=True, width=200)
    print_summary(summary, console)
    assert "Deletes raw_src.items: 2 rows removed, their keys are gone from the source (8 source keys compared in" \
        in console.export_text()
    assert changed_relations(summary.loads) == [("raw_src", "items")]  # no row loaded, yet dbt rebuilds from it

    run = RunInfo.current("daily")
    record_run(PostgresAddress.from_url(database_url), summary, run)
    [(action, deleted, restored, keys, seconds, error)] = query(
        database_url, "select deletes_action, rows_deleted, rows_restored, source_keys, deletes_seconds, "
                      "deletes_error from headwater_ops.table_loads where run_id = %s", run.run_id)
    assert (action, deleted, restored, keys, error) == ("removed", 2, 0, 8, None)
    assert seconds > 0


def test_a_comparison_that_fails_changes_nothing_and_fails_the_run(tmp_path, source_url, database_url):
    create_tables(source_url)
    path = write_project(tmp_path, {"src": "items: {primary_key: id, cursor: version, deletes: detect}"})
    load(path, database_url, "src")
    # The key column is renamed at the source: the load finds nothing new, the keys cannot be read.
    execute(source_url, "delete from items where id = 1; alter table items rename column id to item_id")
    summary = RunSummary(loads=[load(path, database_url, "src")])

    found = summary.loads[0].tables[0].deletes
    assert found.error == "ProgrammingError: (psycopg2.errors.UndefinedColumn) column items.id does not exist"
    assert raw_keys(database_url, "raw_src.items", "id") == [(i,) for i in range(1, 11)]
    assert [line for line in summary.failures if line.startswith("deletes src.items: ")]
    assert not found.changed and changed_relations(summary.loads) == []

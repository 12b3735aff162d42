"""Each write mode over three runs with inserts, updates and deletes between them, on real Postgres."""

from __future__ import annotations

import textwrap

import pyarrow as pa
import pytest

from headwater.load.write_modes import ROW_HASH_COLUMN, add_row_hash, table_hints
from headwater.project.config import ConfigError, TableConfig, load_project
from tests.conftest import query
from tests.load.helpers import execute, load, registry, write_project

SOURCES = {
    "m": "items: {primary_key: id, cursor: updated_at, write_disposition: merge, deleted_flag: is_deleted}",
    "a": "items: {cursor: updated_at, write_disposition: append}",
    "r": "items: {primary_key: id, write_disposition: replace}",
    "h": "items: {primary_key: id, write_disposition: scd2, deleted_flag: is_deleted}",
    "hi": "items: {primary_key: id, cursor: updated_at, write_disposition: scd2, deleted_flag: is_deleted}",
}
# Source changes before runs 1, 2 and 3 (and none before run 4).
CHANGES = [
    """insert into items values (1, 'a', '2024-01-01T01:00Z', false), (2, 'b', '2024-01-01T02:00Z', false),
                                (3, 'c', '2024-01-01T03:00Z', null)""",
    """update items set name = 'b2', updated_at = '2024-01-02T01:00Z' where id = 2;
       update items set is_deleted = true, updated_at = '2024-01-02T02:00Z' where id = 1;
       insert into items values (4, 'd', '2024-01-02T03:00Z', false)""",
    """update items set name = 'c2', updated_at = '2024-01-03T01:00Z' where id = 3;
       delete from items where id = 4""",
    "select 1",
]


def versions(url: str, relation: str) -> list[tuple]:
    """scd2 rows as (id, name, from run, to run or None): validity timestamps become run numbers."""
    rows = query(url, f"select id, name, _valid_from, _valid_to from {relation} order by id, _valid_from")
    boundaries = sorted({row[2] for row in rows} | {row[3] for row in rows if row[3]})
    run = {stamp: index + 1 for index, stamp in enumerate(boundaries)}
    return [(id_, name, run[start], run.get(end)) for id_, name, start, end in rows]


def test_every_write_mode_over_runs_with_inserts_updates_and_deletes(tmp_path, source_url, database_url):
    execute(source_url, "create table items (id int primary key, name text, updated_at timestamptz, is_deleted bool)")
    path = write_project(tmp_path, SOURCES)
    for change in CHANGES:
        execute(source_url, change)
        for source in SOURCES:
            load(path, database_url, source)

    assert query(database_url, "select id, name, is_deleted from raw_m.items order by id") == [
        (2, "b2", False), (3, "c2", None), (4, "d", False),  # 1 flagged: deleted; 4 gone at source: not seen
    ]
    assert query(database_url, "select id, name, is_deleted from raw_a.items order by updated_at") == [
        (1, "a", False), (2, "b", False), (3, "c", None), (2, "b2", False), (1, "a", True), (4, "d", False),
        (3, "c2", None),
    ]
    assert query(database_url, "select id, name, is_deleted from raw_r.items order by id") == [
        (1, "a", True), (2, "b2", False), (3, "c2", None),
    ]
    # Full extract: a flagged or missing key retires its version; unchanged rows keep one version.
    assert versions(database_url, "raw_h.items") == [
        (1, "a", 1, 2), (2, "b", 1, 2), (2, "b2", 2, None), (3, "c", 1, 3), (3, "c2", 3, None), (4, "d", 2, 3),
    ]
    # Incremental: only keys in the extract are compared, so 4 (deleted without a flag) stays current.
    assert versions(database_url, "raw_hi.items") == [
        (1, "a", 1, 2), (2, "b", 1, 2), (2, "b2", 2, None), (3, "c", 1, 3), (3, "c2", 3, None), (4, "d", 2, None),
    ]
    # The modes that copy into a staging table first leave it empty once the load is recorded.
    staged = query(database_url, "select table_schema from information_schema.tables where table_name = 'items' "
                                 "and table_schema like 'raw\\_%\\_staging' order by 1")
    assert [schema for schema, in staged] == ["raw_h_staging", "raw_hi_staging", "raw_m_staging", "raw_r_staging"]
    for schema, in staged:
        assert query(database_url, f"select count(*) from {schema}.items") == [(0,)], schema


def test_deleted_flag_needs_merge_or_scd2(tmp_path):
    path = tmp_path / "headwater.yaml"
    path.write_text(textwrap.dedent("""\
        sources:
          s:
            connector: sql_database
            settings: {credentials: '${URL}'}
            tables:
              items: {write_disposition: append, deleted_flag: is_deleted}
        """))
    with pytest.raises(ConfigError, match="deleted_flag needs write_disposition merge or scd2, not append"):
        load_project(path, registry())


def test_merge_is_delete_insert_deduplicated_by_the_newest_version():
    hints = table_hints(TableConfig("t", primary_key="id", deduplicate_by="updated_at", deleted_flag="gone"))
    assert hints["write_disposition"] == {"disposition": "merge", "strategy": "delete-insert"}
    assert hints["columns"] == {"updated_at": {"name": "updated_at", "dedup_sort": "desc"},
                                "gone": {"name": "gone", "hard_delete": True}}


def test_row_hash_depends_on_values_not_on_column_order_or_batching():
    one = add_row_hash(pa.table({"id": [1, 2], "name": ["a", None]}))
    other = add_row_hash(pa.table({"name": ["a", None], "id": [1, 2]}))
    single = add_row_hash(pa.table({"id": [2], "name": [None]}))
    assert one[ROW_HASH_COLUMN].to_pylist() == other[ROW_HASH_COLUMN].to_pylist()
    assert one[ROW_HASH_COLUMN][1] == single[ROW_HASH_COLUMN][0]
    assert len(set(one[ROW_HASH_COLUMN].to_pylist())) == 2

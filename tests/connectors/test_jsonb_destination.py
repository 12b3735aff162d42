"""The destination's exact types meet tables that already exist: a `json` column made before jsonb keeps loading."""

from __future__ import annotations

import psycopg

from tests.conftest import query
from tests.connectors.type_matrix import load, write_project


def test_a_json_column_created_before_jsonb_keeps_receiving_json_text(postgres_source, database_url, tmp_path,
                                                                      monkeypatch):
    with psycopg.connect(postgres_source.replace("+psycopg", ""), autocommit=True) as source:
        source.execute("create table types (id int primary key, doc jsonb)")
        source.execute("""insert into types values (1, '{"a": [1, 2.50]}'), (2, 'null'), (3, null)""")
    with psycopg.connect(database_url, autocommit=True) as destination:  # as an earlier Headwater created it
        destination.execute("create schema raw_s")
        destination.execute("create table raw_s.types (id bigint not null, doc json,"
                            " _dlt_load_id varchar not null)")

    # append: COPY goes straight into the existing table (a merge would copy into a new jsonb staging table)
    load(write_project(tmp_path, monkeypatch, postgres_source, {"s": {}}, table={"write_disposition": "append"}),
         database_url, "s")

    assert query(database_url, "select id, doc::text, pg_typeof(doc)::text from raw_s.types order by id") == [
        (1, '{"a": [1, 2.50]}', "json"), (2, "null", "json"), (3, None, "json"),
    ]

"""What a failed run left pending, per table, and discarding it: nothing of it stays, and its rows are read again."""

from __future__ import annotations

from headwater.load.pipeline import load_source, open_pipeline
from headwater.load.recovery import discard_pending, pending_loads
from headwater.postgres.address import PostgresAddress
from tests.conftest import query
from tests.load.helpers import drop_connections, feed_project


def test_a_discarded_load_takes_the_nested_rows_it_wrote_with_it(tmp_path, database_url, monkeypatch):
    project, connector = feed_project(tmp_path)
    address = PostgresAddress.from_url(database_url)
    dropped = drop_connections(monkeypatch, database_url, "feed")  # feed never loads; feed__tags may
    assert not load_source(project, project.source("api"), connector, address).ok

    pipeline = open_pipeline(project, project.source("api"), address)
    pending = pending_loads(pipeline)
    [feed] = [table for table in pending.tables if table.table == "feed"]
    assert (feed.jobs, feed.rows, len(feed.load_ids)) == (1, 3, 1)
    assert "Postgres failed while copying into raw_api.feed" in feed.failures[0]
    discarded = discard_pending(pipeline)
    assert discarded.state_restored and discarded.pending.load_ids == pending.load_ids
    assert pending_loads(pipeline).empty
    assert query(database_url, "select count(*) from raw_api.feed__tags") == [(0,)]

    dropped.append(None)  # the next run reads the rows again; the one Postgres refuses goes to quarantine
    again = load_source(project, project.source("api"), connector, address)
    assert again.ok, again.error
    assert query(database_url, "select id from raw_api.feed order by id") == [(1,), (3,)]
    assert query(database_url, "select t.tag from raw_api.feed__tags t join raw_api.feed f "
                               "on f._dlt_id = t._dlt_parent_id order by t.tag") == [("a",), ("d",)]
    assert query(database_url, "select count(*) from raw_api.feed__tags") == [(2,)]

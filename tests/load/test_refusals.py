"""Rows Postgres refuses are quarantined with its reason; the rest of the source loads, run after run."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tests.conftest import query
from tests.landing_project import landing_project, load_drops


def test_a_batch_postgres_refuses_is_quarantined_and_the_other_tables_load(tmp_path, database_url):
    landing, project = landing_project(tmp_path, {"events": "e*.parquet", "other": "o*.csv"})
    # 285,000 BC fits an Arrow timestamp but not a Postgres one (4713 BC at the earliest): the batch is refused.
    table = pa.table({"id": [1, 2], "at": pa.array([-9_000_000_000_000_000_000, 0], pa.int64()).cast(
        pa.timestamp("us"))})
    pq.write_table(table, landing / "e1.parquet")
    (landing / "o1.csv").write_text("id\n1\n2\n")
    def load():
        return load_drops(project, database_url)

    first = load()
    [refused] = first.set_aside
    assert (refused.table, refused.rows) == ("events", 2)
    assert "Postgres refused rows for raw_drops.events column at from e1.parquet" in refused.reason
    loads = {t.table: (t.read, t.loaded, t.quarantined) for t in first.tables}
    assert loads == {"events": (2, 0, 2), "other": (2, 2, 0)}
    assert query(database_url, "select location, rule, status from raw_drops.events__quarantine order by location") == [
        ("e1.parquet:1", "load", "quarantined"), ("e1.parquet:2", "load", "quarantined")]
    assert query(database_url, "select count(*) from raw_drops.other") == [(2,)]

    (landing / "o2.csv").write_text("id\n3\n")  # the next run is not held back by the refused batch
    second = load()
    assert (second.set_aside, {t.table: t.loaded for t in second.tables}) == ([], {"other": 1})
    assert query(database_url, "select count(*) from raw_drops.other") == [(3,)]

"""A long load says how far it has got, from dlt's own counters; a quick one says nothing."""

from __future__ import annotations

import dlt
import pyarrow as pa

from headwater.load.progress import LoadProgress
from headwater.postgres.address import PostgresAddress
from headwater.postgres.loader import postgres


@dlt.resource(name="items")
def items():
    for batch in range(3):
        yield pa.table({"id": list(range(batch * 100, batch * 100 + 100))})


@dlt.resource(name="notes")
def notes():
    yield [{"id": 1}, {"id": 2}]


def run(database_url: str, tmp_path, progress: LoadProgress) -> None:
    address = PostgresAddress.from_url(database_url)
    pipeline = dlt.pipeline(pipeline_name="progress", destination=postgres(credentials=address.dlt_credentials()),
                            dataset_name="raw_progress", pipelines_dir=str(tmp_path), progress=progress)
    pipeline.run([items(), notes()], loader_file_format="parquet")


def test_progress_lines_name_rows_per_table_then_load_jobs(database_url, tmp_path):
    lines: list[str] = []
    run(database_url, tmp_path, LoadProgress("src", lines.append, delay=0, period=0))

    assert lines[0] == "src: 100 rows read so far (items 100)"
    assert "src: 302 rows read so far (items 300, notes 2)" in lines
    assert lines[-1] == "src: writing to Postgres, 3 of 3 load jobs done"
    # A counter that did not move is not news.
    assert all(line != after for line, after in zip(lines, lines[1:], strict=False))


def test_a_load_quicker_than_the_delay_says_nothing(database_url, tmp_path):
    lines: list[str] = []
    run(database_url, tmp_path, LoadProgress("src", lines.append, delay=3600))
    assert lines == []

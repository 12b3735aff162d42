"""headwater.postgres.load_files: load files are written for the COPY that reads them next (plain pages, no
statistics), with dlt's own writer settings, and every cell lands as the source held it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import dlt
import pyarrow as pa
import pyarrow.parquet as pq

from headwater.load.pipeline import LOADER_FILE_FORMAT, open_pipeline
from headwater.plugins.connectors import ConnectorRegistry, Plugin
from headwater.postgres.address import PostgresAddress
from headwater.project.config import load_project
from tests.conftest import query

ROWS = 3000


def frame() -> pa.Table:
    """Rows as a database export gives them: nulls, repeats, extremes, accents, old and far dates."""
    index = range(ROWS)
    return pa.table({
        "id": pa.array(index, pa.int64()),
        "city": pa.array([None if i % 7 == 0 else ["Zürich", "São Paulo", "Łódź"][i % 3] for i in index]),
        "amount": pa.array([Decimal(i) / 100 - Decimal("10.5") for i in index], pa.decimal128(12, 2)),
        "ratio": pa.array([None if i % 11 == 0 else i / 7 for i in index], pa.float64()),
        "big": pa.array([(-1) ** i * (2 ** 62 + i) for i in index], pa.int64()),
        "seen_at": pa.array([dt.datetime(1899 + i % 400, 1 + i % 12, 1, 12, 30, tzinfo=dt.timezone.utc)
                             for i in index], pa.timestamp("us", tz="UTC")),
        "active": pa.array([None if i % 5 == 0 else i % 2 == 0 for i in index]),
    })


@dlt.resource(name="exports")
def exports():
    yield frame()


def test_load_files_are_plain_pages_without_statistics_and_land_every_cell(tmp_path, database_url, monkeypatch):
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__VERSION", "2.6")  # a setting of dlt's writer still applies
    registry = ConnectorRegistry()
    registry.registrar(Plugin("exports", "headwater-exports", "1.0"))("exports", exports)
    path = tmp_path / "headwater.yaml"
    path.write_text("sources:\n  shop:\n    connector: exports\n")
    project = load_project(path, registry)
    pipeline = open_pipeline(project, project.source("shop"), PostgresAddress.from_url(database_url))

    pipeline.extract(exports(), loader_file_format=LOADER_FILE_FORMAT)
    files = list(Path(pipeline.working_dir).rglob("exports.*.parquet"))
    assert len(files) == 1, files
    metadata = pq.ParquetFile(files[0]).metadata
    assert metadata.format_version == "2.6"
    columns = {metadata.row_group(0).column(i).path_in_schema: metadata.row_group(0).column(i)
               for i in range(metadata.num_columns)}
    assert set(columns) == set(frame().column_names) | {"_dlt_load_id"}
    for name, column in columns.items():
        assert column.statistics is None, name
        dictionary = any("DICTIONARY" in encoding for encoding in column.encodings)
        assert dictionary == (name == "_dlt_load_id"), (name, column.encodings)

    pipeline.normalize()
    pipeline.load().raise_on_failed_jobs()
    columns = ", ".join(frame().column_names)
    landed = query(database_url, f"select {columns} from raw_shop.exports order by id")
    assert [tuple(row) for row in landed] == [tuple(row.values()) for row in frame().to_pylist()]

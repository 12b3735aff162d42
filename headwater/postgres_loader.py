"""dlt's Postgres destination with a load job that streams Parquet load files into Postgres.

dlt's own ADBC job hands the driver a Python generator of batches, which the driver turns into one
in-memory table before copying: a load file's whole content sits in memory at once, so peak memory
grows with the size of the load. Handing it a RecordBatchReader instead lets the driver pull one
batch at a time while it copies, so memory stays flat however many rows a table loads.
"""

from __future__ import annotations

from typing import Type

import pyarrow as pa
import pyarrow.parquet as pq
from dlt.common.utils import without_none
from dlt.destinations import postgres as dlt_postgres
from dlt.destinations.impl.postgres.postgres import PostgresClient, PostgresParquetCopyJob

from headwater.postgres_types import copy_into, with_exact_types

# Rows per batch handed to the driver: each becomes one chunk of COPY data.
COPY_BATCH_ROWS = 64 * 1024


class StreamingParquetCopyJob(PostgresParquetCopyJob):
    def run(self) -> None:
        with self._connect() as connection, connection.cursor() as cursor:
            catalog_name, schema_name = self._set_catalog_and_schema()
            # pre_buffer=False: with it, the reader keeps buffers of every batch already read.
            with pq.ParquetFile(self._file_path, pre_buffer=False) as parquet:
                batches = pa.RecordBatchReader.from_batches(
                    parquet.schema_arrow, parquet.iter_batches(batch_size=COPY_BATCH_ROWS)
                )
                # copy_into: adbc_ingest, with jsonb and text-carried numeric columns made copyable (postgres_types)
                copy_into(cursor, self.load_table_name, batches,
                          **without_none({"catalog_name": catalog_name, "db_schema_name": schema_name}))
            connection.commit()


class StreamingPostgresClient(PostgresClient):
    def create_load_job(self, table, file_path: str, load_id: str, restore: bool = False):
        job = super().create_load_job(table, file_path, load_id, restore)
        if type(job) is PostgresParquetCopyJob:
            job = StreamingParquetCopyJob(file_path)
        return job


class postgres(dlt_postgres):  # noqa: N801 - dlt names a destination after its factory class
    """Postgres as dlt knows it, loading Parquet files with StreamingParquetCopyJob.

    Columns get headwater.postgres_types' mapping: JSON as jsonb, unconstrained decimals as bare numeric.
    """

    def _raw_capabilities(self):
        return with_exact_types(super()._raw_capabilities())

    @property
    def client_class(self) -> Type[PostgresClient]:
        return StreamingPostgresClient

"""Parquet load files written for the COPY that reads them next, not for keeping.

dlt writes every Arrow batch of a load into a Parquet load file, which Headwater's copy job reads back a
moment later on the same machine (headwater.postgres.loader) and deletes once loaded. Two of Parquet's
defaults only cost CPU there:

- **Dictionary encoding** of every column shrinks files meant to be stored and read many times; a file
  read once, locally, gains nothing from it, and writing it is about half of the write's CPU (1M rows
  × 11 columns: 0.51 s with dictionaries, 0.18 s without).
- **Column statistics** (min/max per page) serve readers that skip pages; the copy reads every page.

So dlt's Arrow-to-Parquet writer, in a Headwater process, writes plain pages without statistics. Only
the columns that repeat one value over a whole file keep their dictionary (the load id, the landing
file's name), where it costs nothing and keeps the file small. dlt's writer settings
(``ParquetFormatConfiguration``) have no option for either, so Headwater replaces the writer's
``_create_writer`` (``use_copy_ready_writer``), passing every setting of dlt's on as dlt does.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from dlt.common.data_writers.writers import ArrowToParquetWriter

from headwater.common.file_rows import FILE_COLUMN
from headwater.postgres.loader import LOAD_ID_COLUMN

# Columns holding one value per load or per landing file: dictionary-encoded, they cost nothing to write.
REPEATING_COLUMNS = (LOAD_ID_COLUMN, FILE_COLUMN)
_PYARROW_MAJOR = int(pa.__version__.split(".")[0])


def writer_options(schema: pa.Schema) -> dict:
    """The pyarrow ParquetWriter options Headwater adds to dlt's for a load file of ``schema``."""
    return {"use_dictionary": [name for name in REPEATING_COLUMNS if name in schema.names],
            "write_statistics": False}


def _create_copy_ready_writer(self: ArrowToParquetWriter, schema: pa.Schema) -> pq.ParquetWriter:
    """dlt's writer settings (its ParquetDataWriter._create_writer), plus ``writer_options``."""
    settings = self.parquet_format
    chunking = {"use_content_defined_chunking": settings.use_content_defined_chunking} if _PYARROW_MAJOR >= 21 else {}
    return pq.ParquetWriter(self._f, schema, flavor=settings.flavor, version=settings.version,
                            compression=settings.compression, data_page_size=settings.data_page_size,
                            coerce_timestamps=settings.coerce_timestamps,
                            allow_truncated_timestamps=settings.allow_truncated_timestamps,
                            use_compliant_nested_type=settings.use_compliant_nested_type,
                            write_page_index=settings.write_page_index, **chunking, **writer_options(schema))


def use_copy_ready_writer() -> None:
    """From now on, dlt's Arrow load files in this process are written as ``writer_options`` says."""
    ArrowToParquetWriter._create_writer = _create_copy_ready_writer

"""The destination database: its address, how rows are written into it (Parquet load files, binary COPY by
pgpq or ADBC), how its column types follow the data (widening), the indexes merges look their keys up by,
and how many rows its tables hold.

Imports: common.
"""

"""Benchmarks: Headwater loads measured against raw COPY and plain dlt (`python -m benchmarks.run`)."""

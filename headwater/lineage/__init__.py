"""Column lineage from connector resource to mart, PII tracing, OpenLineage export (see model.py)."""

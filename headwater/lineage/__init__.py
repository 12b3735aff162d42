"""Column lineage from connector resource to mart, PII tracing, OpenLineage export (see model.py).

Imports: common, project, plugins, processing, quarantine, load, marts, postgres.
"""

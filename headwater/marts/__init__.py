"""Building and publishing marts: dbt runs (transform), Soda contracts (quality), which models a run
rebuilds (rebuild), write-audit-publish (publish) and dbt source definitions from the raw schemas.

Imports: common, project, load, quarantine, postgres.
"""

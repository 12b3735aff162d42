"""Loading a source into raw_<source>: the dlt pipeline, write modes, steps and rules per batch, crash
recovery, rows Postgres refuses, hard deletes, reloads and backfills, quarantine replay, pre-flight
checks, and the dlt schemas stored in the destination.

Imports: common, project, plugins, processing, quarantine, postgres.
"""

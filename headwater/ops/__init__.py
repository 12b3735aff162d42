"""What a run recorded and who is told: run history in headwater_ops (written by history, read back by
run_records), the run summary, freshness checks, alerts and relations still waiting to be published.

Imports: common, project, plugins, load, marts, lineage, postgres, quarantine.
"""

"""The project: headwater.yaml read, validated and turned into ProjectConfig, every section parsed here.

config.py reads sources, tables, transform, quality and catalog; alerting.py, freshness.py, deletes.py and
grants.py parse the sections of the same names. Connector settings are checked against the installed plugins.

Imports: common, processing, plugins.
"""

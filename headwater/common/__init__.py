"""Building blocks every stage shares, with no knowledge of any stage: config problems with key paths,
YAML with line numbers, ${NAME} interpolation, the process environment (telemetry off, state folder),
plugin registries, type widening rules and the metadata columns of file rows.

Imports: nothing from headwater.
"""

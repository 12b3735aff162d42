"""Building blocks every stage shares, with no knowledge of any stage: config problems with key paths,
YAML with line numbers, ${NAME} and ${prefect:block-name} interpolation, the process environment
(telemetry off, state folder), plugin registries, type widening rules, the metadata columns of file
rows and the NUL character rule.

Imports: nothing from headwater.
"""

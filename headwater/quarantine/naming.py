"""Where a table's quarantined rows live: a sibling table named `<table>__quarantine`.

Kept free of heavy imports: connectors import it to route the lines they cannot read.
"""

from __future__ import annotations

# Double underscore, like dlt's nested tables, so the side table sorts next to its table.
QUARANTINE_SUFFIX = "__quarantine"


def quarantine_table_name(table: str) -> str:
    return f"{table}{QUARANTINE_SUFFIX}"


def is_quarantine_table(name: str) -> bool:
    return name.endswith(QUARANTINE_SUFFIX)


def table_of(quarantine_table: str) -> str:
    """The table whose rows a quarantine table holds."""
    return quarantine_table[: -len(QUARANTINE_SUFFIX)]

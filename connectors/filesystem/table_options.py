"""A table's reading options from the connector's settings: a table's own block wins over the source's."""

from __future__ import annotations

from connectors.filesystem.column_types import Declared, NullTokens, TableKinds, parse_declared
from connectors.filesystem.helpers import TableReading
from connectors.filesystem.parsed import ReadLimits
from connectors.filesystem.settings import DEFAULT_NULL_VALUES
from headwater.common.nul_characters import REJECT


def table_reading(table: str, spec, file_format: str | None, csv: dict | None,
                  null_values: list[str] | None, source: dict | None = None) -> TableReading:
    """``source``: the source-wide ``nul_characters``, ``max_line_bytes`` and ``max_nesting_depth``."""
    options = spec if isinstance(spec, dict) else {}
    source = source or {}
    limits = {key: options.get(key, source.get(key)) for key in ("max_line_bytes", "max_nesting_depth")}
    default = frozenset(options.get("null_values", null_values if null_values is not None else DEFAULT_NULL_VALUES))
    declared: dict[str, Declared] = {}
    column_nulls: dict[str, frozenset[str]] = {}
    for column, setting in (options.get("columns") or {}).items():
        if isinstance(setting, str):
            declared[column] = parse_declared(setting)
            continue
        if "type" in setting:
            declared[column] = parse_declared(setting["type"], setting.get("format"))
        if "null_values" in setting:
            column_nulls[column] = frozenset(setting["null_values"])
    # The parser nulls unquoted tokens that every column takes as missing; the others are applied per column.
    parsed = default.intersection(*column_nulls.values()) if column_nulls else default
    return TableReading(
        table=table,
        file_format=options.get("format") or file_format,
        csv={**(csv or {}), **(options.get("csv") or {})},
        nulls=NullTokens(default=default, columns=column_nulls or None, parsed=parsed),
        kinds=TableKinds(declared=declared),
        limits=ReadLimits(**{key: value for key, value in limits.items() if value is not None}),
        nul_characters=options.get("nul_characters") or source.get("nul_characters") or REJECT,
    )

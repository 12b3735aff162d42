"""The Soda checks watching each table and column, read from the contracts in the quality folder.

A contract's dataset names its relation: the last two segments of
``headwater/${env.HEADWATER_PG_DATABASE}/<schema>/<table>`` (the folder, ``contracts/<schema>/<table>.yml``,
when the line is missing). Contracts on marts are written for the published schema and stay there.
Column checks (``missing``, ``invalid``, ``duplicate``, ...) go onto the column, the others
(``row_count``, ``schema``, ...) onto the table; a check with a ``qualifier`` is ``name:qualifier``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from headwater.lineage.model import Lineage
from headwater.marts.quality import discover_contracts


def contract_checks(quality_dir: Path) -> dict[tuple[str, str], tuple[list[str], dict[str, list[str]]]]:
    """{(schema, table): (table checks, {column: checks})} of every contract that can be read."""
    found = {}
    for contract in discover_contracts(quality_dir):
        try:
            document = yaml.safe_load(contract.path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue  # verify_contracts reports a broken contract; lineage only describes
        if not isinstance(document, dict):
            continue
        dataset = str(document.get("dataset") or "").strip("/").split("/")
        relation = tuple(dataset[-2:]) if len(dataset) >= 2 else (contract.schema, contract.table)
        columns = {}
        for column in document.get("columns") or []:
            if isinstance(column, dict) and column.get("name"):
                columns[str(column["name"])] = _names(column.get("checks"))
        table_checks, known = found.get(relation, ([], {}))
        found[relation] = (table_checks + _names(document.get("checks")), {**known, **columns})
    return found


def add_checks(lineage: Lineage, quality_dir: Path) -> None:
    """Put each contract's checks onto the tables and columns lineage knows."""
    for (schema, name), (table_checks, columns) in contract_checks(quality_dir).items():
        table = lineage.tables.get(f"{schema}.{name}")
        if table is None:
            continue
        _extend(table.checks, table_checks)
        for column, checks in columns.items():
            if column in table.columns:
                _extend(table.columns[column].checks, checks)


def _names(checks) -> list[str]:
    names = []
    for check in checks or []:
        if isinstance(check, str):
            names.append(check)
        elif isinstance(check, dict) and check:
            name, options = next(iter(check.items()))
            qualifier = options.get("qualifier") if isinstance(options, dict) else None
            names.append(f"{name}:{qualifier}" if qualifier else str(name))
    return names


def _extend(target: list[str], names: list[str]) -> None:
    for name in names:
        if name not in target:
            target.append(name)

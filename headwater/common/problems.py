"""One problem found in a config file, located by its key path (the file and line are added when shown)."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.common.yaml_source import KeyPath


@dataclass
class Problem:
    key_path: KeyPath
    message: str
    # Where no key can say it (a YAML syntax error): the 1-based line and column.
    line: int | None = None
    column: int | None = None

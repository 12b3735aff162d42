"""`${NAME}` references in config values, resolved from the environment or the secrets file.

Secrets never live in headwater.yaml: it names them, and they are looked up at run
time in the process environment, then in the git-ignored `.headwater/secrets.env`.
`${PROJECT_DIR}` is the folder holding headwater.yaml, for paths that must not
depend on the working directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRETS_FILE = "secrets.env"


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv-style file: NAME=value lines, # comments, optional quotes."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip().removeprefix("export ").strip()] = value
    return values


class Variables:
    """Where `${NAME}` values come from, in order: built-ins, the environment, the secrets file."""

    def __init__(self, project_dir: Path, secrets_file: Path):
        self.secrets_file = secrets_file
        self._builtins = {"PROJECT_DIR": str(project_dir)}
        self._file = read_env_file(secrets_file)

    def provide(self, name: str, value: str) -> None:
        """Make a value available to references for this run only (it is never written anywhere)."""
        self._builtins[name] = value

    def get(self, name: str) -> str | None:
        if name in self._builtins:
            return self._builtins[name]
        if name in os.environ:
            return os.environ[name]
        return self._file.get(name)

    def references_in(self, value: Any) -> set[str]:
        if isinstance(value, str):
            return set(REFERENCE.findall(value))
        if isinstance(value, dict):
            return set().union(*(self.references_in(v) for v in value.values())) if value else set()
        if isinstance(value, list):
            return set().union(*(self.references_in(v) for v in value)) if value else set()
        return set()

    def missing(self, value: Any, provided_later: frozenset[str] = frozenset()) -> set[str]:
        return {
            name for name in self.references_in(value) if name not in provided_later and self.get(name) is None
        }

    def resolve(self, value: Any) -> Any:
        """Replace every reference inside value (nested dicts and lists too)."""
        if isinstance(value, str):
            return REFERENCE.sub(lambda match: self.get(match.group(1)) or "", value)
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

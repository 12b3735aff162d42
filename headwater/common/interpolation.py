"""`${NAME}` and `${prefect:block-name}` references in config values, and where their values come from.

Secrets never live in headwater.yaml: it names them, and they are looked up at run time.
`${NAME}` comes from the process environment, then the git-ignored `.headwater/secrets.env`.
`${prefect:block-name}` is the value of the Prefect Secret block of that name on the Prefect server
the process talks to, so a deployment's run gets its credentials on whichever worker it lands:
read only when a value is needed (checking the config contacts no server), once per project
read, and never written anywhere. `${PROJECT_DIR}` is the folder holding headwater.yaml, for
paths that must not depend on the working directory.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

BLOCK_PREFIX = "prefect:"
REFERENCE = re.compile(r"\$\{(prefect:[^}]*|[A-Za-z_][A-Za-z0-9_]*)\}")
# Prefect's own rule for block document names.
BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")
SECRETS_FILE = "secrets.env"


class SecretBlockError(Exception):
    """A `${prefect:...}` reference could not be read; str() says which block, on which server, and what to do.

    The message never holds a secret value: only the block's name, the server's URL and the reason.
    """


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
    """Where reference values come from: built-ins, the environment, the secrets file, Prefect Secret blocks."""

    def __init__(self, project_dir: Path, secrets_file: Path):
        self.secrets_file = secrets_file
        self._builtins = {"PROJECT_DIR": str(project_dir)}
        self._file = read_env_file(secrets_file)
        self._blocks: dict[str, str] = {}  # read once, held only in memory
        self._reading = threading.Lock()

    def __getstate__(self) -> dict:
        """What travels to another process (a Dask worker): the built-ins and the values the run provided, but
        nothing read from the secrets file or Secret blocks: the other process reads its own environment,
        secrets file and blocks."""
        return {"secrets_file": self.secrets_file, "builtins": dict(self._builtins)}

    def __setstate__(self, state: dict) -> None:
        self.secrets_file = state["secrets_file"]
        self._builtins = state["builtins"]
        self._file = read_env_file(self.secrets_file)
        self._blocks = {}
        self._reading = threading.Lock()

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
        """Every reference in value as written inside `${...}`: `NAME` or `prefect:block-name`."""
        if isinstance(value, str):
            return set(REFERENCE.findall(value))
        if isinstance(value, dict):
            return set().union(*(self.references_in(v) for v in value.values())) if value else set()
        if isinstance(value, list | tuple):
            return set().union(*(self.references_in(v) for v in value)) if value else set()
        return set()

    def blocks_in(self, value: Any) -> set[str]:
        """Names of the Prefect Secret blocks value references; their values are known only when read."""
        return {name.removeprefix(BLOCK_PREFIX) for name in self.references_in(value) if name.startswith(BLOCK_PREFIX)}

    def missing(self, value: Any, provided_later: frozenset[str] = frozenset()) -> set[str]:
        """`${NAME}` references without a value; block references are never missing here (no server is asked)."""
        return {
            name for name in self.references_in(value)
            if not name.startswith(BLOCK_PREFIX) and name not in provided_later and self.get(name) is None
        }

    def reference_problems(self, value: Any, provided_later: frozenset[str] = frozenset()) -> list[str]:
        """What is wrong with value's references, one message each, without contacting any server."""
        messages = [f"${{{name}}} is not set: export {name}=... or add it to {self.secrets_file}"
                    for name in sorted(self.missing(value, provided_later))]
        messages += [f"${{prefect:{name}}}: a Prefect block name is lower-case letters, digits and dashes, "
                     f"e.g. ${{prefect:shop-db-url}}" for name in sorted(self.blocks_in(value))
                     if not BLOCK_NAME.match(name)]
        return messages

    def resolve(self, value: Any) -> Any:
        """Replace every reference inside value (nested dicts and lists too); Secret blocks are read now.

        Raises SecretBlockError when a block cannot be read.
        """
        return self._substitute(value, self._value_of)

    def preview(self, value: Any) -> Any:
        """value with its `${NAME}` references replaced and its block references left as written.

        For checking a config's values: no server is contacted and no block is read.
        """
        return self._substitute(value, lambda name: f"${{{name}}}" if name.startswith(BLOCK_PREFIX)
                                else self.get(name) or "")

    def _substitute(self, value: Any, lookup) -> Any:
        if isinstance(value, str):
            return REFERENCE.sub(lambda match: lookup(match.group(1)), value)
        if isinstance(value, dict):
            return {key: self._substitute(item, lookup) for key, item in value.items()}
        if isinstance(value, list):
            return [self._substitute(item, lookup) for item in value]
        return value

    def _value_of(self, reference: str) -> str:
        if not reference.startswith(BLOCK_PREFIX):
            return self.get(reference) or ""
        name = reference.removeprefix(BLOCK_PREFIX)
        with self._reading:
            if name not in self._blocks:
                self._blocks[name] = read_secret_block(name)
            return self._blocks[name]


def prefect_server() -> str:
    """The Prefect API this process talks to, as messages name it."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return url or "Prefect's temporary server (PREFECT_API_URL is not set)"


def read_secret_block(name: str) -> str:
    """The text of the Prefect Secret block `name` on the server this process talks to."""
    if not BLOCK_NAME.match(name):
        raise SecretBlockError(f"${{prefect:{name}}}: a Prefect block name is lower-case letters, digits and dashes")
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name)
    except ValueError as error:  # Prefect's way of saying there is no block of that name (or not a Secret)
        if "Unable to find" not in str(error):
            raise SecretBlockError(f"secret block {name!r} on {prefect_server()} is not a Secret block "
                                   f"({type(error).__name__}); save a Secret block under that name") from None
        raise SecretBlockError(
            f"secret block {name!r} not found on {prefect_server()}; create it there: Prefect UI, Blocks, "
            f"Secret named {name}; or Secret(value=...).save({name!r}) from prefect.blocks.system"
        ) from None
    except Exception as error:  # the server is down, refuses the credentials, or is not a Prefect API
        import httpx

        what = "is unreachable" if isinstance(error, httpx.TransportError) else "refused the request"
        raise SecretBlockError(
            f"secret block {name!r}: the Prefect server {prefect_server()} {what} "
            f"({type(error).__name__}: {error}); start it (`headwater up`) or set PREFECT_API_URL to the "
            "server that holds the block"
        ) from None
    value = block.value.get_secret_value()
    if not isinstance(value, str):  # a Secret block may hold JSON; a reference is replaced by text
        raise SecretBlockError(f"secret block {name!r} holds {type(value).__name__}, not text; "
                               "save its value as a string")
    return value

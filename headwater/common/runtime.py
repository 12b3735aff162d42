"""Process-wide settings that must be in place before dlt, dbt, Prefect or Soda are imported."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

# Every library in the stack phones home unless told not to. Some of them read
# these variables at import time, so they are set before anything else runs.
TELEMETRY_OFF = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "SODA_CORE_TELEMETRY_ENABLED": "false",
}

# Prefect's temporary server (no PREFECT_API_URL, no `headwater up`) takes 15-30 s to start on a small
# machine; Prefect gives up after 20 s by default, which fails a run that would have worked.
PREFECT_DEFAULTS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # One line per record on the terminal, tracebacks in .headwater/logs/runs.log (headwater/ops/run_log.py).
    "PREFECT_LOGGING_SETTINGS_PATH": str(Path(__file__).resolve().parents[1] / "ops" / "prefect_logging.yml"),
}

CONFIG_ENV = "HEADWATER_CONFIG"
CONFIG_FILE = "headwater.yaml"
STATE_DIR = ".headwater"


def quiet_telemetry() -> None:
    """Turn telemetry off, give Prefect's temporary server time to start and use Headwater's log layout,
    unless the user chose otherwise in the environment."""
    for name, value in {**TELEMETRY_OFF, **PREFECT_DEFAULTS}.items():
        os.environ.setdefault(name, value)


def with_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with telemetry off and Headwater's Prefect defaults where it sets none (as `quiet_telemetry`
    leaves this process's environment)."""
    return {**TELEMETRY_OFF, **PREFECT_DEFAULTS, **environ}


def child_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process Headwater starts (Prefect server, worker, CLI): this process's, with
    telemetry off unless the user chose otherwise, plus `extra`."""
    return {**with_defaults(os.environ), **(extra or {})}


def config_path() -> Path:
    """The project's config file: $HEADWATER_CONFIG, else headwater.yaml in the working directory."""
    return Path(os.environ.get(CONFIG_ENV) or CONFIG_FILE).resolve()


def project_root() -> Path:
    """The folder holding the project's config; relative paths in the config start here."""
    return config_path().parent


def state_dir(root: Path | None = None) -> Path:
    """Where Headwater keeps local state (embedded database, dbt artifacts, pipeline working dirs)."""
    return (root or project_root()) / STATE_DIR


@contextmanager
def scoped_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block, then put back what was there before.

    dbt's profile and Soda's YAML read the connection from the environment, and the
    database differs between runs (and tests), so it is set per call, not per process.
    """
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = previous

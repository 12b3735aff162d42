"""Subcommands of `headwater`, one module per area; shared helpers below.

Imports: any package.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from headwater.postgres.address import PostgresAddress
    from headwater.project.config import ProjectConfig, SourceConfig


def read_project_or_report() -> "ProjectConfig | None":
    """The project of HEADWATER_CONFIG / ./headwater.yaml; None after printing why it cannot be read.

    Imported lazily: the config pulls in dlt through the connector plugins, which not every command needs.
    """
    from headwater.common.runtime import config_path
    from headwater.plugins.manager import connector_registry
    from headwater.project.config import ConfigError, load_project

    try:
        project = load_project(config_path(), connector_registry())
    except ConfigError as error:
        print(error, file=sys.stderr)
        return None
    secrets_from_the_server_of_runs(project)
    return project


def secrets_from_the_server_of_runs(project: "ProjectConfig") -> None:
    """Read the project's Prefect Secret blocks (`${prefect:name}`) where its runs do.

    That is PREFECT_API_URL's server (environment or Prefect profile), else the project's own when it
    is running (`headwater up`). A command never starts a server for this: a block it cannot read is
    reported with the server's address when a value is needed.
    """
    if project.secret_blocks():
        from headwater.local.stack import use_local_stack

        use_local_stack()


def holding_source(project: "ProjectConfig", address: "PostgresAddress", source: "SourceConfig", purpose: str,
                   nothing_done: str, action: "Callable[[], int]") -> int:
    """``action()`` holding the source's lock (headwater.load.source_lock), so that it never works beside a run
    loading the source; 1 after saying who keeps it, when they keep it past `run.lock_wait`."""
    from headwater.load.source_lock import LockNotAcquired, end_dead_sessions, source_lock

    try:
        with source_lock(address, source.name, project.run.lock_wait_seconds, purpose,
                         waiting=lambda line: print(line, file=sys.stderr)):
            end_dead_sessions(address, source.name)
            return action()
    except LockNotAcquired as busy:
        print(f"error: {source.name} is busy: {busy}; {nothing_done}. Try again when that run ends "
              "(or raise run.lock_wait).", file=sys.stderr)
        return 1

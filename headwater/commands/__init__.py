"""Subcommands of `headwater`, one module per area; shared helpers below.

Imports: any package.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headwater.project.config import ProjectConfig


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

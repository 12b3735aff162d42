"""Prefect flows of a Headwater project.

Importing this package prepares the process before Prefect, dlt, dbt or Soda are
imported: their telemetry is turned off, and when `headwater up` is running the
local Prefect server, runs are sent to it instead of a throw-away server.
"""

from headwater.common.runtime import quiet_telemetry
from headwater.local.stack import use_local_stack

quiet_telemetry()
use_local_stack()

"""Prefect flows of a Headwater project.

Importing this package prepares the process before Prefect, dlt, dbt or Soda are
imported: their telemetry is turned off, and when this project's Prefect server is
running (`headwater up`, or started by an earlier run), runs are sent to it.
`python -m flows.daily` starts that server when it is not running (flows/daily.py).
"""

from headwater.common.runtime import quiet_telemetry
from headwater.local.stack import use_local_stack

quiet_telemetry()
use_local_stack()

"""Prefect flows of a Headwater project.

Importing this package prepares the process before Prefect, dlt, dbt or Soda are
imported: their telemetry is turned off, and when this project's Prefect server is
running (`headwater up`, or started by an earlier run), runs are sent to it.
`python -m flows.daily` starts that server when it is not running (flows/daily.py), and hands itself to
the project's warm runner when `headwater up` started one (headwater.local.warm_client).
"""

import sys
from pathlib import Path

from headwater.common.runtime import quiet_telemetry, state_dir
from headwater.local.warm_client import run_in_warm_runner

quiet_telemetry()
if sys.argv[:1] == ["-m"] and sys.orig_argv[-len(sys.argv) - 1:][:2] == ["-m", "flows.daily"]:
    # `python -m flows.daily`, before anything heavy is imported: `headwater up`'s warm runner has it all
    # imported already (flows.daily.main finds the project's server itself there).
    # argv[0] as Python sets it once the module is found: the path of flows/daily.py.
    served = run_in_warm_runner("flows.daily", state_dir(), argv0=str(Path(__file__).with_name("daily.py")))
    if served is not None:
        sys.exit(served)

from headwater.local.stack import use_local_stack  # noqa: E402 - only when this process runs the flow itself

use_local_stack()

"""Load one source in a process of its own and print what happened as JSON (test harness only).

    python -m tests.load.load_child HEADWATER_YAML DESTINATION_URL SOURCE

Progress lines (waiting for a lock, say) go to stderr, after a first line "loading" once the imports are
done and the load begins; the result is the last line of stdout.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from headwater.load.pipeline import load_source
from headwater.postgres.address import PostgresAddress
from tests.load.helpers import read, registry


def main(path: str, destination_url: str, source: str) -> None:
    project = read(Path(path))
    config = project.source(source)
    began = time.time()
    print("loading", file=sys.stderr, flush=True)
    result = load_source(project, config, registry().get(config.connector), PostgresAddress.from_url(destination_url),
                         progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps({"error": result.error, "skipped": result.skipped, "began": began, "ended": time.time(),
                      "rows": {table.table: table.rows for table in result.tables}}))


if __name__ == "__main__":
    main(*sys.argv[1:4])

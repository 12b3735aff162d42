"""Progress of a long load, as dlt counts it: one line every few seconds, none for a load that is quick.

dlt reports counters to the pipeline's collector while it runs (rows per table while extracting,
items while normalizing, jobs while loading). This collector turns them into a line such as
``shop_db: 1,200,000 rows read so far (orders 1,000,000, customers 200,000)``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from dlt.common.runtime.collector import Collector

from headwater.common.pace import Pace

# dlt's own counters, not tables.
STEP_COUNTERS = frozenset({"Resources", "Files", "Items", "Jobs"})


class LoadProgress(Collector):
    """Says how far a source's load has got, first after ``delay`` seconds, then every ``period`` seconds."""

    def __init__(self, source: str, say: Callable[[str], None], *, delay: float = 5.0, period: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.say = say
        self.pace = Pace(delay, period, clock)
        self.step = ""
        self.counters: dict[str, int] = defaultdict(int)
        self.totals: dict[str, int] = {}
        self.last_line = ""

    def update(self, name: str, inc: int = 1, total: int | None = None, inc_total: int | None = None,
               message: str | None = None, label: str | None = None) -> None:
        if label:
            return  # sub-counters (completed resources, failed jobs) add nothing to "how far"
        self.counters[name] += inc
        if total is not None:
            self.totals[name] = total
        elif inc_total:
            self.totals[name] = self.totals.get(name, 0) + inc_total
        if self.pace.due():
            line = self.describe()
            if line and line != self.last_line:  # dlt also reports counters that did not move
                self.pace.reported()
                self.last_line = line
                self.say(line)

    def describe(self) -> str:
        """Where the load is now, in words; empty when dlt has counted nothing yet."""
        if self.step == "extract":
            tables = {name: rows for name, rows in self.counters.items()
                      if name not in STEP_COUNTERS and not name.startswith("_dlt")}
            if not tables:
                return ""
            parts = ", ".join(f"{name} {rows:,}" for name, rows in sorted(tables.items(), key=lambda i: -i[1]))
            return f"{self.source}: {sum(tables.values()):,} rows read so far ({parts})"
        if self.step == "normalize" and self.counters.get("Items"):
            return f"{self.source}: preparing {self.counters['Items']:,} rows for Postgres"
        if self.step == "load" and "Jobs" in self.counters:
            total = self.totals.get("Jobs")
            of = f" of {total:,}" if total else ""
            return f"{self.source}: writing to Postgres, {self.counters['Jobs']:,}{of} load jobs done"
        return ""

    def _start(self, step: str) -> None:
        self.step = step.split()[0].lower() if step else ""
        self.counters = defaultdict(int)
        self.totals = {}

    def _stop(self) -> None:
        pass

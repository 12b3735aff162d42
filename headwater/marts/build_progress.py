"""Progress of a long dbt command, from dbt's own events: one line every few seconds, none for a quick one."""

from __future__ import annotations

import time
from collections.abc import Callable

from headwater.common.pace import Pace


class BuildProgress:
    """A dbtRunner callback that says how many of the selected nodes have finished.

    dbt announces each node with its index and the total (LogStartLine) and reports it finished
    (NodeFinished); the first line comes after ``delay`` seconds, then one every ``period`` seconds.
    """

    def __init__(self, command: str, say: Callable[[str], None], *, delay: float = 5.0, period: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.command = command
        self.say = say
        self.pace = Pace(delay, period, clock)
        self.total = 0
        self.done = 0
        self.last = ""

    def __call__(self, event) -> None:
        name = event.info.name
        if name == "LogStartLine":
            self.total = max(self.total, int(event.data.total))
        elif name == "NodeFinished":
            self.done += 1
            self.last = event.data.node_info.node_name
            if self.pace.due():
                self.pace.reported()
                of = f" of {self.total}" if self.total else ""
                self.say(f"dbt {self.command}: {self.done}{of} nodes done (last: {self.last})")

"""When a long task reports its progress: first after a delay (a quick task says nothing), then at intervals."""

from __future__ import annotations

import time
from collections.abc import Callable


class Pace:
    def __init__(self, delay: float, period: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = period
        self.clock = clock
        self.next_report = clock() + delay

    def due(self) -> bool:
        return self.clock() >= self.next_report

    def reported(self) -> None:
        self.next_report = self.clock() + self.period

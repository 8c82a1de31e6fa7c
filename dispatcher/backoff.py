"""One poller's pauses: after failed receives or admits (exponential), and after empty polls."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(slots=True)
class PollBackoff:
    """One poller's pauses: after failures (receive or admit), and on an empty short poll."""

    failures: int = 0
    empty: int = 0

    def failed(self) -> float:
        self.failures += 1
        return min(10.0, 0.2 * 2.0 ** min(self.failures, 6))

    def idle(self, rng: random.Random) -> float:
        self.empty += 1
        return min(1.0, 0.05 * 2.0 ** min(self.empty, 5)) * rng.uniform(0.5, 1.0)

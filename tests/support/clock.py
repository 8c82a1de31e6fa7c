"""Virtual time for the health stores and the ledger: the test sets `now`, the code calls it."""

from __future__ import annotations

START = 1_800_000_000.0  # a whole second: bucket boundaries fall on whole seconds


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

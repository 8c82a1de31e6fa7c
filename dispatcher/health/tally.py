"""One flush's outcomes for one provider, folded in Python before they go to Redis, so the health
scripts apply counts (a few commands per provider) instead of commands per outcome.

    Window   the sliding-window counters, the histogram, the throttle and the peak-EWMA inputs
             (health_record.lua): every outcome counts, in any order
    runs     the breaker's input (breaker_record.lua): consecutive outcomes that the breaker
             treats alike (same verdict, slowness and generation) become one (kind, slow,
             generation, count), in order, so failure streaks are judged as one by one
    permits  the probe permit tokens the batch releases

The peak EWMA of a batch recorded at one `now` depends on its first latency and its largest
only: the first decays the old value, and every later one either leaves it (lower: no time has
passed) or replaces it (higher). So `first_ms` and `peak_ms` stand for the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dispatcher.health.base import HIST_BOUNDS_MS, Observation, hist_bucket

# How the breaker judges each kind (health.base): S and R succeeded, D and A failed, T is not
# judged (throttled), M (misconfigured) opens it for longer.
BREAKER_KIND = {"S": "S", "R": "S", "D": "D", "A": "D", "T": "T", "M": "M"}


@dataclass(slots=True)
class Window:
    """health_record.lua's counts for one provider (throttled outcomes only in `throttled`)."""

    calls: int = 0
    successes: int = 0
    failures: int = 0
    slow: int = 0
    latency_ms: int = 0
    throttled: int = 0
    retry_after_ms: int | None = None  # the longest a THROTTLED answer asked for
    first_ms: int | None = None  # the first latency of the batch (not throttled)
    peak_ms: int = 0  # the largest (not throttled)
    histogram: list[int] = field(default_factory=lambda: [0] * len(HIST_BOUNDS_MS))

    def add(self, o: Observation, slow_ms: float) -> None:
        kind, latency = o.kind, o.latency_ms
        if kind == "T":
            self.throttled += 1
            if o.retry_after is not None:
                retry = round(o.retry_after * 1000)
                self.retry_after_ms = max(retry, self.retry_after_ms or 0)
            return
        self.calls += 1
        if kind in ("S", "R"):
            self.successes += 1
        else:
            self.failures += 1
        self.slow += latency > slow_ms
        self.latency_ms += latency
        self.histogram[hist_bucket(latency)] += 1
        self.first_ms = latency if self.first_ms is None else self.first_ms
        self.peak_ms = max(self.peak_ms, latency)

    def args(self) -> list[str | int]:
        """The provider's ARGV block, in health_record.lua's order."""
        retry = "" if self.retry_after_ms is None else self.retry_after_ms
        first = "" if self.first_ms is None else self.first_ms
        counts = [self.calls, self.successes, self.failures, self.slow, self.latency_ms]
        return [*counts, self.throttled, retry, first, self.peak_ms, *self.histogram]


@dataclass(slots=True)
class Tally:
    """Everything one provider's outcomes in a flush tell the health scripts."""

    window: Window = field(default_factory=Window)
    runs: list[tuple[str, int, int, int]] = field(default_factory=list)  # kind, slow, gen, n
    permits: list[str] = field(default_factory=list)

    def add(self, o: Observation, slow_ms: float) -> None:
        self.window.add(o, slow_ms)
        if o.permit:
            self.permits.append(o.permit)
        key = (BREAKER_KIND[o.kind], int(o.latency_ms > slow_ms), o.generation)
        last = self.runs[-1] if self.runs else None
        if last is not None and last[:3] == key:
            self.runs[-1] = (*key, last[3] + 1)
        else:
            self.runs.append((*key, 1))


def tally(observations: Sequence[Observation], slow_ms: dict[str, float]) -> dict[str, Tally]:
    """Each provider's tally, in order of first appearance; `slow_ms` its slow-call limit."""
    found: dict[str, Tally] = {}
    for o in observations:
        found.setdefault(o.provider, Tally()).add(o, slow_ms[o.provider])
    return found

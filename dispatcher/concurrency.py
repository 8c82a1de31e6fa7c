"""The in-flight limit, adapted to latency between `min_in_flight` and `max_in_flight` (AIMD).

Once per interval the limit moves on what the sends of that interval showed:

    gradient  = median over the interval's answers of  latency / baseline(provider)
    congested = gradient > latency_tolerance, or over CONGESTED_SHARE of the answers throttled
    congested            -> limit = max(floor, limit * DECREASE)      (multiplicative decrease)
    healthy, limit used  -> limit = min(ceiling, limit + step)        (additive increase)
                            (used: the peak in flight reached 90 % of it, or left no room
                            for another receive batch of 10)
    otherwise            -> unchanged (an idle limit proves nothing, so it does not grow)

`baseline(provider)` is the lowest interval median of that provider's latencies, let drift up
by BASELINE_DRIFT per interval, so that a provider that has become lastingly slower is taken
as it is after a while instead of throttling the worker forever. Each provider is judged
against its own baseline: a slow provider is not congested for being slow, and a brownout that
the strategy routes around does not cut the limit, since its few sends do not move the median.
When every provider slows down at once (they are saturated, or this process is) the limit
comes down and the rest of the work waits on the queue, where it is safe.

The limit starts at the ceiling. `floor == ceiling` turns adaptation off: then nothing is
counted (no interval ever closes to clear it).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict

import structlog

from dispatcher.config import DispatchSettings
from dispatcher.slots import Slots
from providers.base import Outcome, Status

log = structlog.get_logger("dispatcher.worker")
LIMIT_INTERVAL_SECONDS = 1.0

DEFAULT_FLOOR = 32
DECREASE = 0.75
INCREASE_STEPS = 32  # additive step = ceiling / INCREASE_STEPS: floor to ceiling in ~30 intervals
BASELINE_DRIFT = 1.05
BUSY_SHARE = 0.9  # the limit counts as used when the peak in-flight reached this share of it,
RECEIVE_BATCH = 10  # or left no room for another receive batch (pollers take 10 slots at once)
CONGESTED_SHARE = 0.25
MIN_SAMPLES = 8  # fewer answers in an interval: no verdict


class AdaptiveLimit:
    def __init__(self, policy: DispatchSettings) -> None:
        self.ceiling = policy.max_in_flight
        self.floor = policy.min_in_flight or min(DEFAULT_FLOOR, self.ceiling)
        self.tolerance = policy.latency_tolerance
        self.limit = self.ceiling
        self._step = max(1, self.ceiling // INCREASE_STEPS)
        self._latencies: dict[str, list[float]] = defaultdict(list)
        self._throttled = 0
        self._baseline: dict[str, float] = {}

    @property
    def fixed(self) -> bool:
        return self.floor >= self.ceiling

    @property
    def samples(self) -> int:
        """Answers counted in the current interval."""
        return self._throttled + sum(len(latencies) for latencies in self._latencies.values())

    def observe(self, outcome: Outcome) -> None:
        """Count one provider answer of the current interval; a fixed limit counts nothing."""
        if self.fixed:
            return
        if outcome.status is Status.THROTTLED:
            self._throttled += 1
        elif outcome.status in (Status.SENT, Status.REJECTED):
            self._latencies[outcome.provider].append(outcome.latency)

    def adjust(self, peak_in_flight: int) -> int:
        """Close the interval: move the limit on what it showed, and return the new limit."""
        ratios = self._ratios()
        answers = len(ratios) + self._throttled
        throttled, self._throttled = self._throttled, 0
        if self.fixed or answers < MIN_SAMPLES:
            return self.limit
        gradient = statistics.median(ratios) if ratios else 1.0
        if gradient > self.tolerance or throttled > CONGESTED_SHARE * answers:
            self.limit = max(self.floor, int(self.limit * DECREASE))
        elif peak_in_flight >= min(BUSY_SHARE * self.limit, self.limit - RECEIVE_BATCH):
            self.limit = min(self.ceiling, self.limit + self._step)
        return self.limit

    def _ratios(self) -> list[float]:
        """Each answer's latency over its provider's baseline; updates the baselines."""
        ratios: list[float] = []
        for provider, latencies in self._latencies.items():
            if not latencies:
                continue
            median = max(statistics.median(latencies), 1e-3)
            baseline = self._baseline.get(provider, median)
            ratios.extend(latency / baseline for latency in latencies)
            self._baseline[provider] = min(median, baseline * BASELINE_DRIFT)
            latencies.clear()
        return ratios


async def adapt_limit(limit: AdaptiveLimit, slots: Slots) -> None:
    """Once a second, move the in-flight limit on the latency of the last second's sends."""
    if limit.fixed:
        return
    while True:
        await asyncio.sleep(LIMIT_INTERVAL_SECONDS)
        before = slots.limit
        after = limit.adjust(slots.take_peak())
        if after != before:
            slots.resize(after)
            log.info("in_flight_limit", limit=after, was=before)

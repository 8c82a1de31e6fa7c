"""`p2c`: the reference balancer of the Finagle/Linkerd class, power of two choices + peak-EWMA.

Each eligible provider costs `latency * (in_flight + 1)`: `latency_ms` is the peak-EWMA the
snapshot carries (it jumps to a new peak at once and decays with a time constant), `in_flight`
this process's sends to it, counted one by one as Finagle does. A provider without fresh latency
(none, or older than `tuning.stale_seconds`) is costed at the lower median of the fresh ones, so
it gets tried; with no fresh data at all every provider costs the same.

Two distinct eligible providers are drawn uniformly at random and the cheaper one goes first
(a tie goes to either); the others follow in cost order as fallbacks. With one eligible provider
it is the order. The costliest provider never leads: it loses every pair it is drawn into.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from strategies.base import HealthSnapshot, ProviderView, Tuning
from strategies.scoring import MIN_LATENCY_MS, ascending, fresh_latency, lower_median


class PowerOfTwoChoices:
    def __init__(self, tuning: Tuning) -> None:
        self._tuning = tuning

    def rank(self, snapshot: HealthSnapshot, rng: random.Random) -> Sequence[str]:
        eligible = snapshot.eligible()
        if len(eligible) < 2:
            return [p.name for p in eligible]
        costs = self.costs(eligible)
        one, two = rng.sample(range(len(eligible)), 2)
        first = (
            one
            if costs[one] < costs[two] or (costs[one] == costs[two] and rng.random() < 0.5)
            else two
        )
        rest = [i for i in ascending(costs, rng) if i != first]
        return [eligible[first].name, *[eligible[i].name for i in rest]]

    def costs(self, eligible: Sequence[ProviderView]) -> list[float]:
        """Each provider's `latency * (in_flight + 1)`, unknown latency at the typical one."""
        latencies = [fresh_latency(p, self._tuning) for p in eligible]
        known = [latency for latency in latencies if latency is not None]
        typical = lower_median(known) if known else MIN_LATENCY_MS
        return [
            (typical if latency is None else latency) * (max(p.in_flight, 0) + 1)
            for p, latency in zip(eligible, latencies, strict=True)
        ]

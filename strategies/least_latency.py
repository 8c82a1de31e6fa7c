"""`least_latency`: the fastest provider first, without herding onto it.

Each eligible provider costs `latency * (in_flight + 1)` (Finagle's peak-EWMA cost; `latency_ms`
is already the peak-EWMA, `in_flight` this process's sends to it). A provider without fresh
latency (none, `age` None or older than `tuning.stale_seconds`) is costed pessimistically at the
slowest fresh latency, so it ties with the slowest and still gets tried now and then; with no
fresh data at all, every provider costs the same.

Providers are ordered by cost, ties in random order. Then the first place goes to one of the two
cheapest, with probability inversely proportional to cost: at costs `a <= b`, the cheaper one
leads `b / (a + b)` of the time. Comparing two candidates this way keeps near-equal providers
near-equal in share (a strict "always the cheaper" would send every replica to the same one);
a provider twenty times slower gets under 5 %. The rest follow in cost order as fallbacks.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from strategies.base import HealthSnapshot, Tuning
from strategies.scoring import MIN_LATENCY_MS, ascending, fresh_latency, load_cost


class LeastLatency:
    def __init__(self, tuning: Tuning) -> None:
        self._tuning = tuning

    def rank(self, snapshot: HealthSnapshot, rng: random.Random) -> Sequence[str]:
        eligible = snapshot.eligible()
        latencies = [fresh_latency(p, self._tuning) for p in eligible]
        known = [latency for latency in latencies if latency is not None]
        unknown = max(known, default=MIN_LATENCY_MS)
        costs = [
            load_cost(unknown if latency is None else latency, p)
            for p, latency in zip(eligible, latencies, strict=True)
        ]
        order = ascending(costs, rng)
        if len(order) >= 2:
            best, second = order[0], order[1]
            if rng.random() * (costs[best] + costs[second]) < costs[best]:
                order[0], order[1] = second, best
        return [eligible[i].name for i in order]

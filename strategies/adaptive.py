"""`adaptive`: a weight per eligible provider from its live health; the first choice is drawn in
proportion to the weights, the fallbacks follow in weight order.

For each eligible provider `p` (all factors are 1 when their signal is missing):

    base(p)    = weight * headroom * ramp * probe
    ramp       = max(slow_start_min_weight, (recovered_for / slow_start_seconds) ^ (1 / 1.0))
                 while recovered_for < slow_start_seconds (Envoy slow start), else 1
    probe      = 1 when the circuit is closed, PROBE_SHARE (0.05) otherwise (half-open)
    success    = success_rate ^ SUCCESS_EXPONENT (4), once calls >= MIN_CALLS (10)
    cost       = latency * (1 + in_flight / 32)       (peak-EWMA cost; see scoring.load_factor)
    r          = min(1, cheapest / cost)
    score(p)   = base(p) * success * r ^ LATENCY_EXPONENT (2)     while r >= 1 / outlier
               = base(p) * PROBE_SHARE when a sample is due, else ~0   beyond (an outlier)

`outlier` is `tuning.latency_outlier_ratio` (10): a provider costing more than that many times
the cheapest is a latency outlier. It is never a first choice, except for one sample at a time
when its last answer is OUTLIER_SAMPLE_SECONDS (10) old and none of this process's sends to it
is in flight: a deep brownout then gets a sample every 10 s or so, however many messages flow
(the samples that tell when it is over), while near-equal providers share exactly as before.

`cheapest` is the lowest cost among healthy providers (see panic below), or among all when none
is healthy; capping `speed` at 1 keeps a failing provider's fast errors from earning it share.

Only a trusted provider's window data counts: closed circuit and `age <= stale_seconds`. For any
other (stale, never measured, half-open) the success factor is 1 and the latency is the typical
one: the lower median of the trusted latencies. `in_flight`, `headroom`, the ramp and the probe
share are local and current, so they always count.

Panic: a provider is healthy when its circuit is closed and it is not judged failing (trusted,
calls >= MIN_CALLS and success_rate < HEALTHY_SUCCESS). When healthy providers make up less than
`panic_threshold` of the enabled ones (weight > 0, available or not), the window data is
distrusted and `score(p) = base(p)`: traffic spreads over every eligible provider by static
weight, within its headroom, instead of piling onto one survivor.

What this gives (three equal providers unless said): a 20x or 50x brownout (issue 11's 1,000 ms
against 20 ms) gets one sample per 10 s, 0.05 % of first choices at 200 msg/s; a 10x one weighs
1/100; an outage (success ~0) weighs ~0; equal
peers share evenly, and near-equal ones nearly evenly, since the first choice is a weighted draw,
not a comparison (a comparison would send every replica to the same marginally better
provider). 10 % slower costs about 17 % of the weight, 10 % errors about 34 %.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from strategies.base import Circuit, HealthSnapshot, ProviderView, Tuning
from strategies.scoring import (
    MIN_LATENCY_MS,
    descending,
    load_factor,
    lower_median,
    slow_start,
    usable_latency,
    weighted_index,
)

MIN_CALLS = 10  # fewer calls in the window: no verdict on the success rate
SUCCESS_EXPONENT = 4
LATENCY_EXPONENT = 2
HEALTHY_SUCCESS = 0.5  # below this success rate (with MIN_CALLS) a provider counts as failing
PROBE_SHARE = 0.05  # a half-open provider's weight relative to a healthy peer's
# A latency outlier is sampled once this often (by the age of its last answer), at a probe's
# share, and not at all while that sample is out; in between it is never a first choice.
OUTLIER_SAMPLE_SECONDS = 10.0
_FLOOR = 1e-12  # every eligible provider keeps a positive weight, so the draw is well defined

# One provider's signals: (base, success factor, trusted latency in ms or None, load, healthy),
# load being `load_factor`. A plain tuple, not a NamedTuple: this runs for every provider of
# every message.
_Signals = tuple[float, float, float | None, float, bool]


class Adaptive:
    def __init__(self, tuning: Tuning) -> None:
        self._tuning = tuning

    def rank(self, snapshot: HealthSnapshot, rng: random.Random) -> Sequence[str]:
        eligible = snapshot.eligible()
        if not eligible:
            return []
        scores = self._scores(snapshot, eligible)
        first = weighted_index(scores, rng)
        rest = descending(scores, rng)
        return [eligible[first].name, *[eligible[i].name for i in rest if i != first]]

    def weights(self, snapshot: HealthSnapshot) -> dict[str, float]:
        """Each eligible provider's weight now, for logs and the simulator."""
        eligible = snapshot.eligible()
        scores = self._scores(snapshot, eligible) if eligible else []
        return {p.name: score for p, score in zip(eligible, scores, strict=True)}

    def _scores(self, snapshot: HealthSnapshot, eligible: list[ProviderView]) -> list[float]:
        tuning = self._tuning
        signals = [_read(p, tuning) for p in eligible]
        healthy = [s[4] for s in signals]
        enabled = len([p for p in snapshot.providers if p.weight > 0])
        if sum(healthy) < tuning.panic_threshold * enabled:
            return [s[0] or _FLOOR for s in signals]
        costs = _costs(signals)
        cheapest = min([cost for cost, ok in zip(costs, healthy, strict=True) if ok] or costs)
        knee = 1 / max(tuning.latency_outlier_ratio, 1.0)
        return [
            _sampled(p, s[0])
            if cheapest / cost < knee
            else s[0] * s[1] * _speed(cheapest / cost) or _FLOOR
            for p, s, cost in zip(eligible, signals, costs, strict=True)
        ]


def _sampled(p: ProviderView, base: float) -> float:
    """A latency outlier's weight: a probe's share when a sample of it is due (none in flight
    here, its last answer OUTLIER_SAMPLE_SECONDS old), else the floor. Its samples then come at a
    steady pace, however many messages flow, and tell when the brownout is over."""
    due = p.in_flight <= 0 and (p.age is None or p.age >= OUTLIER_SAMPLE_SECONDS)
    return base * PROBE_SHARE if due and base > 0 else _FLOOR


def _read(p: ProviderView, tuning: Tuning) -> _Signals:
    """Its signals, trusting window data only when fresh and its circuit is closed."""
    closed = p.circuit is Circuit.CLOSED
    base = p.weight * _unit(p.headroom) * (1.0 if closed else PROBE_SHARE)
    if p.recovered_for is not None:
        base *= slow_start(p, tuning)
    load = load_factor(p)
    if not closed or p.age is None or p.age > tuning.stale_seconds:
        return base, 1.0, None, load, closed
    latency = usable_latency(p.latency_ms)
    if p.calls < MIN_CALLS:
        return base, 1.0, latency, load, True
    rate = _unit(1 - p.failures / p.calls)
    return base, rate**SUCCESS_EXPONENT, latency, load, rate >= HEALTHY_SUCCESS


def _costs(signals: list[_Signals]) -> list[float]:
    """`latency * load` each; a provider without trusted latency gets the typical one."""
    known = [s[2] for s in signals if s[2] is not None]
    if len(known) == len(signals):
        return [latency * load for _, _, latency, load, _ in signals if latency is not None]
    typical = lower_median(known) if known else MIN_LATENCY_MS
    return [(typical if s[2] is None else s[2]) * s[3] for s in signals]


def _unit(value: float) -> float:
    """`value` clamped to 0..1."""
    return value if 0.0 <= value <= 1.0 else (0.0 if value < 0.0 else 1.0)


def _speed(ratio: float) -> float:
    """The speed factor of `ratio` = cheapest / cost: 1 at or under the cheapest healthy cost (a
    failing provider's fast errors earn it nothing more), else its square."""
    return 1.0 if ratio >= 1.0 else ratio**LATENCY_EXPONENT

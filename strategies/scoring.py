"""Helpers shared by the scoring strategies: trusted signals, slow start and random draws.

Every draw takes the caller's `random.Random`, so a strategy built on these stays a pure function
of its snapshot and its random source.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from strategies.base import ProviderView, Tuning

MIN_LATENCY_MS = 1.0  # latencies below this are noise; also keeps every cost above zero
SLOW_START_AGGRESSION = 1.0  # Envoy's default: a linear ramp


def is_fresh(view: ProviderView, tuning: Tuning) -> bool:
    """Whether the provider's window data is recent enough to judge it by."""
    return view.age is not None and view.age <= tuning.stale_seconds


def usable_latency(latency_ms: float | None) -> float | None:
    """A latency fit to compute with: at least MIN_LATENCY_MS; None when missing or not finite."""
    if latency_ms is None or not math.isfinite(latency_ms):
        return None
    return max(latency_ms, MIN_LATENCY_MS)


def fresh_latency(view: ProviderView, tuning: Tuning) -> float | None:
    """Its usable peak-EWMA latency in ms, or None when it has none or it is stale."""
    return usable_latency(view.latency_ms) if is_fresh(view, tuning) else None


# An email API serves dozens of concurrent requests without slowing down (and when it does, the
# peak-EWMA latency shows it), so in-flight sends weigh in per IN_FLIGHT_SCALE, not one by one
# as in Finagle's per-host cost: otherwise a few queued sends would make a 20x slower provider
# look cheaper than a busy healthy one.
IN_FLIGHT_SCALE = 32.0


def load_factor(view: ProviderView) -> float:
    """1 + this process's sends in flight to it, per IN_FLIGHT_SCALE."""
    return 1.0 + max(view.in_flight, 0) / IN_FLIGHT_SCALE


def load_cost(latency_ms: float, view: ProviderView) -> float:
    """Peak-EWMA cost: latency times the load factor."""
    return latency_ms * load_factor(view)


def slow_start(view: ProviderView, tuning: Tuning) -> float:
    """Envoy's ramp after recovery: `max(min_weight, (t / window) ^ (1 / aggression))`."""
    elapsed, window = view.recovered_for, tuning.slow_start_seconds
    if elapsed is None or window <= 0 or elapsed >= window:
        return 1.0
    ramp = math.pow(max(elapsed, 0.0) / window, 1 / SLOW_START_AGGRESSION)
    return max(tuning.slow_start_min_weight, ramp)


def lower_median(values: Sequence[float]) -> float:
    """The middle value; of an even count, the lower of the two middle ones."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def weighted_index(weights: Sequence[float], rng: random.Random) -> int:
    """One index drawn with probability proportional to its (positive) weight."""
    point = rng.random() * sum(weights)
    for index, weight in enumerate(weights):
        point -= weight
        if point < 0:
            return index
    return len(weights) - 1  # rounding left a sliver past the end


def ascending(keys: Sequence[float], rng: random.Random) -> list[int]:
    """Indices ordered by key, smallest first; equal keys in random order, so no one herds."""
    ties = [rng.random() for _ in keys]
    return [index for _, _, index in sorted(zip(keys, ties, range(len(keys)), strict=True))]


def descending(keys: Sequence[float], rng: random.Random) -> list[int]:
    """Indices ordered by key, largest first; equal keys in random order (drawn only if any)."""
    if len(set(keys)) == len(keys):
        return sorted(range(len(keys)), key=keys.__getitem__, reverse=True)
    return ascending([-key for key in keys], rng)


def weighted_shuffle(weights: Sequence[float], rng: random.Random) -> list[int]:
    """Indices in weighted-random order without replacement (an exponential race).

    Each index draws an exponential time with rate equal to its weight; the earliest goes first.
    So the first is drawn with probability `w / sum(w)`, the next likewise among the rest, and so
    on, at one draw per index.
    """
    arrivals = [rng.expovariate(weight) for weight in weights]
    return sorted(range(len(weights)), key=arrivals.__getitem__)

"""The `Strategy` protocol and the plain-data health snapshot strategies decide from.

A strategy is a pure function: given the same snapshot and the same random source it returns
the same order. It knows nothing of Redis, SQS or the worker, so tests and the routing simulator
can drive it under virtual time.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Circuit(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class ProviderView:
    """What a strategy may know about one provider at one instant."""

    name: str
    weight: float = 1.0  # static weight from config; 0 disables the provider
    available: bool = True  # may take a message now: not open, not throttled, has a permit
    circuit: Circuit = Circuit.CLOSED
    calls: int = 0  # calls in the sliding window
    failures: int = 0  # calls counted against the provider (down, ambiguous)
    slow: int = 0  # calls slower than the slow-call threshold
    latency_ms: float | None = None  # peak-EWMA latency; None without data
    p50_ms: float | None = None
    p95_ms: float | None = None
    in_flight: int = 0  # this process's sends to it now
    headroom: float = 1.0  # share of its rate limit free now, 0..1 (1 when unlimited)
    recovered_for: float | None = None  # seconds since its circuit closed after being open
    age: float | None = None  # seconds since its newest data; None when it never had any

    @property
    def success_rate(self) -> float | None:
        return 1 - self.failures / self.calls if self.calls else None


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Every configured provider, in config order, plus a decision counter."""

    providers: tuple[ProviderView, ...]
    now: float = 0.0  # seconds, on whatever clock the caller drives
    sequence: int = 0  # how many routing decisions came before this one

    def eligible(self) -> list[ProviderView]:
        return [p for p in self.providers if p.weight > 0 and p.available]


@dataclass(frozen=True, slots=True)
class Tuning:
    """Routing parameters shared by the strategies (from the `[routing]` config section)."""

    stale_seconds: float = 60.0  # data older than this is ignored: neutral weight
    slow_start_seconds: float = 30.0  # after recovery, weight ramps up over this long
    slow_start_min_weight: float = 0.1  # the ramp starts at this share of full weight
    panic_threshold: float = 0.5  # under this share of healthy providers: spread on purpose
    latency_outlier_ratio: float = 10.0  # adaptive: a cost over this x the cheapest is an outlier


class Strategy(Protocol):
    """Order the providers to try for one message, best first; an empty order means shed."""

    def rank(self, snapshot: HealthSnapshot, rng: random.Random) -> Sequence[str]: ...

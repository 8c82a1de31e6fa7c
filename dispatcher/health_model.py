"""Provider health: the plain data shared by the worker, the Redis store (`dispatcher.health`)
and the in-process store (`dispatcher.health_local`), and the contract both stores keep.

How an outcome counts (`Observation.kind`)::

    S  SENT                     success
    R  REJECTED                 success for provider health: the provider worked, the mail was bad
    T  THROTTLED                counted apart: never a failure, never trips the breaker
    D  DOWN                     failure
    A  AMBIGUOUS                failure (timeout, reset: the provider may have accepted it)
    M  DOWN and misconfigured   failure that opens the breaker at once, for a long time

The breaker of one provider, shared by every replica::

    closed --(failure or slow-call rate over minimum_calls, consecutive failures)--> open
    closed / half_open --(misconfigured)--> open for misconfigured_open_seconds
    open --(open_until passed)--> half_open --(half_open_successes)--> closed
    half_open --(any failure or slow call)--> open, for longer (doubling, jittered, capped)

Every transition bumps the generation; an outcome routed under an older generation still counts
in the window but never moves the breaker.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from dispatcher.config import ProviderSettings
from providers.base import Outcome, Status
from strategies.base import Circuit, HealthSnapshot, ProviderView

# Upper bounds of the latency histogram: 12 log-spaced buckets from 5 ms to 30 s (the last one
# also holds anything slower).
HIST_BOUNDS_MS: tuple[float, ...] = tuple(5.0 * 6000.0 ** (i / 11) for i in range(12))
JITTER = 0.2  # open times vary by +-20 %

_KINDS = {
    Status.SENT: "S",
    Status.REJECTED: "R",
    Status.THROTTLED: "T",
    Status.DOWN: "D",
    Status.AMBIGUOUS: "A",
}


def hist_bucket(latency_ms: float) -> int:
    """The histogram bucket (0..11) of one latency."""
    return min(bisect.bisect_left(HIST_BOUNDS_MS, latency_ms), len(HIST_BOUNDS_MS) - 1)


def percentile(histogram: Sequence[int], q: float) -> float | None:
    """The `q` quantile (0..1) in ms, interpolated inside its bucket; None without data."""
    total = sum(histogram)
    if not total:
        return None
    target, seen = q * total, 0
    for i, count in enumerate(histogram):
        if count and seen + count >= target:
            low = HIST_BOUNDS_MS[i - 1] if i else 0.0
            return low + (HIST_BOUNDS_MS[i] - low) * (target - seen) / count
        seen += count
    return HIST_BOUNDS_MS[-1]


@dataclass(frozen=True, slots=True)
class Observation:
    """One send outcome to record."""

    provider: str
    status: Status
    latency: float = 0.0  # seconds spent in the provider call
    misconfigured: bool = False
    retry_after: float | None = None  # seconds, from a THROTTLED answer
    generation: int = 0  # the breaker generation the caller saw when it routed
    permit: str | None = None  # the probe permit token it held, if any

    @classmethod
    def of(cls, outcome: Outcome, generation: int, permit: Permit | None = None) -> Observation:
        return cls(
            outcome.provider,
            outcome.status,
            outcome.latency,
            outcome.misconfigured,
            outcome.retry_after,
            generation,
            permit.token if permit else None,
        )

    @property
    def kind(self) -> str:
        return "M" if self.misconfigured and self.status is Status.DOWN else _KINDS[self.status]

    @property
    def latency_ms(self) -> int:
        return round(self.latency * 1000)


@dataclass(frozen=True, slots=True)
class Permit:
    """A half-open probe permit: send one message under it, then record or release it."""

    provider: str
    token: str
    generation: int


@dataclass(frozen=True, slots=True)
class ProbeGrant:
    """The answer to a permit request: the circuit now and the permits granted (half-open only;
    a closed circuit needs none, an open one grants none)."""

    circuit: Circuit
    generation: int
    permits: tuple[Permit, ...] = ()


@dataclass(frozen=True, slots=True)
class RateGrant:
    granted: int
    wait: float = 0.0  # seconds until the next token is free


@dataclass(frozen=True, slots=True)
class ProviderHealth:
    """One provider at one instant. Times are epoch seconds on the store's clock."""

    name: str
    at: float  # when this was read
    circuit: Circuit = Circuit.CLOSED
    generation: int = 0
    trips: int = 0  # opens since the last sustained healthy spell
    calls: int = 0  # window: successes + failures (throttled answers are not calls)
    successes: int = 0
    failures: int = 0
    throttled: int = 0
    slow: int = 0
    latency_sum_ms: int = 0
    histogram: tuple[int, ...] = (0,) * len(HIST_BOUNDS_MS)
    ewma_ms: float | None = None  # peak-EWMA latency
    open_until: float | None = None
    throttled_until: float | None = None
    permits_in_use: int = 0
    tokens: float | None = None  # rate tokens free now; None when unlimited
    headroom: float = 1.0  # tokens / burst, 0..1; 1 when unlimited
    closed_at: float | None = None  # when it last closed after being open
    last_seen: float | None = None  # newest outcome

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.histogram, 0.50)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.histogram, 0.95)


class HealthStore(Protocol):
    """What the worker needs from a health store; `Health` (Redis) and `LocalHealth` keep it."""

    async def record(self, observations: Sequence[Observation]) -> None: ...

    async def snapshot(self) -> dict[str, ProviderHealth]: ...

    async def acquire_permits(self, wants: Mapping[str, int]) -> dict[str, ProbeGrant]: ...

    async def release(self, permits: Sequence[Permit]) -> None: ...

    async def take(self, wants: Mapping[str, int]) -> dict[str, RateGrant]: ...


def rate_params(provider: ProviderSettings) -> tuple[float, float] | None:
    """(emission interval in ms, burst) of a provider's rate limit; None when unlimited."""
    if provider.rate_limit <= 0:
        return None
    burst = float(provider.burst) if provider.burst > 0 else max(1.0, provider.rate_limit)
    return 1000.0 / provider.rate_limit, burst


def jitter_draws(providers: Sequence[str], rng: random.Random) -> list[float]:
    """One random draw per provider of a batch (used only if that provider trips)."""
    return [rng.random() for _ in providers]


def batch_providers(observations: Sequence[Observation]) -> list[str]:
    """The providers of a batch, in order of first appearance."""
    return list(dict.fromkeys(o.provider for o in observations))


def view(
    health: ProviderHealth,
    settings: ProviderSettings,
    in_flight: int = 0,
    pending_ms: float | None = None,
) -> ProviderView:
    """What a strategy sees of one provider, given this process's sends to it now.

    `pending_ms`, the mean age of those sends, floors the latency: answers that are late count
    before they come back (once the provider has a latency at all)."""
    probe_free = (
        health.circuit is Circuit.HALF_OPEN
        and health.permits_in_use < settings.breaker.half_open_permits
    )
    throttled = health.throttled_until is not None and health.throttled_until > health.at
    has_token = health.tokens is None or health.tokens >= 1 - 1e-9
    recovered_for = None
    if health.circuit is Circuit.CLOSED and health.closed_at is not None:
        recovered_for = max(0.0, health.at - health.closed_at)
    return ProviderView(
        name=health.name,
        weight=settings.weight,
        available=(health.circuit is Circuit.CLOSED or probe_free) and not throttled and has_token,
        circuit=health.circuit,
        calls=health.calls,
        failures=health.failures,
        slow=health.slow,
        latency_ms=_floored(health.ewma_ms, pending_ms),
        p50_ms=health.p50_ms,
        p95_ms=health.p95_ms,
        in_flight=in_flight,
        headroom=health.headroom,
        recovered_for=recovered_for,
        age=None if health.last_seen is None else max(0.0, health.at - health.last_seen),
    )


def _floored(ewma_ms: float | None, pending_ms: float | None) -> float | None:
    if ewma_ms is None or pending_ms is None:
        return ewma_ms
    return max(ewma_ms, pending_ms)


def routing_snapshot(
    report: Mapping[str, ProviderHealth],
    providers: Sequence[ProviderSettings],
    in_flight: Mapping[str, int],
    sequence: int = 0,
    pending_ms: Mapping[str, float] | None = None,
) -> HealthSnapshot:
    """A strategy's input: every configured provider in config order."""
    pending = pending_ms or {}
    views = tuple(
        view(report[p.name], p, in_flight.get(p.name, 0), pending.get(p.name)) for p in providers
    )
    now = max((h.at for h in report.values()), default=0.0)
    return HealthSnapshot(views, now, sequence)

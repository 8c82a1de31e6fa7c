"""Provider health: the plain data shared by the worker and both stores (`RedisHealth`, the Lua
scripts; `MemoryHealth`, the in-process copy), the contract both keep, and the one rule for
whether a provider may take a send now (`blocks`, `available`).

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

An operator's override (`dispatcher provider drain|open|close NAME`), read with the snapshot,
is applied on top of the shared state by `with_override`: `open` shows the circuit open, `close`
shows it closed (the breaker keeps counting underneath), and `drain` blocks new sends
(`Block.DRAINED`) whatever the circuit.
"""

from __future__ import annotations

import bisect
import enum
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from dispatcher.config import ProviderSettings
from providers.base import Outcome, Status
from strategies.base import Circuit

# Upper bounds of the latency histogram: 12 log-spaced buckets from 5 ms to 30 s (the last one
# also holds anything slower). The Lua scripts are told how many there are.
HIST_BOUNDS_MS: tuple[float, ...] = tuple(5.0 * 6000.0 ** (i / 11) for i in range(12))
JITTER = 0.2  # open times vary by +-20 % (passed to breaker_record.lua)
FAILED_KINDS = frozenset("DAM")  # the outcomes that extend a streak of failures

_KINDS = {
    Status.SENT: "S",
    Status.REJECTED: "R",
    Status.THROTTLED: "T",
    Status.DOWN: "D",
    Status.AMBIGUOUS: "A",
}


def kind_of(status: Status, misconfigured: bool = False) -> str:
    """How one outcome counts: S R T D A M (the table above)."""
    return "M" if misconfigured and status is Status.DOWN else _KINDS[status]


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
        return kind_of(self.status, self.misconfigured)

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
class Booking:
    """What `reserve` booked for one provider's first choices: its probe permits (half-open
    only) and its rate tokens (all wanted when unlimited; a probe's, one per permit)."""

    rate: RateGrant
    permits: tuple[Permit, ...] = ()


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
    override: str | None = None  # an operator's override: drain, open or close (`Override`)
    override_until: float | None = None  # when it expires; None: never

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.histogram, 0.50)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.histogram, 0.95)


class HealthStore(Protocol):
    """A provider health store: `RedisHealth`, `MemoryHealth` and `ResilientHealth` keep it."""

    async def record(self, observations: Sequence[Observation]) -> None: ...

    async def snapshot(self) -> dict[str, ProviderHealth]: ...

    async def acquire_permits(self, wants: Mapping[str, int]) -> dict[str, ProbeGrant]: ...

    async def release(self, permits: Sequence[Permit]) -> None: ...

    async def take(self, wants: Mapping[str, int]) -> dict[str, RateGrant]: ...

    async def reserve(
        self, firsts: Mapping[str, int], probes: Collection[str]
    ) -> dict[str, Booking]:
        """For `firsts[provider]` first choices each: probe permits for the providers in
        `probes` (half-open when routed), then rate tokens (a probe's only with its permit)."""
        ...


class Override(enum.StrEnum):
    """An operator's override of one provider, honoured by every replica until it expires."""

    DRAIN = "drain"  # take no new sends
    OPEN = "open"  # the circuit is open, whatever the breaker says
    CLOSE = "close"  # the circuit is closed, whatever the breaker says


def with_override(health: ProviderHealth, mode: str | None, until: float | None) -> ProviderHealth:
    """`health` as routing must see it under the override `mode` (None, unknown or expired by
    `until`: none)."""
    if mode not in tuple(Override) or (until is not None and until <= health.at):
        return health
    if mode == Override.OPEN:
        health = replace(health, circuit=Circuit.OPEN, open_until=until)
    elif mode == Override.CLOSE:
        health = replace(health, circuit=Circuit.CLOSED, open_until=None)
    return replace(health, override=mode, override_until=until)


class Block(enum.Enum):
    """What keeps a provider from taking a send now."""

    DRAINED = "drained"  # an operator drains it
    HELD = "held"  # this process has just seen it fail repeatedly (the fast trip)
    OPEN = "open"  # its breaker is open
    PROBE = "probe"  # half-open: only a probe may go, under a permit (one is free)
    PROBES_TAKEN = "probes_taken"  # half-open, and every probe permit is in use
    THROTTLED = "throttled"  # it asked us to back off
    NO_TOKEN = "no_token"  # its rate limit has no token free now


def blocks(
    health: ProviderHealth, settings: ProviderSettings, held_for: float = 0.0
) -> dict[Block, float | None]:
    """The one "available" rule: what keeps one provider from taking a send now, each with the
    seconds until it ends (None: unknown). `held_for`: seconds left on a local hold."""
    found: dict[Block, float | None] = {}
    if health.override == Override.DRAIN:
        until = health.override_until
        found[Block.DRAINED] = None if until is None else until - health.at
    if held_for > 0:
        found[Block.HELD] = held_for
    if health.circuit is Circuit.OPEN:
        found[Block.OPEN] = None if health.open_until is None else health.open_until - health.at
    elif health.circuit is Circuit.HALF_OPEN:
        taken = health.permits_in_use >= settings.breaker.half_open_permits
        found[Block.PROBES_TAKEN if taken else Block.PROBE] = None
    if health.throttled_until is not None and health.throttled_until > health.at:
        found[Block.THROTTLED] = health.throttled_until - health.at
    if health.tokens is not None and health.tokens < 1 - 1e-9:
        rate = rate_params(settings)
        found[Block.NO_TOKEN] = None if rate is None else (1 - health.tokens) * rate[0] / 1000
    return found


# What each caller lets pass: a strategy may route a probe to a half-open provider; a failover
# (closed circuits only) and a message waiting for a token take their token themselves.
FOR_STRATEGY = frozenset({Block.PROBE})
FOR_FAILOVER = frozenset({Block.THROTTLED, Block.NO_TOKEN})
FOR_TOKEN_WAIT = frozenset({Block.NO_TOKEN})


def available(
    health: ProviderHealth,
    settings: ProviderSettings,
    held: bool = False,
    waive: frozenset[Block] = FOR_STRATEGY,
) -> bool:
    """May this provider take a send now, `waive` aside? (`blocks` is the rule.)"""
    return not blocks(health, settings, 1.0 if held else 0.0).keys() - waive


def rate_params(provider: ProviderSettings) -> tuple[float, float] | None:
    """(emission interval in ms, burst) of a provider's rate limit; None when unlimited.

    Without a `burst` the bucket holds one token: sends are spaced one interval apart, so no
    one-second window at the provider sees more than `rate_limit` of them, across every replica
    (SES, for one, enforces its maximum send rate per second). A `burst` of N lets N go at once
    after a quiet spell, so a window can then see up to `rate_limit + N - 1`."""
    if provider.rate_limit <= 0:
        return None
    burst = float(provider.burst) if provider.burst > 0 else 1.0
    return 1000.0 / provider.rate_limit, burst


def jitter_draws(providers: Sequence[str], rng: random.Random) -> list[float]:
    """One random draw per provider of a batch (used only if that provider trips)."""
    return [rng.random() for _ in providers]


def batch_providers(observations: Sequence[Observation]) -> list[str]:
    """The providers of a batch, in order of first appearance."""
    return list(dict.fromkeys(o.provider for o in observations))

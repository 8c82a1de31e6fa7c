"""Provider health kept in this process's memory: the same contract and state machine as
`RedisHealth` (its Lua scripts are the reference), used while Redis is unreachable so routing
and breakers keep working, only no longer shared between replicas.

The rules it shares with the Lua scripts are written once, in `dispatcher.health.rules`.
Times are integer milliseconds, as in the scripts, so the two stores agree to the millisecond.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from dispatcher.config import ProviderSettings, RoutingSettings
from dispatcher.health.base import (
    HIST_BOUNDS_MS,
    JITTER,
    Booking,
    Observation,
    Permit,
    ProbeGrant,
    ProviderHealth,
    RateGrant,
    batch_providers,
    hist_bucket,
    jitter_draws,
    rate_params,
    with_override,
)
from dispatcher.health.rules import (
    gcra_free,
    gcra_take,
    half_open_due,
    streak,
    streak_trips,
    trips_reset,
)
from strategies.base import Circuit

# Window columns: calls, successes, failures, throttled, slow, latency sum (ms); then what the
# breaker judged (current-generation outcomes while closed): calls, failed, slow; then histogram.
CALLS, OK, FAILED, THROTTLED, SLOW, LATENCY, JUDGED, JUDGED_FAILED, JUDGED_SLOW, HIST = range(10)
_COLUMNS = HIST + len(HIST_BOUNDS_MS)


@dataclass(slots=True)
class _Book:
    """One provider's health: the fields of the Redis window, state, permits and rate keys."""

    window: dict[int, list[int]] = field(default_factory=dict)  # bucket -> columns
    circuit: Circuit = Circuit.CLOSED
    gen: int = 0
    trips: int = 0
    open_until: int = 0
    consec: int = 0
    half_ok: int = 0
    closed_at: int | None = None
    throttle_until: int | None = None
    last_seen: int | None = None
    ewma: float | None = None
    ewma_at: int = 0
    permits: dict[str, float] = field(default_factory=dict)  # token -> lease expiry
    permit_seq: int = 0
    tat: float = 0.0


class MemoryHealth:
    """`HealthStore` in memory. `clock` is epoch seconds (default `time.time`); `ahead_seconds`
    as in `RedisHealth`."""

    def __init__(
        self,
        providers: Sequence[ProviderSettings],
        routing: RoutingSettings,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        *,
        ahead_seconds: float = 0.0,
    ) -> None:
        self._ahead_ms = ahead_seconds * 1000
        self.settings = tuple(providers)
        self._settings = {p.name: p for p in providers}
        self._books = {p.name: _Book() for p in providers}
        self._bucket_ms = routing.bucket_seconds * 1000
        self._buckets = routing.window_seconds // routing.bucket_seconds
        self._tau_ms = routing.latency_decay_seconds * 1000
        self._clock = clock or time.time
        self._rng = rng or random.Random()
        self._overrides: dict[str, tuple[str, float | None]] = {}  # the last seen in Redis

    def remember_overrides(self, report: Mapping[str, ProviderHealth]) -> None:
        """Keep the operators' overrides of a shared snapshot, applied while Redis is away."""
        self._overrides = {
            name: (h.override, h.override_until) for name, h in report.items() if h.override
        }

    def _now(self) -> int:
        return int(self._clock() * 1000)

    async def record(self, observations: Sequence[Observation]) -> None:
        if not observations:
            return
        now = self._now()
        names = batch_providers(observations)
        draws = dict(zip(names, jitter_draws(names, self._rng), strict=True))
        for o in observations:  # first every window (health_record.lua) ...
            self._count(o, now)
        judged: set[str] = set()
        for o in observations:  # ... then every breaker (breaker_record.lua)
            if self._judge(o, now, draws[o.provider]):
                judged.add(o.provider)
        for name in names:
            closed = self._books[name].circuit is Circuit.CLOSED
            if name in judged and closed and self._rates_trip(name, now):
                self._trip(name, now, draws[name], misconfigured=False)

    def _count(self, o: Observation, now: int) -> None:
        book, breaker = self._books[o.provider], self._settings[o.provider].breaker
        current = now // self._bucket_ms
        for expired in [b for b in book.window if b <= current - self._buckets]:
            del book.window[expired]
        row = book.window.setdefault(current, [0] * _COLUMNS)
        if o.kind == "T":
            row[THROTTLED] += 1
            if o.retry_after is not None:
                wait = min(round(o.retry_after * 1000), round(breaker.open_max_seconds * 1000))
                book.throttle_until = max(book.throttle_until or 0, now + wait)
        else:
            latency = o.latency_ms
            row[CALLS] += 1
            row[OK if o.kind in ("S", "R") else FAILED] += 1
            row[SLOW] += latency > breaker.slow_call_seconds * 1000
            row[LATENCY] += latency
            row[HIST + hist_bucket(latency)] += 1
            value = float(latency)
            if book.ewma is not None and latency < book.ewma:  # peak EWMA
                keep = math.exp(-max(0, now - book.ewma_at) / self._tau_ms)
                value = book.ewma * keep + latency * (1 - keep)
            book.ewma, book.ewma_at = value, now
        book.last_seen = now

    def _judge(self, o: Observation, now: int, draw: float) -> bool:
        """Move the breaker on one outcome; True when a closed breaker judged it."""
        book, breaker = self._books[o.provider], self._settings[o.provider].breaker
        if o.permit is not None:
            book.permits.pop(o.permit, None)
        if o.kind == "T" or o.generation != book.gen:
            return False
        bad, slow = o.kind in ("D", "A"), o.latency_ms > breaker.slow_call_seconds * 1000
        if o.kind == "M" and book.circuit is Circuit.OPEN:
            longer = now + breaker.misconfigured_open_seconds * 1000
            book.open_until = math.floor(max(book.open_until, longer))
        elif o.kind == "M":
            self._trip(o.provider, now, draw, misconfigured=True)
        elif book.circuit is Circuit.HALF_OPEN and (bad or slow):
            self._trip(o.provider, now, draw, misconfigured=False)
        elif book.circuit is Circuit.HALF_OPEN:
            book.half_ok += 1
            if book.half_ok >= breaker.half_open_successes:
                self._close(o.provider, now)
        elif book.circuit is Circuit.CLOSED:
            row = book.window.setdefault(now // self._bucket_ms, [0] * _COLUMNS)
            row[JUDGED] += 1
            row[JUDGED_SLOW] += slow
            row[JUDGED_FAILED] += bad
            book.consec = streak(book.consec, o.kind)
            if streak_trips(book.consec, o.kind, breaker):
                self._trip(o.provider, now, draw, misconfigured=False)
            return True
        return False

    def _trip(self, name: str, now: int, draw: float, misconfigured: bool) -> None:
        book, breaker = self._books[name], self._settings[name].breaker
        if trips_reset(book.circuit, book.closed_at, now, breaker):
            book.trips = 0
        book.trips += 1
        open_ms = breaker.misconfigured_open_seconds * 1000
        if not misconfigured:
            grown = breaker.open_seconds * 1000 * 2 ** (book.trips - 1)
            open_ms = min(breaker.open_max_seconds * 1000, grown * (1 - JITTER + 2 * JITTER * draw))
        book.circuit, book.open_until = Circuit.OPEN, math.floor(now + open_ms)
        book.consec = book.half_ok = 0
        book.gen += 1
        book.permits.clear()

    def _close(self, name: str, now: int) -> None:
        book = self._books[name]
        book.circuit, book.closed_at = Circuit.CLOSED, now
        book.consec = book.half_ok = 0
        book.gen += 1
        book.permits.clear()
        book.window.clear()  # old failures must not re-trip it at once

    def _sums(self, book: _Book, now: int) -> list[int]:
        oldest = now // self._bucket_ms - self._buckets + 1
        rows = [row for b, row in book.window.items() if b >= oldest]
        return [sum(column) for column in zip(*rows, strict=True)] if rows else [0] * _COLUMNS

    def _rates_trip(self, name: str, now: int) -> bool:
        sums, breaker = self._sums(self._books[name], now), self._settings[name].breaker
        calls = sums[JUDGED]
        return calls >= breaker.minimum_calls and (
            sums[JUDGED_FAILED] >= breaker.error_rate_threshold * calls
            or sums[JUDGED_SLOW] >= breaker.slow_call_rate_threshold * calls
        )

    def _due(self, book: _Book, now: int) -> None:
        """The transitions time alone causes; reclaim expired permits."""
        if half_open_due(book.circuit, book.open_until, now):
            book.circuit, book.half_ok = Circuit.HALF_OPEN, 0
            book.gen += 1
            book.permits.clear()
        for token in [t for t, expiry in book.permits.items() if expiry <= now]:
            del book.permits[token]

    async def snapshot(self) -> dict[str, ProviderHealth]:
        now = self._now()
        return {name: self._read(name, now) for name in self._books}

    def _read(self, name: str, now: int) -> ProviderHealth:
        book, settings = self._books[name], self._settings[name]
        self._due(book, now)
        if trips_reset(book.circuit, book.closed_at, now, settings.breaker):
            book.trips = 0
        sums, rate = self._sums(book, now), rate_params(settings)
        tokens = None if rate is None else gcra_free(book.tat, now, *rate)
        mode, until = self._overrides.get(name, (None, None))
        health = ProviderHealth(
            name=name,
            at=now / 1000,
            circuit=book.circuit,
            generation=book.gen,
            trips=book.trips,
            calls=sums[CALLS],
            successes=sums[OK],
            failures=sums[FAILED],
            throttled=sums[THROTTLED],
            slow=sums[SLOW],
            latency_sum_ms=sums[LATENCY],
            histogram=tuple(sums[HIST:]),
            ewma_ms=book.ewma,
            open_until=book.open_until / 1000 if book.circuit is Circuit.OPEN else None,
            throttled_until=_seconds(book.throttle_until),
            permits_in_use=len(book.permits),
            tokens=tokens,
            headroom=1.0 if rate is None or tokens is None else min(1.0, tokens / rate[1]),
            closed_at=_seconds(book.closed_at),
            last_seen=_seconds(book.last_seen),
        )
        return with_override(health, mode, until)

    async def acquire_permits(self, wants: Mapping[str, int]) -> dict[str, ProbeGrant]:
        now = self._now()
        return {name: self._permits(name, want, now) for name, want in wants.items()}

    def _permits(self, name: str, want: int, now: int) -> ProbeGrant:
        book, breaker = self._books[name], self._settings[name].breaker
        self._due(book, now)
        permits: list[Permit] = []
        if book.circuit is Circuit.HALF_OPEN:
            for _ in range(min(want, breaker.half_open_permits - len(book.permits))):
                book.permit_seq += 1
                token = f"{book.gen}.{book.permit_seq}"
                book.permits[token] = now + breaker.permit_lease_seconds * 1000
                permits.append(Permit(name, token, book.gen))
        return ProbeGrant(book.circuit, book.gen, tuple(permits))

    async def release(self, permits: Sequence[Permit]) -> None:
        for permit in permits:
            self._books[permit.provider].permits.pop(permit.token, None)

    async def take(self, wants: Mapping[str, int]) -> dict[str, RateGrant]:
        now = self._now()
        return {name: self._take(name, want, now) for name, want in wants.items()}

    def _take(self, name: str, want: int, now: int) -> RateGrant:
        rate = rate_params(self._settings[name])
        if rate is None:
            return RateGrant(want)
        book = self._books[name]
        granted, book.tat, wait_ms = gcra_take(book.tat, now, want, *rate, self._ahead_ms)
        return RateGrant(granted, wait_ms / 1000)

    async def reserve(
        self, firsts: Mapping[str, int], probes: Collection[str]
    ) -> dict[str, Booking]:
        now, booked = self._now(), {}
        for name, want in firsts.items():
            permits = self._permits(name, want, now).permits if name in probes else ()
            rate = self._take(name, len(permits) if name in probes else want, now)
            booked[name] = Booking(rate, permits)
        return booked


def _seconds(millis: int | None) -> float | None:
    return None if millis is None else millis / 1000

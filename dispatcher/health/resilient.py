"""Provider health as the worker uses it: shared in Redis while Redis answers, per process
while it does not (`ResilientHealth`), with this process's fast trip on top (`FastTrip`).

The fast trip: the shared breaker trips after `consecutive_failures` failed answers, but it hears
of them only when the settler records them and the router sees it only at its next snapshot; at
a few hundred sends a second that lag lets a dozen or more sends hit a provider that is plainly
down. So each answer is also counted here at once (`ResilientHealth.observe`), by the breaker's
own rule (`dispatcher.health.rules.streak`: DOWN and AMBIGUOUS extend a streak, SENT and
REJECTED end it, a misconfiguration trips at once), and at the breaker's threshold the provider
is held back for the breaker's `open_seconds`. The hold ends sooner on a success, or once the
shared breaker has caught up (its circuit is no longer closed, and from then on the shared
state, with its leased probes, decides).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import TypeVar

import structlog
from redis.exceptions import RedisError

from dispatcher.config import ProviderSettings
from dispatcher.health.base import (
    Booking,
    HealthStore,
    Observation,
    Permit,
    ProbeGrant,
    ProviderHealth,
    RateGrant,
    kind_of,
)
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.rules import streak, streak_trips
from providers.base import Outcome
from strategies.base import Circuit

log = structlog.get_logger("dispatcher.health")
T = TypeVar("T")


class FastTrip:
    """Per provider: failed answers in a row, and the monotonic time a hold ends."""

    def __init__(self, settings: Sequence[ProviderSettings]) -> None:
        self._breakers = {s.name: s.breaker for s in settings}
        self._streaks: dict[str, int] = {}
        self._held_until: dict[str, float] = {}

    def note(self, outcome: Outcome, now: float) -> None:
        """Count one answer; hold its provider back once its failures in a row reach the
        breaker's threshold; a success ends the streak and the hold."""
        name, kind = outcome.provider, kind_of(outcome.status, outcome.misconfigured)
        breaker = self._breakers.get(name)
        if breaker is None or kind == "T":
            return  # throttled: not an outage
        failures = streak(self._streaks.get(name, 0), kind)
        if not failures:
            self._streaks.pop(name, None)
            self._held_until.pop(name, None)
            return
        self._streaks[name] = failures
        if streak_trips(failures, kind, breaker):
            self._held_until[name] = now + breaker.open_seconds

    def held(self, now: float) -> set[str]:
        """The providers held back now."""
        return {name for name, until in self._held_until.items() if until > now}

    def left(self, now: float) -> dict[str, float]:
        """The providers held back now, with the seconds left on each hold."""
        return {name: until - now for name, until in self._held_until.items() if until > now}

    def sync(self, report: Mapping[str, ProviderHealth]) -> None:
        """After a snapshot: the shared breaker governs a provider it no longer sees closed."""
        for name, health in report.items():
            if health.circuit is not Circuit.CLOSED:
                self._held_until.pop(name, None)
                self._streaks.pop(name, None)


class ResilientHealth:
    """`RedisHealth` while Redis answers; the per-process `MemoryHealth` while it does not; and
    this process's `FastTrip` on top, fed by `observe` and applied by the router's view.

    The first shared call that fails (a connection error, an error reply such as READONLY
    after a failover, OOM, MISCONF or MOVED, or no answer within `timeout_seconds`) switches
    to local state. While degraded, every call is answered locally
    at once, except that one call at a time probes Redis, after a jittered delay that doubles
    from `retry_min_seconds` up to `retry_seconds`; the probe that succeeds switches back.

    Logs: `health.degraded` (a warning) at most once per `warn_seconds`, however many calls fail
    and however often Redis comes and goes (a flapping connection is counted, not logged each
    time); `health.restored` when an outage that was announced ends.
    """

    def __init__(
        self,
        shared: HealthStore,
        local: MemoryHealth,
        retry_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        retry_min_seconds: float = 0.5,
        timeout_seconds: float = 2.0,
        warn_seconds: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.shared, self.local = shared, local
        self._retry_max, self._retry_min = retry_seconds, min(retry_min_seconds, retry_seconds)
        self._timeout, self._warn_seconds = timeout_seconds, warn_seconds
        self._monotonic, self._rng = monotonic, rng or random.Random()
        self._since: float | None = None  # when it degraded; None while shared
        self._retry_at = 0.0
        self._delay = self._retry_min
        self._probing = False
        self._warned_at: float | None = None
        self._announced = False  # the current outage was warned about
        self._failures = self._outages = 0  # since the last warning
        self.errors_total = 0  # shared calls that failed, ever (the metrics read it)
        self.fast_trip = FastTrip(local.settings)

    @property
    def degraded(self) -> bool:
        return self._since is not None

    async def _call(self, op: Callable[[HealthStore], Awaitable[T]]) -> T:
        probe = self._since is not None
        if probe and (self._probing or self._monotonic() < self._retry_at):
            return await op(self.local)
        self._probing = self._probing or probe
        try:
            async with asyncio.timeout(self._timeout):
                result = await op(self.shared)
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError
            self._failed(exc, probe)
            return await op(self.local)
        finally:
            if probe:
                self._probing = False
        if probe and self._since is not None:
            if self._announced:
                away = self._monotonic() - self._since
                log.info("health.restored", scope="shared", degraded_for_s=round(away, 1))
            self._since = None
        return result

    def _failed(self, exc: BaseException, probe: bool) -> None:
        """Count a failed shared call; schedule the next probe; warn at most once a period."""
        now = self._monotonic()
        self._failures += 1
        self.errors_total += 1
        if self._since is None:  # Redis has just gone: probe again soon
            self._since, self._delay, self._announced = now, self._retry_min, False
            self._outages += 1
        elif probe:
            self._delay = min(self._retry_max, self._delay * 2)
        else:  # a call already under way when Redis went: the probe schedule stands
            return
        self._retry_at = now + self._delay * self._rng.uniform(0.5, 1.0)
        if self._warned_at is None or now - self._warned_at >= self._warn_seconds:
            log.warning(
                "health.degraded",
                scope="per-process",
                reason=repr(exc)[:200],
                failed_calls=self._failures,
                outages=self._outages,
                degraded_for_s=round(now - self._since, 1),
                next_probe_s=round(self._retry_at - now, 2),
            )
            self._warned_at, self._announced = now, True
            self._failures = self._outages = 0

    async def record(self, observations: Sequence[Observation]) -> None:
        await self._call(lambda store: store.record(observations))

    async def snapshot(self) -> dict[str, ProviderHealth]:
        report = await self._call(lambda store: store.snapshot())
        if self._since is None:  # Redis answered: its overrides are the ones to keep
            self.local.remember_overrides(report)
        self.fast_trip.sync(report)
        return report

    async def acquire_permits(self, wants: Mapping[str, int]) -> dict[str, ProbeGrant]:
        return await self._call(lambda store: store.acquire_permits(wants))

    async def release(self, permits: Sequence[Permit]) -> None:
        await self._call(lambda store: store.release(permits))

    async def take(self, wants: Mapping[str, int]) -> dict[str, RateGrant]:
        return await self._call(lambda store: store.take(wants))

    async def reserve(
        self, firsts: Mapping[str, int], probes: Collection[str]
    ) -> dict[str, Booking]:
        return await self._call(lambda store: store.reserve(firsts, probes))

    def observe(self, outcome: Outcome, permit: Permit | None, generation: int) -> Observation:
        """The observation to record for one answer (see `Admission.observe`); the fast trip counts
        it at once, before it is recorded."""
        self.fast_trip.note(outcome, self._monotonic())
        return Observation.of(outcome, generation, permit)

    def held(self) -> dict[str, float]:
        """The providers the fast trip holds back now, with the seconds left on each hold."""
        return self.fast_trip.left(self._monotonic())

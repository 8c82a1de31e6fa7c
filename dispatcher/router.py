"""Routing: a cached health snapshot, the strategy's order for each message, and this process's
sends in flight.

Per receive batch the router reads one health snapshot (at most every `refresh_seconds`), asks
the strategy for an order per message, and books what the first choices need in one round trip
(`reserve`: probe permits for half-open providers, then tokens for rate-limited ones); a permit
left unused is handed back in one more trip. A failover send is admitted only to a closed
circuit, taking its rate token then (failures are rare). Every route carries the breaker
generations it was planned under, and each answer is recorded with its provider's, so an answer
routed before a breaker last moved cannot move it again. Whether a provider may take a send is
`dispatcher.health.base.blocks`, for every caller; the local fast trip lives in the health.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dispatcher.config import ProviderSettings
from dispatcher.health.base import (
    FOR_FAILOVER,
    FOR_TOKEN_WAIT,
    Observation,
    Permit,
    ProviderHealth,
    available,
    rate_params,
)
from dispatcher.health.resilient import ResilientHealth
from dispatcher.health.rules import booked_delays
from dispatcher.health.view import routing_snapshot
from dispatcher.wait_hint import WaitHint
from providers.base import Outcome, Provider
from strategies.base import Circuit, HealthSnapshot, Strategy

MAX_TOKEN_WAIT_SECONDS = 5.0
# Rate tokens may be booked this far ahead (the store is built with it, see dispatcher.app): a
# message pulled for a rate-limited provider waits in process for its token.
RATE_AHEAD_SECONDS = 1.0


@dataclass(slots=True)
class Route:
    """The providers to try for one message, and what was reserved for its first choice."""

    order: list[Provider]
    first_admitted: bool = False
    permit: Permit | None = None
    delay: float = 0.0  # seconds until its first choice's rate token is due (booked ahead)
    generations: Mapping[str, int] = field(default_factory=dict)  # breakers' when planned

    def generation(self, provider: str) -> int:
        """The breaker generation `provider` had when this route was planned."""
        return self.generations.get(provider, 0)


class Router:
    def __init__(
        self,
        strategy: Strategy,
        providers: Sequence[Provider],
        settings: Sequence[ProviderSettings],
        health: ResilientHealth,
        rng: random.Random,
        refresh_seconds: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._strategy, self._rng, self._monotonic = strategy, rng, monotonic
        self._by_name = {p.name: p for p in providers}
        self._settings = {s.name: s for s in settings}
        self._configured = tuple(settings)
        self._intervals = {  # seconds between two sends, for rate-limited providers
            s.name: rate[0] / 1000 for s in settings if (rate := rate_params(s)) is not None
        }
        self._token_queues: dict[str, asyncio.Lock] = {}
        self.health = health
        self._report: dict[str, ProviderHealth] = {}
        self._read_at = float("-inf")
        self._hint = WaitHint(refresh_seconds, self._settings, monotonic)
        self._sequence = 0
        self.in_flight: Counter[str] = Counter()
        self._started_sum: dict[str, float] = {}  # per provider: the start times in flight

    @property
    def report(self) -> Mapping[str, ProviderHealth]:
        """The last health snapshot read (empty before the first)."""
        return self._report

    @property
    def strategy(self) -> Strategy:
        return self._strategy

    @property
    def providers(self) -> tuple[Provider, ...]:
        return tuple(self._by_name.values())

    async def refresh(self, *, force: bool = False) -> HealthSnapshot:
        """The current snapshot, read from the store when the last one is too old: older than
        `refresh_seconds`, or while waiting for a probe permit, than that wait (so that the
        pollers of one process share one read)."""
        if force or self._monotonic() - self._read_at >= self._hint.probe_wait(self._read_at):
            self._report = await self.health.snapshot()
            self._read_at = self._monotonic()
        snapshot = self.snapshot()
        self._hint.note(self._report, bool(snapshot.eligible()))
        return snapshot

    def snapshot(self) -> HealthSnapshot:
        return routing_snapshot(
            self._report,
            self._configured,
            self.in_flight,
            self._sequence,
            self.pending_ms(),
            self.health.held(),
        )

    def begin(self, provider: str) -> float:
        """Count a send to `provider` as in flight; returns its start time for `end`."""
        started = self._monotonic()
        self.in_flight[provider] += 1
        self._started_sum[provider] = self._started_sum.get(provider, 0.0) + started
        return started

    def end(self, provider: str, started: float) -> None:
        self.in_flight[provider] -= 1
        if self.in_flight[provider] <= 0:
            del self.in_flight[provider]
            self._started_sum.pop(provider, None)
        else:
            self._started_sum[provider] -= started

    def pending_ms(self) -> dict[str, float]:
        """The mean age of each provider's sends in flight: a latency floor known before any
        answer, so a provider that has just turned slow costs more at once."""
        now = self._monotonic()
        return {
            name: 1000 * (now - total / self.in_flight[name])
            for name, total in self._started_sum.items()
            if self.in_flight[name] > 0
        }

    def wait_hint(self) -> float:
        """Seconds until some provider may take work again (`dispatcher.wait_hint`)."""
        return self._hint.seconds(self._report, self.health.held())

    async def plan(self, count: int, sizes: Sequence[int] = ()) -> list[Route]:
        """Orders for `count` messages, with their first choices' permits and tokens (`orders`,
        then `book`)."""
        routes = self.orders(count, sizes)
        await self.book(routes)
        return routes

    def orders(self, count: int, sizes: Sequence[int] = ()) -> list[Route]:
        """The strategy's order for each of `count` messages, nothing booked yet. Given `sizes`
        (bytes, one per message), a provider too small for a message is left out of its order."""
        return self._orders(self.snapshot(), count, sizes)

    async def book(self, routes: Sequence[Route]) -> None:
        """Take what the first choices of `routes` need: probe permits for half-open providers,
        then tokens for rate-limited ones (one round trip, when any is needed); a first choice
        that gets none is dropped. A permit that no route uses is released before this
        returns."""
        circuits = {v.name: v.circuit for v in self.snapshot().providers}
        firsts = Counter(r.order[0].name for r in routes if r.order)
        probes = {n for n in firsts if circuits.get(n) is Circuit.HALF_OPEN}
        needed = probes or self._intervals.keys() & firsts.keys()
        booked = await self.health.reserve(firsts, probes) if needed else {}
        permits = {n: list(b.permits) for n, b in booked.items() if n in probes}
        tokens = {
            n: booked_delays(b.rate, self._intervals[n])
            for n, b in booked.items()
            if n in self._intervals
        }
        for route in routes:
            self._claim(route, permits, tokens)
        unused = [p for left in permits.values() for p in left]
        if unused:
            await self.health.release(unused)

    def _orders(self, snapshot: HealthSnapshot, count: int, sizes: Sequence[int]) -> list[Route]:
        """The strategy's order for each message, without the providers too small for it."""
        generations = {name: h.generation for name, h in self._report.items()}
        routes: list[Route] = []
        waiting: list[str] | None = None
        for i in range(count):
            ranked = self._strategy.rank(snapshot, self._rng)
            if not ranked:  # none can take it now; out of tokens only: it waits for one
                waiting = self._out_of_tokens() if waiting is None else waiting
                ranked = waiting
            self._sequence += 1
            snapshot = HealthSnapshot(snapshot.providers, snapshot.now, self._sequence)
            size = sizes[i] if sizes else 0
            order = [p for n in ranked if (p := self._by_name[n]).max_message_bytes >= size]
            routes.append(Route(order, generations=generations))
        return routes

    def _out_of_tokens(self) -> list[str]:
        """The enabled rate-limited providers that lack only a token."""
        held = self.health.held()
        return [
            name
            for name, s in self._settings.items()
            if name in self._intervals
            and s.weight > 0
            and (h := self._report.get(name)) is not None
            and available(h, s, name in held, FOR_TOKEN_WAIT)
        ]

    def _claim(
        self, route: Route, permits: dict[str, list[Permit]], tokens: dict[str, list[float]]
    ) -> None:
        """Take the first choice's permit and token from the pools, or drop that choice. A
        permit is taken only with its token: one left in the pool is released by `plan`."""
        if not route.order:
            return
        first = route.order[0].name
        if first in permits and not permits[first]:
            route.order.pop(0)  # no probe slot left: the fallbacks take it
            return
        if first in tokens:
            if not tokens[first]:
                if len(route.order) > 1:
                    route.order.pop(0)  # no token now or soon: the fallbacks take it
                # else no fallback: the send waits for a token at admission (see `admit`)
                return
            route.delay = tokens[first].pop(0)
        if first in permits:
            route.permit = permits[first].pop()
        route.first_admitted = True

    async def admit(self, provider: str) -> bool:
        """May a failover send go to `provider` now? Closed circuits only, within its rate."""
        health, held = self._report.get(provider), provider in self.health.held()
        settings = self._settings[provider]
        if held or (health is not None and not available(health, settings, False, FOR_FAILOVER)):
            return False
        return provider not in self._intervals or await self._await_token(provider)

    async def _await_token(self, provider: str) -> bool:
        """Wait, up to MAX_TOKEN_WAIT_SECONDS, for a rate token: a message in hand waits its
        turn in process rather than going back to the queue, where every receive counts. The
        waiters of one provider queue on a lock (first come, first served), and only the first
        asks Redis."""
        try:
            async with asyncio.timeout(MAX_TOKEN_WAIT_SECONDS):
                async with self._token_queues.setdefault(provider, asyncio.Lock()):
                    due = await self._book_token(provider)
        except TimeoutError:
            return False
        if due > 0:
            await asyncio.sleep(due)
        return True

    async def _book_token(self, provider: str) -> float:
        """Take one token, booked ahead if need be; the seconds until it is due."""
        interval = self._intervals[provider]
        while True:
            grant = (await self.health.take({provider: 1}))[provider]
            due = booked_delays(grant, interval)
            if due:
                return due[0]
            # The next token may be booked `RATE_AHEAD_SECONDS` before it is free.
            pause = max(interval, grant.wait - RATE_AHEAD_SECONDS)
            await asyncio.sleep(pause * self._rng.uniform(1.0, 1.2))

    def observe(self, outcome: Outcome, permit: Permit | None, generation: int) -> Observation:
        """The observation to record for one answer, under the breaker generation its send was
        routed with (a probe's permit carries its own): an answer routed before the breaker
        last moved must not move it again. (The health's fast trip counts it at once.)"""
        return self.health.observe(outcome, permit, permit.generation if permit else generation)

    async def release(self, permit: Permit) -> None:
        """Hand back a probe permit whose send did not happen."""
        await self.health.release([permit])

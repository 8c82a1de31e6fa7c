"""Admission: what a send needs from the shared health before it may go to a provider.

A first choice is booked for a whole receive batch in one round trip (`book`): probe permits for
half-open providers, then rate tokens for rate-limited ones; a permit left unused is handed back
in one more trip. A failover send is admitted one at a time (`admit`), only to a closed circuit,
taking its rate token then (failovers are rare). Each answer becomes the observation recorded
for the health windows (`observe`), under the breaker generation its route was planned with.
Whether a provider may take a send is `dispatcher.health.base.available`, for every caller.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from dispatcher.config import ProviderSettings
from dispatcher.health.base import (
    FOR_FAILOVER,
    Observation,
    Permit,
    ProviderHealth,
    available,
    rate_params,
)
from dispatcher.health.resilient import ResilientHealth
from dispatcher.health.rules import booked_delays
from providers.base import Outcome, Provider
from strategies.base import Circuit

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


class Admission:
    """Books and admits sends against `health`; `report` gives the last health snapshot read
    (the router's cache), which failover admission consults without a round trip."""

    def __init__(
        self,
        health: ResilientHealth,
        settings: Sequence[ProviderSettings],
        rng: random.Random,
        report: Callable[[], Mapping[str, ProviderHealth]],
    ) -> None:
        self.health, self._rng, self._report = health, rng, report
        self._settings = {s.name: s for s in settings}
        self.intervals = {  # seconds between two sends, for rate-limited providers
            s.name: rate[0] / 1000 for s in settings if (rate := rate_params(s)) is not None
        }
        self._token_queues: dict[str, asyncio.Lock] = {}

    async def book(self, routes: Sequence[Route], circuits: Mapping[str, Circuit]) -> None:
        """Take what the first choices of `routes` need: probe permits for half-open providers,
        then tokens for rate-limited ones (one round trip, when any is needed); a first choice
        that gets none is dropped. A permit that no route uses is released before this
        returns."""
        firsts = Counter(r.order[0].name for r in routes if r.order)
        probes = {n for n in firsts if circuits.get(n) is Circuit.HALF_OPEN}
        needed = probes or self.intervals.keys() & firsts.keys()
        booked = await self.health.reserve(firsts, probes) if needed else {}
        permits = {n: list(b.permits) for n, b in booked.items() if n in probes}
        tokens = {
            n: booked_delays(b.rate, self.intervals[n])
            for n, b in booked.items()
            if n in self.intervals
        }
        for route in routes:
            _take(route, permits, tokens)
        unused = [p for left in permits.values() for p in left]
        if unused:
            await self.health.release(unused)

    async def admit(self, provider: str) -> bool:
        """May a failover send go to `provider` now? Closed circuits only, within its rate."""
        health, held = self._report().get(provider), provider in self.health.held()
        settings = self._settings[provider]
        if held or (health is not None and not available(health, settings, False, FOR_FAILOVER)):
            return False
        return provider not in self.intervals or await self._await_token(provider)

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
        interval = self.intervals[provider]
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


def _take(route: Route, permits: dict[str, list[Permit]], tokens: dict[str, list[float]]) -> None:
    """Take the first choice's permit and token from the pools, or drop that choice. A permit is
    taken only with its token: one left in the pool is released by `book`."""
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

"""Routing: a cached health snapshot, the strategy's order for each message, and this process's
sends in flight.

Per receive batch the router reads one health snapshot (at most every `refresh_seconds`) and
asks the strategy for an order per message (`orders`); `plan` then has `admission` book what
the first choices need (`dispatcher.admission`: permits, rate tokens, failover admission). The
in-flight counts and their ages feed the snapshot, so a provider that has just turned slow costs
more at once. Every route carries the breaker generations it was planned under.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from dispatcher.admission import Admission, Route
from dispatcher.config import ProviderSettings
from dispatcher.health.base import FOR_TOKEN_WAIT, ProviderHealth, available
from dispatcher.health.resilient import ResilientHealth
from dispatcher.health.view import routing_snapshot
from dispatcher.wait_hint import WaitHint
from providers.base import Provider
from strategies.base import HealthSnapshot, Strategy


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
        self.health = health
        self.admission = Admission(health, settings, rng, lambda: self._report)
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
        then `Admission.book`)."""
        snapshot = self.snapshot()
        routes = self._orders(snapshot, count, sizes)
        await self.admission.book(routes, {v.name: v.circuit for v in snapshot.providers})
        return routes

    def orders(self, count: int, sizes: Sequence[int] = ()) -> list[Route]:
        """The strategy's order for each of `count` messages, nothing booked yet. Given `sizes`
        (bytes, one per message), a provider too small for a message is left out of its order."""
        return self._orders(self.snapshot(), count, sizes)

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
            if name in self.admission.intervals
            and s.weight > 0
            and (h := self._report.get(name)) is not None
            and available(h, s, name in held, FOR_TOKEN_WAIT)
        ]

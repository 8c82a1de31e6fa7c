"""Turns the configured strategy's ranking into the providers to try for one message."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence

from providers.base import Provider
from strategies.base import HealthSnapshot, ProviderView, Strategy


class Router:
    def __init__(
        self,
        strategy: Strategy,
        providers: Sequence[Provider],
        weights: Mapping[str, float],
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._strategy = strategy
        self._by_name = {p.name: p for p in providers}
        self._views = tuple(ProviderView(p.name, weights.get(p.name, 1.0)) for p in providers)
        self._rng = rng
        self._clock = clock
        self._sequence = 0

    @property
    def providers(self) -> tuple[Provider, ...]:
        return tuple(self._by_name.values())

    def snapshot(self) -> HealthSnapshot:
        return HealthSnapshot(self._views, self._clock(), self._sequence)

    def order(self) -> list[Provider]:
        """The providers to try for the next message, best first."""
        ranked = self._strategy.rank(self.snapshot(), self._rng)
        self._sequence += 1
        return [self._by_name[name] for name in ranked]

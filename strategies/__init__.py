"""The strategy registry: config name -> strategy class."""

from __future__ import annotations

from collections.abc import Callable

from strategies.adaptive import Adaptive
from strategies.base import Circuit, HealthSnapshot, ProviderView, Strategy, Tuning
from strategies.least_latency import LeastLatency
from strategies.p2c import PowerOfTwoChoices
from strategies.priority import Priority
from strategies.round_robin import RoundRobin
from strategies.weighted import Weighted

StrategyFactory = Callable[[Tuning], Strategy]

STRATEGIES: dict[str, StrategyFactory] = {
    "adaptive": Adaptive,
    "least_latency": LeastLatency,
    "p2c": PowerOfTwoChoices,
    "priority": lambda tuning: Priority(),
    "round_robin": lambda tuning: RoundRobin(),
    "weighted": lambda tuning: Weighted(),
}


class UnknownStrategyError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"config key routing.strategy: unknown strategy {name!r}; "
            f"valid: {', '.join(sorted(STRATEGIES))}"
        )


def build_strategy(name: str, tuning: Tuning | None = None) -> Strategy:
    """The strategy configured as `name`; an unknown name lists the valid ones."""
    factory = STRATEGIES.get(name)
    if factory is None:
        raise UnknownStrategyError(name)
    return factory(tuning or Tuning())


__all__ = [
    "STRATEGIES",
    "Circuit",
    "HealthSnapshot",
    "ProviderView",
    "Strategy",
    "StrategyFactory",
    "Tuning",
    "UnknownStrategyError",
    "build_strategy",
]

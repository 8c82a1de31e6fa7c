"""The strategy registry: config name -> strategy class."""

from __future__ import annotations

from strategies.base import HealthSnapshot, ProviderView, Strategy
from strategies.priority import Priority
from strategies.round_robin import RoundRobin

STRATEGIES: dict[str, type[Strategy]] = {
    "priority": Priority,
    "round_robin": RoundRobin,
}


class UnknownStrategyError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"config key routing.strategy: unknown strategy {name!r}; "
            f"valid: {', '.join(sorted(STRATEGIES))}"
        )


def build_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise UnknownStrategyError(name) from None


__all__ = [
    "STRATEGIES",
    "HealthSnapshot",
    "ProviderView",
    "Strategy",
    "UnknownStrategyError",
    "build_strategy",
]

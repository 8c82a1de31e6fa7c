"""The `Strategy` protocol and the plain-data health snapshot strategies decide from.

A strategy is a pure function: given the same snapshot and the same random source it returns
the same order. It knows nothing of Redis, SQS or the worker, so tests and the routing simulator
can drive it under virtual time.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ProviderView:
    """What a strategy may know about one provider at one instant."""

    name: str
    weight: float = 1.0  # static weight from config; 0 disables the provider
    available: bool = True  # False while its circuit is open or it is throttled


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Every configured provider, in config order, plus a decision counter."""

    providers: tuple[ProviderView, ...]
    now: float = 0.0  # seconds, on whatever clock the caller drives
    sequence: int = 0  # how many routing decisions came before this one

    def eligible(self) -> list[ProviderView]:
        return [p for p in self.providers if p.weight > 0 and p.available]


class Strategy(Protocol):
    """Order the providers to try for one message, best first; an empty order means shed."""

    def rank(self, snapshot: HealthSnapshot, rng: random.Random) -> Sequence[str]: ...

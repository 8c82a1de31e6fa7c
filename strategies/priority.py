"""`priority`: ordered failover. Every message goes to the first available provider in config
order; the rest are its fallbacks, in order."""

from __future__ import annotations

import random
from collections.abc import Sequence

from strategies.base import HealthSnapshot


class Priority:
    def rank(self, snapshot: HealthSnapshot, rng: random.Random) -> Sequence[str]:
        return [p.name for p in snapshot.eligible()]

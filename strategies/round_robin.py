"""`round_robin`: each decision starts one provider further along the available ones; the
others follow as fallbacks, in rotation order."""

from __future__ import annotations

import random
from collections.abc import Sequence

from strategies.base import HealthSnapshot


class RoundRobin:
    def rank(self, snapshot: HealthSnapshot, rng: random.Random) -> Sequence[str]:
        names = [p.name for p in snapshot.eligible()]
        if not names:
            return names
        start = snapshot.sequence % len(names)
        return names[start:] + names[:start]

"""`weighted`: static weights. The first choice is drawn with probability proportional to each
eligible provider's configured `weight`; the fallbacks follow in weighted-random order without
replacement, so a heavier provider also tends to be the earlier fallback."""

from __future__ import annotations

import random
from collections.abc import Sequence

from strategies.base import HealthSnapshot
from strategies.scoring import weighted_shuffle


class Weighted:
    def rank(self, snapshot: HealthSnapshot, rng: random.Random) -> Sequence[str]:
        eligible = snapshot.eligible()
        order = weighted_shuffle([p.weight for p in eligible], rng)
        return [eligible[i].name for i in order]

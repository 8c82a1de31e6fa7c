"""How long a poller that found no provider eligible waits before it looks again.

What keeps a provider from taking a send is `dispatcher.health.base.blocks`, the one
"available" rule. An open period, a throttle, a local hold (the fast trip) and a missing rate
token each end at a known time: the wait is the earliest of them. A half-open breaker whose
probe permits are all taken has no such time (a probe may end at any moment), so it is looked at
again after `refresh_seconds` at first, then after as long as the stall has lasted (the wait
doubles), up to MAX_PROBE_WAIT_SECONDS: a long half-open period costs each process about one
health snapshot a second, not ten.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from dispatcher.config import ProviderSettings
from dispatcher.health.base import ProviderHealth, blocks
from strategies.base import Circuit

MAX_WAIT_SECONDS = 5.0
MAX_PROBE_WAIT_SECONDS = 1.0


class WaitHint:
    """`settings`: each provider's, by name."""

    def __init__(
        self,
        refresh_seconds: float,
        settings: Mapping[str, ProviderSettings],
        monotonic: Callable[[], float],
    ) -> None:
        self._refresh_seconds = refresh_seconds
        self._settings = settings
        self._monotonic = monotonic
        self._stalled_since: float | None = None  # half-open, yet nothing eligible

    def note(self, report: Mapping[str, ProviderHealth], eligible: bool) -> None:
        """After each look at the health: a stall starts, goes on, or ends."""
        if eligible or not _half_open(report):
            self._stalled_since = None
        elif self._stalled_since is None:
            self._stalled_since = self._monotonic()

    def probe_wait(self, at: float) -> float:
        """The wait for a probe permit, for a look taken at `at` (monotonic seconds)."""
        since = self._stalled_since
        stalled_for = 0.0 if since is None else at - since
        return min(MAX_PROBE_WAIT_SECONDS, max(self._refresh_seconds, stalled_for))

    def seconds(self, report: Mapping[str, ProviderHealth], held: Mapping[str, float]) -> float:
        """Seconds until some provider may take work again; `held`: the seconds left on each
        local hold."""
        ends = [t for name, t in held.items() if name not in report]
        for name, health in report.items():
            found = blocks(health, self._settings[name], held.get(name, 0.0))
            ends.extend(t for t in found.values() if t is not None and t > 0)
        wait = min(MAX_WAIT_SECONDS, max(0.1, min(ends, default=1.0)))
        return min(wait, self.probe_wait(self._monotonic())) if _half_open(report) else wait


def _half_open(report: Mapping[str, ProviderHealth]) -> bool:
    return any(h.circuit is Circuit.HALF_OPEN for h in report.values())

"""How long a poller that found no provider eligible waits before it looks again.

An open period, a throttle, a local hold (`dispatcher.fast_trip`) and a missing rate token each
end at a known time: the wait is the earliest of them. A half-open breaker whose probe permits
are all taken has no such time (a probe may end at any moment), so it is looked at again after
`refresh_seconds` at first, then after as long as the stall has lasted (the wait doubles), up to
MAX_PROBE_WAIT_SECONDS: a long half-open period costs each process about one health snapshot a
second, not ten.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from dispatcher.health_model import ProviderHealth
from strategies.base import Circuit

MAX_WAIT_SECONDS = 5.0
MAX_PROBE_WAIT_SECONDS = 1.0


class WaitHint:
    """`intervals`: seconds between two sends of each rate-limited provider."""

    def __init__(
        self,
        refresh_seconds: float,
        intervals: Mapping[str, float],
        monotonic: Callable[[], float],
    ) -> None:
        self._refresh_seconds = refresh_seconds
        self._intervals = intervals
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

    def seconds(self, report: Mapping[str, ProviderHealth], held_until: Sequence[float]) -> float:
        """Seconds until some provider may take work again; `held_until` are the monotonic
        times the local holds end."""
        local = self._monotonic()
        now = max((h.at for h in report.values()), default=0.0)
        ends = [
            t - now
            for h in report.values()
            for t in (h.open_until, h.throttled_until)
            if t is not None and t > now
        ]
        ends.extend(t - local for t in held_until)
        ends.extend(
            (1 - h.tokens) * self._intervals[name]
            for name, h in report.items()
            if name in self._intervals and h.tokens is not None and h.tokens < 1
        )
        wait = min(MAX_WAIT_SECONDS, max(0.1, min(ends, default=1.0)))
        return min(wait, self.probe_wait(local)) if _half_open(report) else wait


def _half_open(report: Mapping[str, ProviderHealth]) -> bool:
    return any(h.circuit is Circuit.HALF_OPEN for h in report.values())

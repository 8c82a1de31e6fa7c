"""A provider this process has just seen fail several times in a row is held back at once,
before the shared breaker has heard of it.

The shared breaker in Redis trips after `consecutive_failures` failed answers, but it hears of
them only when the settler records them and the router sees it only at its next snapshot; at a
few hundred sends a second that lag lets a dozen or more sends hit a provider that is plainly
down. So the router also counts each provider's failed answers in a row here (DOWN and
AMBIGUOUS, as the breaker counts them; a misconfiguration at once) and, at the breaker's own
threshold, holds it back for the breaker's `open_seconds`. The hold ends sooner on a success,
or once the shared breaker has caught up (its circuit is no longer closed, and from then on
the shared state, with its leased probes, decides).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from dispatcher.config import ProviderSettings
from dispatcher.health_model import ProviderHealth
from providers.base import Outcome, Status
from strategies.base import Circuit

_FAILED = (Status.DOWN, Status.AMBIGUOUS)


class FastTrip:
    def __init__(self, settings: Sequence[ProviderSettings]) -> None:
        self._breakers = {s.name: s.breaker for s in settings}
        self._streaks: Counter[str] = Counter()
        self._held_until: dict[str, float] = {}

    def note(self, outcome: Outcome, now: float) -> None:
        """Count one answer; hold its provider back once its failures in a row reach the
        breaker's threshold."""
        name = outcome.provider
        if outcome.status is Status.SENT:
            self._streaks.pop(name, None)
            self._held_until.pop(name, None)
            return
        if outcome.status not in _FAILED:
            return  # throttled (not an outage) or rejected (the message's fault)
        self._streaks[name] += 1
        breaker = self._breakers.get(name)
        if breaker is None:
            return
        if outcome.misconfigured or self._streaks[name] >= breaker.consecutive_failures:
            self._held_until[name] = now + breaker.open_seconds

    def held(self, now: float) -> set[str]:
        """The providers held back now."""
        return {name for name, until in self._held_until.items() if until > now}

    def ends(self, now: float) -> list[float]:
        return [until for until in self._held_until.values() if until > now]

    def sync(self, report: Mapping[str, ProviderHealth]) -> None:
        """After a snapshot: the shared breaker governs a provider it no longer sees closed."""
        for name, health in report.items():
            if health.circuit is not Circuit.CLOSED:
                self._held_until.pop(name, None)
                self._streaks.pop(name, None)

"""In-process counters for the live view, the demo summary and tests. Cheap: plain ints."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from dispatcher.delivery import Action, Decision
from dispatcher.ledger import RecordStatus, SettleVerdict
from providers.base import Outcome, Status


@dataclass(slots=True)
class ProviderStats:
    calls: int = 0
    sent: int = 0
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency_total: float = 0.0

    @property
    def mean_latency_ms(self) -> float:
        return 1000 * self.latency_total / self.calls if self.calls else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(slots=True)
class Stats:
    received: int = 0
    sent: int = 0
    rejected: int = 0
    retried: int = 0
    dead_lettered: int = 0
    poison: int = 0
    duplicates: int = 0  # redeliveries of messages already settled: deleted, not sent
    busy: int = 0  # redeliveries while another worker held the claim
    redelivered: int = 0  # redeliveries of a message this worker is sending (receipt swapped)
    released: int = 0  # handed back to the queue on shutdown
    shed_polls: int = 0  # polls skipped because no provider could take work
    providers: dict[str, ProviderStats] = field(default_factory=dict)

    def record(self, outcome: Outcome) -> None:
        stats = self.providers.setdefault(outcome.provider, ProviderStats())
        stats.calls += 1
        stats.latency_total += outcome.latency
        if outcome.status is Status.SENT:
            stats.sent += 1
        else:
            stats.errors[outcome.status.value] += 1

    def settle(self, decision: Decision, verdict: SettleVerdict) -> None:
        """Count one send the settler is done with, by how the ledger took it."""
        if verdict is SettleVerdict.SENT:
            self.duplicates += 1  # already sent by another delivery: deleted, not sent again
        elif verdict in (SettleVerdict.STALE, SettleVerdict.FAILED):
            return
        elif decision.status is RecordStatus.SENT:
            self.sent += 1
        elif decision.action is Action.RETRY:
            self.retried += 1
        elif decision.action is Action.DEAD_LETTER:
            self.dead_lettered += 1
        else:
            self.rejected += 1

    @property
    def settled(self) -> int:
        return self.sent + self.rejected + self.dead_lettered

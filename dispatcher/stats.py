"""In-process counters for the live view, the demo summary, tests and the metrics port (read
at scrape time by `dispatcher.ops.metrics`). Cheap: plain ints, a bisect per send for the
latency histogram, one per claimed message for the queue lag."""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field

from dispatcher.delivery import Action, Decision
from dispatcher.ledger import RecordStatus, SettleVerdict
from providers.base import Outcome, Status

# Histogram upper bounds (seconds): send latency, and queue lag (enqueued to claimed).
SEND_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LAG_BOUNDS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
MAX_BATCH = 10  # receive batches hold 0..10 messages


def _buckets(bounds: tuple[float, ...]) -> list[int]:
    return [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)


@dataclass(slots=True)
class ProviderStats:
    calls: int = 0
    sent: int = 0
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency_total: float = 0.0
    buckets: list[int] = field(default_factory=lambda: _buckets(SEND_BOUNDS))

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
    shed_seconds: float = 0.0  # time spent shedding, ended spells (see `shedding`)
    shed_since: float | None = None  # monotonic start of the current spell, if shedding
    providers: dict[str, ProviderStats] = field(default_factory=dict)
    batch_sizes: list[int] = field(default_factory=lambda: [0] * (MAX_BATCH + 1))
    lag_buckets: list[int] = field(default_factory=lambda: _buckets(LAG_BOUNDS))
    lag_total: float = 0.0

    def record(self, outcome: Outcome) -> None:
        stats = self.providers.setdefault(outcome.provider, ProviderStats())
        stats.calls += 1
        stats.latency_total += outcome.latency
        stats.buckets[bisect.bisect_left(SEND_BOUNDS, outcome.latency)] += 1
        if outcome.status is Status.SENT:
            stats.sent += 1
        else:
            stats.errors[outcome.status.value] += 1

    def note_receive(self, count: int) -> None:
        """Count one receive call that brought `count` messages."""
        self.received += count
        self.batch_sizes[min(count, MAX_BATCH)] += 1

    def claimed(self, now: float, sent_at: list[float]) -> None:
        """The queue lag of a claimed batch: from SQS's SentTimestamp to `now` (epoch s)."""
        for sent in sent_at:
            if sent > 0:
                lag = max(0.0, now - sent)
                self.lag_total += lag
                self.lag_buckets[bisect.bisect_left(LAG_BOUNDS, lag)] += 1

    def shedding(self, on: bool, now: float) -> None:
        """A shedding spell starts (`on`) or ends, at monotonic `now`."""
        if on and self.shed_since is None:
            self.shed_since = now
        elif not on and self.shed_since is not None:
            self.shed_seconds += now - self.shed_since
            self.shed_since = None

    def shed_total(self, now: float) -> float:
        """Seconds spent shedding, the current spell included."""
        return self.shed_seconds + (now - self.shed_since if self.shed_since is not None else 0)

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

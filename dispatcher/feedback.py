"""Delivery feedback: what provider webhooks say became of a SENT message, recorded in the
ledger (`lua/feedback.lua`), and per-provider counters for bounce and complaint rates.

    FeedbackEvent   one event, already verified and parsed by the API's webhook module
    Feedback.apply  match each to its record (by our id, else by the provider's id through the
                    index `settle` keeps), move its status in one round trip, then count it and
                    suppress hard bounces and complaints in a second
    rates           per-provider sends, deliveries, bounces and complaints over the last hours

Counters live in one hash per hour under the health hash tag (`keys.feedback_counts`), fields
`<provider>:sent|delivered|bounced|complained`, kept 26 hours. `sent` is counted by the ledger's
settle (a SENT outcome), the rest here, only for events that changed a record.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher import keys
from dispatcher.ledger import FEEDBACK_COUNTER_TTL
from dispatcher.scripts import LuaScript, RedisClient, load, run_batch
from dispatcher.suppression import Suppressions

FEEDBACK = LuaScript("feedback", "_index")
SCRIPTS = (FEEDBACK,)
KINDS = ("sent", "delivered", "bounced", "complained")


class Verdict(enum.StrEnum):
    APPLIED = "APPLIED"  # the record moved to the event's status
    IGNORED = "IGNORED"  # not newer than the record's status: no regression
    UNKNOWN = "UNKNOWN"  # no record for this id (or its record has expired)
    EARLY = "EARLY"  # not settled yet (a webhook faster than our settle): ask for a retry
    NOT_SENT = "NOT_SENT"  # the record failed (ERROR): nothing changes


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    status: str  # DELIVERED, BOUNCED or COMPLAINED
    at: float  # the event's time, epoch seconds
    recipient: str  # the address the event is about (hashed for suppression, never stored)
    message_id: str | None = None  # our id (`dispatcher_id`), when the provider echoed it
    provider_message_id: str | None = None
    bounce: str = ""  # hard or soft, for BOUNCED
    reason: str = ""  # the provider's reason code (an SMTP status, a bounce subtype)

    @property
    def suppresses(self) -> bool:
        return self.status == "COMPLAINED" or (self.status == "BOUNCED" and self.bounce == "hard")


@dataclass(frozen=True, slots=True)
class Applied:
    event: FeedbackEvent
    message_id: str | None
    verdict: Verdict
    provider: str = ""


class Feedback:
    def __init__(
        self, client: RedisClient, prefix: str, ttl_seconds: int, suppressions: Suppressions
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = str(ttl_seconds)
        self._suppressions = suppressions

    async def load_scripts(self) -> None:
        await load(self._redis, SCRIPTS)

    async def apply(self, events: Sequence[FeedbackEvent]) -> list[Applied]:
        """Record each event on its record; count and suppress those that changed one."""
        ids = await self._resolve(events)
        todo = [(e, i) for e, i in zip(events, ids, strict=True) if i is not None]

        calls = [
            FEEDBACK.call(
                keys.record_keys(self._prefix, message_id),
                [
                    *(message_id, event.status, int(event.at * 1000), event.bounce),
                    *(event.reason[:64], "", self._ttl),
                ],
            )
            for event, message_id in todo
        ]
        replies = await run_batch(self._redis, SCRIPTS, calls, isolate=True) if todo else []
        done = iter(replies)
        results = [
            Applied(e, None, Verdict.UNKNOWN) if i is None else _applied(e, i, next(done))
            for e, i in zip(events, ids, strict=True)
        ]
        await self._after([r for r in results if r.verdict is Verdict.APPLIED])
        return results

    async def _after(self, applied: Sequence[Applied]) -> None:
        suppress = [r.event for r in applied if r.event.suppresses]
        for reason in ("bounce", "complaint"):
            found = [
                self._suppressions.hasher.digest(e.recipient)
                for e in suppress
                if (e.status == "COMPLAINED") == (reason == "complaint")
            ]
            await self._suppressions.add(found, reason, time.time())
        counts = Counter(f"{r.provider or 'unknown'}:{r.event.status.lower()}" for r in applied)
        await count(self._redis, self._prefix, counts, time.time())

    async def _resolve(self, events: Sequence[FeedbackEvent]) -> list[str | None]:
        """Each event's message id: its own, else found by the provider's id in any shard."""
        wanted = [e.provider_message_id for e in events if not e.message_id]
        found: dict[str, str] = {}
        if any(wanted):
            async with self._redis.pipeline(transaction=False) as pipe:
                asked = [p for p in wanted if p]
                for pmid in asked:
                    for shard in range(keys.SHARDS):
                        pipe.get(keys.provider_message_in(self._prefix, shard, pmid))
                replies = await pipe.execute()
            for n, pmid in enumerate(asked):
                hit = next((r for r in replies[n * keys.SHARDS : (n + 1) * keys.SHARDS] if r), None)
                if hit is not None:
                    found[pmid] = hit.decode() if isinstance(hit, bytes) else str(hit)
        return [e.message_id or found.get(e.provider_message_id or "") for e in events]


async def count(client: RedisClient, prefix: str, counts: Counter[str], at: float) -> None:
    """Add `counts` (`<provider>:<kind>` -> n) to the hour of `at`."""
    if not counts:
        return
    key = keys.feedback_counts(prefix, int(at // 3600))
    async with client.pipeline(transaction=False) as pipe:
        for field, n in counts.items():
            pipe.hincrby(key, field, n)
        pipe.expire(key, FEEDBACK_COUNTER_TTL)
        await pipe.execute()


@dataclass(frozen=True, slots=True)
class ProviderRates:
    provider: str
    sent: int
    delivered: int
    bounced: int
    complained: int

    @property
    def bounce_rate(self) -> float | None:
        return self.bounced / self.sent if self.sent else None

    @property
    def complaint_rate(self) -> float | None:
        return self.complained / self.sent if self.sent else None


async def rates(
    client: RedisClient, prefix: str, now: float, hours: int = 24
) -> list[ProviderRates]:
    """Per provider, the counters of the last `hours` hours (the current one included)."""
    hour = int(now // 3600)
    async with client.pipeline(transaction=False) as pipe:
        for h in range(hour - hours + 1, hour + 1):
            pipe.hgetall(keys.feedback_counts(prefix, h))
        replies = await pipe.execute()
    totals: Counter[tuple[str, str]] = Counter()
    for reply in replies:
        for field, value in reply.items():
            provider, _, kind = _text(field).rpartition(":")
            totals[(provider, kind)] += int(value)
    names = sorted({p for p, _ in totals})
    return [ProviderRates(p, *(totals[(p, k)] for k in KINDS)) for p in names]


def _applied(event: FeedbackEvent, message_id: str, reply: object) -> Applied:
    if isinstance(reply, Exception) or not isinstance(reply, list):
        return Applied(event, message_id, Verdict.UNKNOWN)
    verdict, provider = (_text(x) for x in reply)
    return Applied(event, message_id, Verdict(verdict), provider)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

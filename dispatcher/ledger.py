"""The Redis ledger: one record per message id, claims with a lease, and settled outcomes.

Statuses, in lifecycle order::

    PENDING  the API accepted it and is putting it on the queue (not there yet)
    QUEUED   on the queue, waiting for a first try, or again for a scheduled retry
    SENDING  a worker holds its claim and a send is under way
    SENT     a provider accepted it: never sent again, whatever SQS redelivers
    ERROR    final failure (rejected, out of attempts, or `suppressed`): never sent again
    DELIVERED, BOUNCED (hard or soft), COMPLAINED   what a provider's webhook said of a SENT one

A claim moves PENDING, QUEUED (or a record not seen before) to SENDING; a settle moves SENDING to
SENT, ERROR or QUEUED; a webhook event (`dispatcher.feedback`) moves SENT onwards. A claim
for a recipient on the suppression list (`dispatcher.suppression`) ends it ERROR `suppressed`,
unsent, in the same script. The script that changes a status also moves the id between its shard's
status indexes (`dispatcher.keys`), in the same call: one script call per message and step.

Every operation on a batch of messages is one pipelined round trip of scripts that each touch
one shard's slot, so it runs unchanged on Redis Cluster. An error reply about one record
(`WRONGTYPE`, a script error on its data) fails that message alone (`FAILED`); one about Redis
itself fails the whole call.
"""

from __future__ import annotations

import enum
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher import keys
from dispatcher.ledger_record import Record, RecordStatus, parse_record
from dispatcher.message import MAX_TIMESTAMP, MessageError
from dispatcher.scripts import AnyPipeline, LuaScript, RedisClient, load, run_batch
from dispatcher.suppression import AddressHasher

__all__ = ["Record", "RecordStatus", "parse_record"]  # also imported from here

CLAIM, SETTLE, EXTEND = (LuaScript(name, "_index") for name in ("claim", "settle", "extend"))
SCRIPTS = (CLAIM, SETTLE, EXTEND)
PROBE_TTL_MS = 1000
FEEDBACK_COUNTER_TTL = 26 * 3600  # hourly counters: 24 h of rates, and some slack


class ClaimVerdict(enum.StrEnum):
    CLAIMED = "CLAIMED"  # ours to send
    SENT = "SENT"  # already sent: delete without sending
    ERROR = "ERROR"  # already failed for good: delete without sending
    DEAD_LETTER = "DEAD_LETTER"  # failed for good; its DLQ copy may be missing: copy, then delete
    BUSY = "BUSY"  # another worker is sending it right now: leave it on the queue
    FAILED = "FAILED"  # Redis could not claim this record (an error about its key): retry later
    SUPPRESSED = "SUPPRESSED"  # a recipient is suppressed: now ERROR `suppressed`; delete


@dataclass(frozen=True, slots=True)
class Claim:
    message_id: str
    verdict: ClaimVerdict
    attempts: int  # attempts already recorded before this one
    busy_for: float = 0.0  # seconds left on another owner's lease, when BUSY
    reason: str = ""  # why, when DEAD_LETTER (the recorded error) or FAILED (the Redis error)
    same_provider: str = ""  # when CLAIMED after an ambiguous outcome under `retry_same`


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    message_id: str
    owner: str
    batch_id: str | None = None
    created_at: float | None = None  # epoch seconds, 0 to MAX_TIMESTAMP
    recipients: tuple[str, ...] = ()  # every to, cc and bcc: checked against the suppression list
    first_choice: str = ""  # the provider planned first: recorded as `via` before the call

    def __post_init__(self) -> None:
        """Refuse a time the record cannot hold as integer milliseconds (NaN and inf too)."""
        if self.created_at is not None and not 0 <= self.created_at <= MAX_TIMESTAMP:
            raise MessageError("created_at", "out of the ledger's range")


@dataclass(frozen=True, slots=True)
class Settlement:
    message_id: str
    owner: str
    status: RecordStatus  # SENT, QUEUED (retry) or ERROR (final)
    provider: str | None = None
    provider_message_id: str | None = None
    error: str | None = None
    count_attempt: bool = True
    ambiguous_via: str | None = None
    dead_letter: bool = False  # an ERROR that goes to the dead-letter queue


class SettleVerdict(enum.StrEnum):
    OK = "OK"
    SENT = "SENT"  # it was already SENT: nothing changed
    STALE = "STALE"  # our claim passed to another owner: leave the message alone
    FAILED = "FAILED"  # Redis could not write this record (an error about its key)


@dataclass(frozen=True, slots=True)
class Settled:
    message_id: str
    verdict: SettleVerdict
    attempts: int
    error: str = ""  # the Redis error, when FAILED


class Ledger:
    """Claims and outcomes per message id. `clock` (epoch seconds) defaults to Redis `TIME`."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        ttl_seconds: int,
        clock: Callable[[], float] | None = None,
        hasher: AddressHasher | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = str(ttl_seconds)
        self._clock = clock
        self._hasher = hasher or AddressHasher("", prefix)

    async def load_scripts(self) -> None:
        await load(self._redis, SCRIPTS)

    async def ping(self) -> None:
        """One cheap round trip; raises `RedisError` while Redis cannot be reached (so that a
        worker that could not claim can wait for the ledger before it receives again)."""
        await self._redis.ping()

    async def probe(self) -> None:
        """One small write (a key that expires at once); raises `RedisError` while the ledger
        cannot be written: unreachable, or answering READONLY, OOM, MISCONF, ... (PING still
        answers then). A worker that could not claim waits for this before it receives again."""
        await self._redis.set(keys.ledger_probe(self._prefix), "1", px=PROBE_TTL_MS)

    def _now(self) -> str:
        return str(int(self._clock() * 1000)) if self._clock else ""

    def _key(self, message_id: str) -> str:
        return keys.message(self._prefix, message_id)

    def _keys(self, message_id: str, batch_id: str | None = None) -> list[str]:
        return keys.record_keys(self._prefix, message_id, batch_id)

    async def claim(
        self,
        requests: Sequence[ClaimRequest],
        lease_seconds: float,
        on_ambiguous: str = "retry_same",
    ) -> list[Claim]:
        """Claim every message in one round trip, recording each one's provider (`via`) before
        it is called; `on_ambiguous` (`dispatch.on_ambiguous`) says what a claim after an
        ambiguous outcome does (lua/claim.lua)."""
        if not requests:
            return []
        now, lease = self._now(), str(int(lease_seconds * 1000))

        def build(pipe: AnyPipeline) -> None:
            for req in requests:
                created = "" if req.created_at is None else str(int(req.created_at * 1000))
                shard = keys.shard_of(req.message_id)
                batch = (
                    [keys.index_batch(self._prefix, shard, req.batch_id)] if req.batch_id else []
                )
                CLAIM.queue(
                    pipe,
                    [
                        *self._keys(req.message_id),
                        keys.suppression_shard(self._prefix, shard),
                        *batch,
                    ],
                    [
                        *(req.owner, now, lease, self._ttl),
                        *(req.batch_id or "", created, req.message_id),
                        *(req.first_choice, on_ambiguous),
                        *sorted({self._hasher.digest(r) for r in req.recipients}),
                    ],
                )

        replies = await run_batch(self._redis, SCRIPTS, build, isolate=True)
        return [_claim(req.message_id, reply) for req, reply in zip(requests, replies, strict=True)]

    async def settle(self, settlements: Sequence[Settlement]) -> list[Settled]:
        """Record every outcome in one round trip."""
        if not settlements:
            return []
        now = self._now()

        def build(pipe: AnyPipeline) -> None:
            for s in settlements:
                found = s.status is RecordStatus.SENT and s.provider_message_id
                SETTLE.queue(
                    pipe,
                    [
                        *self._keys(s.message_id),
                        *(
                            [keys.provider_message(self._prefix, s.message_id, found)]
                            if found
                            else []
                        ),
                    ],
                    [
                        s.owner,
                        s.status.value,
                        now,
                        s.provider or "",
                        s.provider_message_id or "",
                        s.error or "",
                        "1" if s.count_attempt else "0",
                        s.ambiguous_via or "",
                        self._ttl,
                        "1" if s.dead_letter else "0",
                        s.message_id,
                    ],
                )
            sent = Counter(
                f"{s.provider}:sent" for s in settlements if s.status is RecordStatus.SENT
            )
            if sent:  # for the bounce and complaint rates (dispatcher.feedback)
                counter = keys.feedback_counts(self._prefix, int(time.time() // 3600))
                for field, n in sent.items():
                    pipe.hincrby(counter, field, n)
                pipe.expire(counter, FEEDBACK_COUNTER_TTL)

        replies = await run_batch(self._redis, SCRIPTS, build, isolate=True)
        return [
            _settled(s.message_id, reply)
            for s, reply in zip(settlements, replies[: len(settlements)], strict=True)
        ]

    async def extend(self, claims: Sequence[tuple[str, str]], lease_seconds: float) -> list[bool]:
        """Extend (message_id, owner) claims; a lease of 0 hands them back as QUEUED."""
        if not claims:
            return []
        now, lease = self._now(), str(int(lease_seconds * 1000))

        def build(pipe: AnyPipeline) -> None:
            for message_id, owner in claims:
                EXTEND.queue(
                    pipe, self._keys(message_id), [owner, now, lease, self._ttl, message_id]
                )

        replies = await run_batch(self._redis, SCRIPTS, build, isolate=True)
        return [not isinstance(held, Exception) and bool(held) for held in replies]

    async def get(self, message_id: str) -> Record | None:
        raw: dict[bytes | str, bytes | str] = await self._redis.hgetall(self._key(message_id))
        return parse_record(message_id, raw)


def _claim(message_id: str, reply: Any) -> Claim:
    if isinstance(reply, Exception):
        return Claim(message_id, ClaimVerdict.FAILED, 0, reason=_error(reply))
    verdict, attempts, extra = reply
    kind = ClaimVerdict(_text(verdict))
    if kind is ClaimVerdict.BUSY:
        return Claim(message_id, kind, int(attempts), busy_for=int(extra) / 1000)
    if kind is ClaimVerdict.CLAIMED:
        return Claim(message_id, kind, int(attempts), same_provider=_text(extra))
    return Claim(message_id, kind, int(attempts), reason=_text(extra))


def _settled(message_id: str, reply: Any) -> Settled:
    if isinstance(reply, Exception):
        return Settled(message_id, SettleVerdict.FAILED, 0, error=_error(reply))
    verdict, attempts = reply
    return Settled(message_id, SettleVerdict(_text(verdict)), int(attempts))


def _error(error: Exception) -> str:
    """A Redis error reply, short: its code and first words (never a key or a value)."""
    return f"{type(error).__name__}: {str(error).split(' script:')[0][:80]}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""The Redis ledger: one record per message id, claims with a lease, and settled outcomes.

Statuses, in lifecycle order::

    PENDING  the API accepted it and is putting it on the queue (not there yet)
    QUEUED   on the queue, waiting for a first try, or again for a scheduled retry
    SENDING  a worker holds its claim and a send is under way
    SENT     a provider accepted it: never sent again, whatever SQS redelivers
    ERROR    final failure (rejected, or out of attempts): never sent again

A claim moves PENDING, QUEUED (or a record not seen before) to SENDING; a settle moves SENDING to
SENT, ERROR or QUEUED. The script that changes a status also moves the id between its shard's
status indexes (`dispatcher.keys`), in the same call: one script call per message and step.

Every operation on a batch of messages is one pipelined round trip of scripts that each touch
one shard's slot, so it runs unchanged on Redis Cluster. An error reply about one record
(`WRONGTYPE`, a script error on its data) fails that message alone (`FAILED`); one about Redis
itself fails the whole call.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher import keys
from dispatcher.message import MAX_TIMESTAMP, MessageError
from dispatcher.scripts import AnyPipeline, LuaScript, RedisClient, load, run_batch

CLAIM, SETTLE, EXTEND = (LuaScript(name, "_index") for name in ("claim", "settle", "extend"))
SCRIPTS = (CLAIM, SETTLE, EXTEND)
PROBE_TTL_MS = 1000


class RecordStatus(enum.StrEnum):
    PENDING = "PENDING"  # accepted by the API, not on the queue yet
    QUEUED = "QUEUED"  # on the queue: first try, or a scheduled retry
    SENDING = "SENDING"  # a worker holds the claim
    SENT = "SENT"  # a provider accepted it
    ERROR = "ERROR"  # failed for good


class ClaimVerdict(enum.StrEnum):
    CLAIMED = "CLAIMED"  # ours to send
    SENT = "SENT"  # already sent: delete without sending
    ERROR = "ERROR"  # already failed for good: delete without sending
    DEAD_LETTER = "DEAD_LETTER"  # failed for good; its DLQ copy may be missing: copy, then delete
    BUSY = "BUSY"  # another worker is sending it right now: leave it on the queue
    FAILED = "FAILED"  # Redis could not claim this record (an error about its key): retry later


@dataclass(frozen=True, slots=True)
class Claim:
    message_id: str
    verdict: ClaimVerdict
    attempts: int  # attempts already recorded before this one
    busy_for: float = 0.0  # seconds left on another owner's lease, when BUSY
    reason: str = ""  # why, when DEAD_LETTER (the recorded error) or FAILED (the Redis error)


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    message_id: str
    owner: str
    batch_id: str | None = None
    created_at: float | None = None  # epoch seconds, 0 to MAX_TIMESTAMP

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


@dataclass(frozen=True, slots=True)
class Record:
    message_id: str
    status: RecordStatus
    attempts: int
    provider: str | None
    provider_message_id: str | None
    last_error: str | None
    ambiguous_via: tuple[str, ...]
    batch_id: str | None
    created_at: float | None
    received_at: float | None
    updated_at: float | None
    sent_at: float | None
    created_by: str | None = None  # the API key's name, for messages sent through the API
    indexed_at: float | None = None  # its time in the status indexes (created_at, clamped)


class Ledger:
    """Claims and outcomes per message id. `clock` (epoch seconds) defaults to Redis `TIME`."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        ttl_seconds: int,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = str(ttl_seconds)
        self._clock = clock

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

    async def claim(self, requests: Sequence[ClaimRequest], lease_seconds: float) -> list[Claim]:
        """Claim every message in one round trip."""
        if not requests:
            return []
        now, lease = self._now(), str(int(lease_seconds * 1000))

        def build(pipe: AnyPipeline) -> None:
            for req in requests:
                created = "" if req.created_at is None else str(int(req.created_at * 1000))
                CLAIM.queue(
                    pipe,
                    self._keys(req.message_id, req.batch_id),
                    [
                        *(req.owner, now, lease, self._ttl),
                        *(req.batch_id or "", created, req.message_id),
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
                SETTLE.queue(
                    pipe,
                    self._keys(s.message_id),
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

        replies = await run_batch(self._redis, SCRIPTS, build, isolate=True)
        return [
            _settled(s.message_id, reply) for s, reply in zip(settlements, replies, strict=True)
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


def parse_record(message_id: str, raw: dict[bytes | str, bytes | str]) -> Record | None:
    """A record from its hash fields (HGETALL), or None for an empty reply (no such record)."""
    if not raw:
        return None
    doc = {_text(k): _text(v) for k, v in raw.items()}
    via = doc.get("ambiguous_via")
    return Record(
        message_id=message_id,
        status=RecordStatus(doc["status"]),
        attempts=int(doc.get("attempts", "0")),
        provider=doc.get("provider"),
        provider_message_id=doc.get("provider_message_id"),
        last_error=doc.get("last_error"),
        ambiguous_via=tuple(via.split(",")) if via else (),
        batch_id=doc.get("batch_id"),
        created_at=_seconds(doc.get("created_at")),
        received_at=_seconds(doc.get("received_at")),
        updated_at=_seconds(doc.get("updated_at")),
        sent_at=_seconds(doc.get("sent_at")),
        created_by=doc.get("created_by"),
        indexed_at=_seconds(doc.get("ix")),
    )


def _claim(message_id: str, reply: Any) -> Claim:
    if isinstance(reply, Exception):
        return Claim(message_id, ClaimVerdict.FAILED, 0, reason=_error(reply))
    verdict, attempts, extra = reply
    kind = ClaimVerdict(_text(verdict))
    if kind is ClaimVerdict.BUSY:
        return Claim(message_id, kind, int(attempts), busy_for=int(extra) / 1000)
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


def _seconds(millis: str | None) -> float | None:
    return int(millis) / 1000 if millis else None

"""The API's side of the ledger: record messages PENDING before they go on the queue, then
QUEUED once SQS holds them (or released, still PENDING, when it refused them).

Each intake (one request, or one CSV upload) has a token. A record it made stays its own for
`lease_seconds`; after that, or once released, another intake of the same message (a retry with
the same Idempotency-Key, a re-upload of the same campaign) takes it over and enqueues it again.
Every call is one pipelined round trip of one script per message, each in its shard's slot.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dispatcher import keys
from dispatcher.scripts import LuaScript, RedisClient, load, run_batch

ACCEPT = LuaScript("accept", "_index")
ENQUEUED = LuaScript("enqueued", "_index")
SCRIPTS = (ACCEPT, ENQUEUED)


class Accepted(enum.StrEnum):
    NEW = "NEW"  # recorded PENDING: enqueue it
    RETAKEN = "RETAKEN"  # PENDING, left by an intake that failed or died: enqueue it
    DUPLICATE = "DUPLICATE"  # seen by this intake, or queued already, or another intake's


@dataclass(frozen=True, slots=True)
class Pending:
    message_id: str
    batch_id: str


class IntakeLedger:
    """`clock` (epoch seconds) defaults to Redis `TIME`."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        ttl_seconds: int,
        *,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl = str(ttl_seconds)
        self._lease = str(int(lease_seconds * 1000))
        self._clock = clock

    async def load_scripts(self) -> None:
        await load(self._redis, SCRIPTS)

    def _now(self) -> str:
        return str(int(self._clock() * 1000)) if self._clock else ""

    async def accept(
        self, messages: Sequence[Pending], token: str, created_by: str
    ) -> list[Accepted]:
        """Record each message PENDING, or say why it must not be enqueued by this intake."""
        if not messages:
            return []
        now = self._now()

        calls = [
            ACCEPT.call(
                keys.record_keys(self._prefix, m.message_id, m.batch_id),
                [m.message_id, token, now, self._ttl, self._lease, created_by, m.batch_id],
            )
            for m in messages
        ]
        replies = await run_batch(self._redis, SCRIPTS, calls)
        return [Accepted(_text(r)) for r in replies]

    async def enqueued(self, queued: Sequence[str], failed: Sequence[str], token: str) -> None:
        """Mark `queued` ids QUEUED and release `failed` ones (still PENDING)."""
        if not queued and not failed:
            return
        now = self._now()

        calls = [
            ENQUEUED.call(
                keys.record_keys(self._prefix, message_id),
                [message_id, token, now, self._ttl, outcome],
            )
            for outcome, ids in (("QUEUED", queued), ("FAILED", failed))
            for message_id in ids
        ]
        await run_batch(self._redis, SCRIPTS, calls)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

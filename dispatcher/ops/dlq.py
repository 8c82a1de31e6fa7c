"""`dispatcher dlq stats|show|redrive`: the dead-letter queue, read and moved back.

    stats    messages by reason (the `dispatcher_error` attribute)
    show     message ids and reasons (never an address, a subject or a body)
    redrive  back to the source queue at a bounded rate, once the cause is fixed

Reading a queue hides what it receives: `stats` and `show` hide each message for PEEK_SECONDS
and hand all back (visibility 0) when done. A redrive, per batch of at most ten: the ledger
records are readied first (`lua/redrive.lua`: a dead-lettered ERROR becomes QUEUED, attempts
afresh, history kept), then the bodies are sent to the source queue, and only the copies SQS
took there are deleted from the DLQ. So the worker sends each message exactly once more, and a
redrive cut short is simply run again (a QUEUED record is READY). A message whose record says
it was sent, or is being sent, stays in the DLQ.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from dispatcher import keys
from dispatcher.queue import REASON_ATTRIBUTE, SQS_BATCH
from dispatcher.scripts import LuaScript, RedisClient, run_batch

REDRIVE = LuaScript("redrive", "_index")
PEEK_SECONDS = 30
HOLD_SECONDS = 120  # a message being redriven, or kept back, is hidden this long
GO = frozenset({"REDRIVE", "READY"})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    sqs_id: str
    receipt: str
    body: str
    reason: str
    message_id: str | None  # the body's `id`, when it has one


@dataclass(slots=True)
class Redriven:
    moved: int = 0
    kept: Counter[str] = field(default_factory=Counter)  # why some stayed: status, send_failed


def _dead_letter(m: dict[str, Any]) -> DeadLetter:
    attribute = m.get("MessageAttributes", {}).get(REASON_ATTRIBUTE, {})
    try:
        doc = orjson.loads(m["Body"])
        found = doc.get("id") if isinstance(doc, dict) else None
    except orjson.JSONDecodeError:
        found = None
    message_id = found if isinstance(found, str) and found else None
    reason = str(attribute.get("StringValue", "(no reason)"))
    return DeadLetter(m["MessageId"], m["ReceiptHandle"], m["Body"], reason, message_id)


async def receive(sqs: Any, url: str, count: int, hide: int) -> list[DeadLetter]:
    reply = await sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=max(1, min(SQS_BATCH, count)),
        WaitTimeSeconds=0,
        VisibilityTimeout=hide,
        MessageAttributeNames=[REASON_ATTRIBUTE],
    )
    return [_dead_letter(m) for m in reply.get("Messages", [])]


async def hand_back(sqs: Any, url: str, letters: Sequence[DeadLetter]) -> None:
    """Make `letters` visible again now."""
    for start in range(0, len(letters), SQS_BATCH):
        entries = [
            {"Id": str(i), "ReceiptHandle": d.receipt, "VisibilityTimeout": 0}
            for i, d in enumerate(letters[start : start + SQS_BATCH])
        ]
        await sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)


async def peek(sqs: Any, url: str, limit: int = 0) -> list[DeadLetter]:
    """Up to `limit` (0: all) messages of the DLQ, each once; all visible again after."""
    seen: dict[str, DeadLetter] = {}
    empty = 0
    try:
        while empty < 2 and not (limit and len(seen) >= limit):
            batch = await receive(
                sqs, url, (limit - len(seen)) if limit else SQS_BATCH, PEEK_SECONDS
            )
            empty = 0 if batch else empty + 1
            seen.update((d.sqs_id, d) for d in batch)
    finally:
        await hand_back(sqs, url, list(seen.values()))
    return list(seen.values())


def by_reason(letters: Sequence[DeadLetter]) -> Counter[str]:
    return Counter(d.reason for d in letters)


class Pacer:
    """At most `rate` messages a second, over the whole run."""

    def __init__(self, rate: float) -> None:
        self._interval, self._next = 1.0 / rate, time.monotonic()

    async def wait(self, count: int) -> None:
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + count * self._interval


async def ready(
    redis: RedisClient, prefix: str, ttl: int, letters: Sequence[DeadLetter]
) -> list[str]:
    """Each message's verdict from `lua/redrive.lua`, in one round trip (READY without an id)."""
    known = [d.message_id for d in letters if d.message_id]

    calls = [REDRIVE.call(keys.record_keys(prefix, m), ["", ttl, m]) for m in known]
    replies = iter(await run_batch(redis, [REDRIVE], calls) if known else [])
    return [_text(next(replies)) if d.message_id else "READY" for d in letters]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class Target:
    dlq_url: str
    source_url: str
    prefix: str  # Redis key prefix of the ledger
    ttl: int  # record TTL, seconds


async def redrive(
    sqs: Any, redis: RedisClient, target: Target, rate: float, limit: int
) -> Redriven:
    """Move up to `limit` (0: all) messages back, at most `rate` a second."""
    pacer, report, held = Pacer(rate), Redriven(), list[DeadLetter]()
    step, empty = max(1, min(SQS_BATCH, int(rate))), 0
    try:
        while empty < 2 and not (limit and report.moved + len(held) >= limit):
            want = min(step, limit - report.moved - len(held)) if limit else step
            batch = await receive(sqs, target.dlq_url, want, HOLD_SECONDS)
            empty = 0 if batch else empty + 1
            verdicts = await ready(redis, target.prefix, target.ttl, batch) if batch else []
            go = [d for d, v in zip(batch, verdicts, strict=True) if v in GO]
            stay = [(d, v) for d, v in zip(batch, verdicts, strict=True) if v not in GO]
            if go:
                await pacer.wait(len(go))
                moved = await _move(sqs, target, go)
                report.moved += len(moved)
                stay += [(d, "send_failed") for d in go if d not in moved]
            held += [d for d, _ in stay]
            report.kept.update(v for _, v in stay)
    finally:
        await hand_back(sqs, target.dlq_url, held)
    return report


async def _move(sqs: Any, target: Target, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """Send to the source queue; delete from the DLQ only the copies SQS took there."""
    reply = await sqs.send_message_batch(
        QueueUrl=target.source_url,
        Entries=[{"Id": str(i), "MessageBody": d.body} for i, d in enumerate(letters)],
    )
    failed = {int(f["Id"]) for f in reply.get("Failed", [])}
    moved = [d for i, d in enumerate(letters) if i not in failed]
    if moved:
        await sqs.delete_message_batch(
            QueueUrl=target.dlq_url,
            Entries=[{"Id": str(i), "ReceiptHandle": d.receipt} for i, d in enumerate(moved)],
        )
    return moved

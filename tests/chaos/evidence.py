"""Gather the evidence after a phase: the fakes' receipts, the ledger (read from Redis
directly, not through the proxy), the status API, and both queues (the DLQ is read whole and
emptied, its reason attribute kept)."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from redis.asyncio import Redis

from dispatcher.dev.fakes import Receipt
from dispatcher.dev.stack import queue_depth
from dispatcher.ledger import Ledger
from dispatcher.ledger_record import Record, RecordStatus
from dispatcher.queue import REASON_ATTRIBUTE
from tests.chaos.accounting import SENT_OR_LATER, Account, Evidence, account
from tests.chaos.load import Sent
from tests.chaos.schedule import Window
from tests.chaos.stack import KEY_PREFIX
from tests.support.harness import drain_queue

if TYPE_CHECKING:
    from tests.chaos.runner import Stage

T = TypeVar("T")
_TOKEN = re.compile(r"poison-[a-z]+-\d{6}")
_CONCURRENCY = 32


async def _bounded(items: Iterable[str], fetch: Callable[[str], Awaitable[T]]) -> dict[str, T]:
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(item: str) -> tuple[str, T]:
        async with gate:
            return item, await fetch(item)

    return dict(await asyncio.gather(*(one(i) for i in items)))


async def read_records(redis_port: int, ids: Iterable[str]) -> dict[str, Record | None]:
    client = Redis(port=redis_port)
    try:
        ledger = Ledger(client, KEY_PREFIX, 86_400)
        return await _bounded(ids, ledger.get)
    finally:
        await client.aclose()


def _final(record: Record | None, forgotten: bool) -> bool:
    if record is None:
        return forgotten
    return record.status in SENT_OR_LATER or record.status is RecordStatus.ERROR


async def settled(stage: Stage, sent: Sent, seconds: float) -> bool:
    """Wait until every id has a final ledger status (or, its record lost with the data, a
    receipt) and the main queue is empty; False after `seconds`."""
    deadline, said = time.monotonic() + seconds, time.monotonic()
    while time.monotonic() < deadline:
        received = {r.dispatcher_id for f in stage.rig.fakes.all() for r in f.receipts}
        records = await read_records(stage.rig.redis.port, sent.ids())
        waiting = Counter(
            r.status.value if r else "no record"
            for i, r in records.items()
            if not _final(r, i in received)
        )
        depth = await queue_depth(stage.sqs, stage.endpoints.queues.url)
        if not waiting and depth == 0:
            return True
        if time.monotonic() - said > 10:
            stage.rig.log(f"  waiting: {dict(waiting)}, main queue depth {depth}")
            said = time.monotonic()
        await asyncio.sleep(1.0)
    return False


async def api_statuses(stage: Stage, ids: Iterable[str]) -> dict[str, str | None]:
    async def fetch(message_id: str) -> str | None:
        async with stage.http.get(f"{stage.api_url}/v1/emails/{message_id}") as reply:
            if reply.status == 404:
                return None
            doc = await reply.json()
            return str(doc["status"]) if reply.status == 200 else f"HTTP {reply.status}"

    return await _bounded(ids, fetch)


async def read_dlq(sqs: Any, url: str) -> dict[str, str]:
    """Every message on the DLQ by id (or poison token), with its reason; deleted once read."""
    found: dict[str, str] = {}
    for message in await drain_queue(sqs, url):
        attribute = message.get("MessageAttributes", {}).get(REASON_ATTRIBUTE, {})
        found[_dlq_key(message["Body"])] = attribute.get("StringValue", "")
        await sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def _dlq_key(body: str) -> str:
    token = _TOKEN.search(body)
    if token:
        return token.group(0)
    try:
        return str(orjson.loads(body)["id"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return body[:40]


def receipts_by_id(fakes: Sequence[Any], offsets: Mapping[str, int]) -> dict[str, list[Receipt]]:
    found: defaultdict[str, list[Receipt]] = defaultdict(list)
    for fake in fakes:
        for receipt in fake.receipts[offsets[fake.kind] :]:
            found[receipt.dispatcher_id or ""].append(receipt)
    for receipts in found.values():
        receipts.sort(key=lambda r: r.received_at)
    return dict(found)


async def collect(
    stage: Stage, sent: Sent, offsets: Mapping[str, int], volatile: Sequence[Window]
) -> tuple[Account, tuple[int, int]]:
    """The accounting of one phase, and the queue depths (main, DLQ) after reading the DLQ."""
    ids = sent.ids()
    queues = stage.endpoints.queues
    await asyncio.sleep(2)  # a DLQ copy is written before the original is deleted
    evidence = Evidence(
        sent=sent,
        receipts=receipts_by_id(stage.rig.fakes.all(), offsets),
        records=await read_records(stage.rig.redis.port, ids),
        api_status=await api_statuses(stage, ids),
        dlq=await read_dlq(stage.sqs, queues.dlq_url),
        volatile_restarts=volatile,
    )
    depths = (
        await queue_depth(stage.sqs, queues.url),
        await queue_depth(stage.sqs, queues.dlq_url),
    )
    return account(evidence), depths

"""Header injection through the queue (moto SQS, real Redis, fake SendGrid): a message with CR,
LF, CRLF, NUL or a line over 998 octets in any header-bearing field is dead-lettered with a
reason naming the field, by the same rules as the API (`dispatcher.message_fields`), and the
worker goes on sending the good messages around it."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair
from dispatcher.queue import REASON_ATTRIBUTE
from tests.support.configs import sendgrid
from tests.support.harness import (
    alive_and,
    drain_queue,
    empty,
    enqueue,
    eventually,
    records,
    running_task,
    sent_ids,
    settings,
)
from tests.support.injection import ATTACKS, FIELDS, inject, one_of_each

PREFIX = "invalid message: "


@pytest.mark.parametrize("attack", ATTACKS)
async def test_each_field_with_injection_is_dead_lettered_naming_it(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str, attack: str
) -> None:
    bad, named = [], {}
    for n, field in enumerate(FIELDS, start=100):
        doc = email_doc(n, **one_of_each())
        named[doc["id"]] = inject(doc, field, attack)
        bad.append(doc)
    good = [email_doc(1, **one_of_each()), email_doc(2)]
    await enqueue(sqs, queues.url, [good[0], *bad, good[1]])
    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)])
        async with running_task(config) as (worker, task):
            stats = worker.stats
            done = alive_and(task, lambda: stats.poison >= len(bad) and stats.sent == 2)
            await eventually(done, 60, "every bad message dead-lettered, the good ones sent")
            await eventually(empty(sqs, queues.url), 30, "queue empty")
    assert sent_ids(sg) == ["msg-00001", "msg-00002"]
    assert await records(redis, list(named)) == {"missing": len(bad)}  # never claimed
    reasons: dict[str, set[str]] = {}
    for message in await drain_queue(sqs, queues.dlq_url):
        reason = message["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
        reasons.setdefault(orjson.loads(message["Body"])["id"], set()).add(reason)
    assert reasons.keys() == named.keys()
    for message_id, reasons_given in reasons.items():
        for reason in reasons_given:
            assert reason.startswith(PREFIX), reason
            field = reason.removeprefix(PREFIX).partition(": ")[0]
            assert field in named[message_id], (message_id, reason)

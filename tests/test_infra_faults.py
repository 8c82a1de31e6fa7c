"""The worker's clients under infrastructure faults: a Redis restart, an SQS endpoint gone during a
long send, an evicting Redis memory policy, and the in-flight limit's memory."""

from __future__ import annotations

import asyncio
from typing import Any

from dispatcher.app import open_redis
from dispatcher.concurrency import AdaptiveLimit
from dispatcher.config import DispatchSettings
from dispatcher.devstack import RedisServer
from providers.base import Outcome, Status
from tests.conftest import QueuePair
from tests.fakes import FakeSendGrid
from tests.harness import email_doc, enqueue, eventually, running, settings
from tests.test_worker import sendgrid


async def test_a_redis_client_reconnects_after_a_restart_within_one_call() -> None:
    async with RedisServer() as server:
        client = open_redis(server.url)
        try:
            await client.set("k", "v")  # a pooled connection now exists
            port = server.port
            await asyncio.to_thread(server.restart)
            assert server.port == port
            # The pooled connection is dead: the client's retry must reconnect within the call.
            assert await client.set("k", "w")
            assert await client.get("k") == b"w"
        finally:
            await client.aclose()


def test_a_fixed_limit_keeps_no_latencies() -> None:
    fixed = AdaptiveLimit(DispatchSettings(max_in_flight=32))
    adaptive = AdaptiveLimit(DispatchSettings(max_in_flight=64))
    assert fixed.fixed
    for limit in (fixed, adaptive):
        for status in (Status.SENT, Status.REJECTED, Status.THROTTLED) * 1000:
            limit.observe(Outcome(status, "a", latency=0.01))
    assert fixed.samples == 0  # nothing closes its intervals: it must not count at all
    assert adaptive.samples == 3000
    adaptive.adjust(64)
    assert adaptive.samples == 0  # each interval clears what it counted


async def test_a_worker_with_a_fixed_limit_does_not_accumulate_latencies(
    sqs: Any, queues: QueuePair, redis_url: str, sqs_endpoint: str
) -> None:
    count = 300
    await enqueue(sqs, queues.url, [email_doc(i) for i in range(count)])
    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], max_in_flight=32)
        async with running(config) as worker:
            assert worker.limit.fixed  # max_in_flight <= 32: the default floor equals it
            await eventually(lambda: worker.stats.sent == count, 120, f"{count} sent")
            assert worker.limit.samples == 0
    assert len(sg.receipts) == count

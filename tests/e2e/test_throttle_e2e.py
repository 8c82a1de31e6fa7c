"""A 429 storm end to end: throttling shifts load until the reset time, never opens a breaker.

Fake SendGrid answers 429 with `X-RateLimit-Reset` (fake Mailgun with `Retry-After`) for a few
seconds. The throttle-until lands in Redis with the first answers, so the router stops choosing
the provider after about one flight of sends, and takes it back after the reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, queue_depth
from dispatcher.health.base import ProviderHealth
from dispatcher.worker import Worker
from strategies.base import Circuit
from tests.support.configs import adaptive_pair
from tests.support.harness import drain_queue, enqueue, eventually, records, running

RESET_SECONDS = 3.0
MAX_IN_FLIGHT = 16
POLLERS = 2
# Sends already routed to a provider when its first 429 comes back: those in flight, plus the
# batches admitted before the throttle-until reaches the router (a flush, then a refresh).
FLIGHT = MAX_IN_FLIGHT + POLLERS * 10


def ids_of(indexes: range) -> list[str]:
    return [f"msg-{i:05d}" for i in indexes]


def throttled(health: ProviderHealth) -> bool:
    return health.throttled_until is not None and health.throttled_until > health.at


@contextlib.asynccontextmanager
async def watching(worker: Worker, name: str) -> AsyncIterator[list[ProviderHealth]]:
    """Sample `name`'s shared health every 50 ms while the block runs."""
    seen: list[ProviderHealth] = []

    async def watch() -> None:
        while True:
            seen.append((await worker.router.health.snapshot())[name])
            await asyncio.sleep(0.05)

    task = asyncio.create_task(watch())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_429_storm_shifts_traffic_without_opening_the_breaker(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    before, storm, after = range(60), range(60, 210), range(210, 310)
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        for fake in (sg, mg):
            fake.faults.latency(20)
        config = adaptive_pair(
            queues, sqs_endpoint, redis_url, sg, mg, max_in_flight=MAX_IN_FLIGHT, pollers=POLLERS
        )
        await enqueue(sqs, queues.url, [email_doc(i) for i in before])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent == len(before), 60, "sent before")
            assert sg.receipts, "adaptive spreads over both when both are healthy"
            calm = (await worker.router.health.snapshot())["sendgrid"]
            assert calm.circuit is Circuit.CLOSED

            async with watching(worker, "sendgrid") as seen:
                sg.faults.throttle(reset_in=RESET_SECONDS)
                storm_at = time.time()
                await enqueue(sqs, queues.url, [email_doc(i) for i in storm])
                await asyncio.sleep(storm_at + RESET_SECONDS - time.time())
                sg.faults.clear()  # the reset time the first 429s named has come
                reset_at = time.time()
                throttled_429s = sg.answered[429]
                await eventually(
                    lambda: worker.stats.sent == len(before) + len(storm), 60, "storm sent"
                )
                await eventually(lambda: not throttled(seen[-1]), 30, "the throttle-until passed")
                await enqueue(sqs, queues.url, [email_doc(i) for i in after])
                await eventually(lambda: worker.stats.sent == len(ids_of(range(310))), 60, "after")
            final = (await worker.router.health.snapshot())["sendgrid"]
            stats = worker.stats

    during_storm = [r for r in mg.receipts if storm_at <= r.received_at < reset_at]
    sg_after = [r for r in sg.receipts if r.received_at >= reset_at]
    print(
        f"429s answered {sg.answered[429]} (by the reset {throttled_429s}); mailgun took "
        f"{len(during_storm)} during the {RESET_SECONDS}s storm; sendgrid took {len(sg_after)} "
        f"after it; retried {stats.retried}"
    )

    # Nothing lost, nothing twice, all recorded SENT, nothing dead-lettered.
    ids = ids_of(range(310))
    assert sorted(r.dispatcher_id or "" for r in sg.receipts + mg.receipts) == ids
    assert await records(redis, ids) == {"SENT": len(ids)}
    assert await queue_depth(sqs, queues.url) == 0
    assert await drain_queue(sqs, queues.dlq_url) == []
    assert stats.dead_lettered == 0

    # Throttling is not an outage: the breaker never left closed, its generation never moved.
    assert seen, "sampled during the storm"
    assert {h.circuit for h in seen} == {Circuit.CLOSED}
    assert {h.generation for h in seen} | {final.generation} == {calm.generation}
    assert any(throttled(h) for h in seen)

    # Load shifted after about one flight of 429s (not one per message), each failed over at
    # once (no retry), and sendgrid took traffic again after the reset.
    assert 1 <= sg.answered[429] <= FLIGHT
    assert sg.answered[429] == throttled_429s  # none after the reset
    assert len(during_storm) >= 20
    assert stats.retried == 0
    assert len(sg_after) >= 10


async def test_when_every_provider_throttles_the_worker_sheds_then_sends_each_once(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    count = 200
    ids = ids_of(range(count))
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        config = adaptive_pair(
            queues, sqs_endpoint, redis_url, sg, mg, max_in_flight=MAX_IN_FLIGHT, pollers=POLLERS
        )
        for fake in (sg, mg):
            fake.faults.throttle(reset_in=RESET_SECONDS)
        storm_at = time.time()
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(count)])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.shed_polls > 0, 30, "shedding")
            shed_at = time.time()
            received_at_shed = worker.stats.received
            await asyncio.sleep(max(0.0, storm_at + RESET_SECONDS - time.time()))
            received_while_shed = worker.stats.received - received_at_shed
            for fake in (sg, mg):
                fake.faults.clear()
            reset_at = time.time()
            await eventually(lambda: worker.stats.sent == count, 60, "all sent after the reset")
            stats = worker.stats
    answered = sg.answered[429] + mg.answered[429]
    print(
        f"429s answered {answered} (sendgrid {sg.answered[429]}, mailgun {mg.answered[429]}); "
        f"shedding began {shed_at - storm_at:.2f}s into the storm, {stats.shed_polls} polls "
        f"shed, {received_while_shed} received while shedding; all sent "
        f"{time.time() - reset_at:.2f}s after the reset; retried {stats.retried}"
    )

    # Every message sent once, after the reset; all recorded SENT; none dead-lettered.
    assert sorted(r.dispatcher_id or "" for r in sg.receipts + mg.receipts) == ids
    assert all(r.received_at >= reset_at for r in sg.receipts + mg.receipts)
    assert await records(redis, ids) == {"SENT": count}
    assert await drain_queue(sqs, queues.dlq_url) == []
    assert stats.dead_lettered == 0

    # The worker stopped pulling: the messages waited on the queue instead of bouncing.
    assert stats.shed_polls > 0
    assert received_while_shed <= POLLERS * 10
    # A few flights of messages found both providers throttled (those admitted before the
    # throttle-until came back from Redis), not every message: most never left the queue.
    assert 2 <= answered <= 2 * 3 * FLIGHT

"""The worker end to end: moto SQS, real Redis, fake SendGrid and Mailgun, moto SES. Every test
but the thousand-message one runs on one Redis and on a three-primary cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid, MotoServer
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, queue_depth
from dispatcher.ledger import RecordStatus
from dispatcher.queue import REASON_ATTRIBUTE
from dispatcher.worker import Worker
from tests.support.configs import mailgun, sendgrid, ses
from tests.support.harness import (
    drain_queue,
    empty,
    enqueue,
    eventually,
    ledger,
    records,
    running,
    settings,
)
from tests.support.providers import verify_identity
from tests.support.redis_targets import RedisTarget

pytestmark = pytest.mark.redis_targets("single", "cluster")


def settled(worker: Worker, count: int) -> Callable[[], bool]:
    return lambda: worker.stats.settled == count


@pytest.mark.redis_targets("single")  # 40 s: the cluster runs the shorter ones below
async def test_a_thousand_messages_are_each_delivered_exactly_once(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_target: RedisTarget,
    moto: MotoServer,
    sqs_endpoint: str,
) -> None:
    await verify_identity(moto, "example.com")
    count = 1000
    ids = [f"msg-{i:05d}" for i in range(count)]
    await enqueue(sqs, queues.url, [email_doc(i) for i in range(count)])
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        config = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            [sendgrid(sg), mailgun(mg), ses(moto)],
            strategy="round_robin",
            max_in_flight=64,
            cluster=redis_target.cluster,
        )
        async with running(config) as worker:
            await eventually(lambda: worker.stats.settled >= count, 240, "1000 settled")
        ses_ids = [m["body"]["EmailTags"] for m in moto.requests()]
    delivered = [r.dispatcher_id or "" for r in sg.receipts + mg.receipts]
    delivered += [
        next(t["Value"] for t in tags if t["Name"] == "dispatcher_id") for tags in ses_ids
    ]
    assert sorted(delivered) == ids  # every id once: none lost, none twice
    assert min(len(sg.receipts), len(mg.receipts), len(ses_ids)) > 200  # round robin spread
    assert await records(redis, ids) == {"SENT": count}
    assert await queue_depth(sqs, queues.url) == 0
    assert await drain_queue(sqs, queues.dlq_url) == []


async def test_a_redelivery_to_another_worker_mid_send_does_not_send_twice(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_target: RedisTarget,
    sqs_endpoint: str,
) -> None:
    ids = [f"msg-{i:05d}" for i in range(5)]
    await enqueue(sqs, queues.url, [email_doc(i) for i in range(5)])
    async with FakeSendGrid() as sg:
        sg.faults.hang()
        providers = [sendgrid(sg, timeout_seconds=60)]
        # The first worker can hold exactly five, so the redeliveries go to the second.
        full = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            providers,
            visibility_timeout=10,
            max_in_flight=5,
            cluster=redis_target.cluster,
        )
        other = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            providers,
            visibility_timeout=10,
            cluster=redis_target.cluster,
        )
        async with running(full) as first:
            await eventually(lambda: len(first.in_flight) == 5, 30, "five sends in flight")
            async with running(other) as second:
                # SQS hands every message out again while its first send still runs.
                await first.queue.change_visibility(
                    [(e.received.receipt, 0) for e in first.in_flight.values()]
                )
                await eventually(lambda: second.stats.busy >= 5, 30, "redeliveries refused")
                assert second.in_flight == {}
                sg.faults.release()  # the provider answers the original sends now
                await eventually(lambda: first.stats.sent == 5, 30, "sent by the first")
                await eventually(empty(sqs, queues.url), 60, "queue empty")
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == ids
    assert second.stats.sent == 0
    assert await records(redis, ids) == {"SENT": 5}


async def test_a_redelivery_to_the_same_worker_keeps_the_newest_receipt(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_target: RedisTarget,
    sqs_endpoint: str,
) -> None:
    await enqueue(sqs, queues.url, [email_doc(1)])
    async with FakeSendGrid() as sg:
        sg.faults.hang()
        config = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            [sendgrid(sg, timeout_seconds=60)],
            visibility_timeout=10,
            cluster=redis_target.cluster,
        )
        async with running(config) as worker:
            await eventually(lambda: len(worker.in_flight) == 1, 30, "send in flight")
            [entry] = worker.in_flight.values()
            first_receipt = entry.received.receipt
            await worker.queue.change_visibility([(first_receipt, 0)])
            await eventually(lambda: worker.stats.redelivered == 1, 30, "redelivered")
            assert entry.received.receipt != first_receipt
            sg.faults.release()
            await eventually(lambda: worker.stats.sent == 1, 30, "sent")
            await eventually(empty(sqs, queues.url), 30, "queue empty")
    assert [r.dispatcher_id for r in sg.receipts] == ["msg-00001"]
    assert worker.stats.busy == worker.stats.duplicates == 0


async def test_poison_messages_go_to_the_dead_letter_queue_with_a_reason(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_target: RedisTarget,
    sqs_endpoint: str,
) -> None:
    bodies: list[dict[str, Any] | bytes] = [
        b"{not json",
        email_doc(1, v=2),
        email_doc(2, to=[{"email": "nobody"}]),
        email_doc(3, subject=None),
        email_doc(4),
    ]
    await enqueue(sqs, queues.url, bodies)
    async with FakeSendGrid() as sg:
        config = settings(
            queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], cluster=redis_target.cluster
        )
        async with running(config) as worker:
            await eventually(
                lambda: worker.stats.poison == 4 and worker.stats.sent == 1, 30, "poison handled"
            )
            await eventually(empty(sqs, queues.url), 30, "queue empty")
    dead = await drain_queue(sqs, queues.dlq_url)
    reasons = sorted(m["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"] for m in dead)
    assert len(reasons) == 4
    assert any("body: not valid JSON" in r for r in reasons)
    assert any("v: must be 1" in r for r in reasons)
    assert any("to[0].email" in r for r in reasons)
    assert any("subject" in r for r in reasons)
    assert [r.dispatcher_id for r in sg.receipts] == ["msg-00004"]


async def test_rejected_is_final_while_throttled_and_down_fail_over(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_target: RedisTarget,
    sqs_endpoint: str,
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        config = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            [sendgrid(sg), mailgun(mg)],
            cluster=redis_target.cluster,
        )
        async with running(config) as worker:
            # The throttle comes last: a 429 also shifts load away for its reset period.
            for index, fault in enumerate(("reject", "down", "throttle")):
                if fault == "reject":
                    sg.faults.fail(400, count=1, message="Does not contain a valid address.")
                elif fault == "throttle":
                    sg.faults.throttle(reset_in=30, count=1)
                else:
                    sg.faults.fail(503, count=1)
                await enqueue(sqs, queues.url, [email_doc(index)])
                await eventually(settled(worker, index + 1), 30, fault)
    book = ledger(redis)
    rejected, down, throttled = [await book.get(f"msg-{i:05d}") for i in range(3)]
    assert rejected is not None
    assert throttled is not None
    assert down is not None
    assert rejected.status is RecordStatus.ERROR
    assert rejected.last_error == "rejected by sendgrid: http_400"
    assert (throttled.status, throttled.provider) == (RecordStatus.SENT, "mailgun")
    assert (down.status, down.provider) == (RecordStatus.SENT, "mailgun")
    assert [r.dispatcher_id for r in mg.receipts] == ["msg-00001", "msg-00002"]
    assert sg.receipts == []  # the 400 was not accepted and was never failed over
    assert sg.answered[400] == sg.answered[429] == sg.answered[503] == 1


async def test_all_down_retries_with_backoff_then_dead_letters(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_target: RedisTarget,
    sqs_endpoint: str,
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.fail(503)
        mg.faults.fail(502)
        config = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            [sendgrid(sg), mailgun(mg)],
            max_attempts=3,
            cluster=redis_target.cluster,
        )
        await enqueue(sqs, queues.url, [email_doc(7)])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.dead_lettered == 1, 60, "dead-lettered")
            assert worker.stats.retried == 2
    record = await ledger(redis).get("msg-00007")
    assert record is not None
    assert (record.status, record.attempts) == (RecordStatus.ERROR, 3)
    assert record.last_error is not None
    assert "max_attempts 3" in record.last_error
    [dead] = await drain_queue(sqs, queues.dlq_url)
    assert "max_attempts 3" in dead["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert sg.answered[503] == mg.answered[502] == 3
    assert sg.receipts == mg.receipts == []


async def test_ambiguous_timeouts_are_recorded_and_retried(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_target: RedisTarget,
    sqs_endpoint: str,
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.hang(count=1)
        config = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            [sendgrid(sg, timeout_seconds=0.5), mailgun(mg)],
            cluster=redis_target.cluster,
        )
        await enqueue(sqs, queues.url, [email_doc(8)])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent == 1, 30, "sent after retry")
    record = await ledger(redis).get("msg-00008")
    assert record is not None
    assert record.status is RecordStatus.SENT
    assert record.ambiguous_via == ("sendgrid",)
    assert record.attempts == 2
    assert mg.receipts == []  # no immediate failover after an ambiguous answer
    assert [r.dispatcher_id for r in sg.receipts] == ["msg-00008"]
    assert worker.stats.retried == 1


async def test_sends_unfinished_at_the_drain_deadline_are_handed_back(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_target: RedisTarget,
    sqs_endpoint: str,
) -> None:
    ids = [f"msg-{i:05d}" for i in range(3)]
    await enqueue(sqs, queues.url, [email_doc(i) for i in range(3)])
    async with FakeSendGrid() as sg:
        sg.faults.hang()
        config = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            [sendgrid(sg, timeout_seconds=60)],
            drain_seconds=0.5,
            cluster=redis_target.cluster,
        )
        async with running(config) as worker:
            await eventually(lambda: len(worker.in_flight) == 3, 30, "three in flight")
        assert worker.stats.released == 3
        assert worker.in_flight == {}
        assert await records(redis, ids) == {"QUEUED": 3}
        # Cut mid-call: the provider may have accepted them, which the record says.
        for message_id in ids:
            record = await ledger(redis).get(message_id)
            assert record is not None
            assert (record.ambiguous_via, record.attempts) == (("sendgrid",), 1)
        # Visible again at once, and claimable by the next worker.
        reply = await sqs.receive_message(
            QueueUrl=queues.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        assert len(reply.get("Messages", [])) == 3
        assert sg.receipts == []

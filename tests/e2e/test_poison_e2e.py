"""Poison messages end to end (moto SQS, real Redis, fake SendGrid): one bad message, or one
unexpected error while admitting a batch, never stops the worker, and no log line carries what
a producer wrote."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair
from dispatcher.health.base import (
    Booking,
    HealthStore,
    Observation,
    Permit,
    ProbeGrant,
    ProviderHealth,
    RateGrant,
)
from dispatcher.ledger import Claim, ClaimRequest, Ledger
from dispatcher.message import MAX_BODY_BYTES
from dispatcher.queue import REASON_ATTRIBUTE
from dispatcher.worker import Worker
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


def reasons(dead: Sequence[Mapping[str, Any]]) -> set[str]:
    """The distinct reasons: SQS may deliver a message twice, so it may be dead-lettered twice."""
    return {m["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"] for m in dead}


def dead_ids(dead: Sequence[Mapping[str, Any]]) -> set[str]:
    return {orjson.loads(m["Body"])["id"] for m in dead}


async def test_a_created_at_that_overflows_is_dead_lettered_and_the_worker_keeps_sending(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    await enqueue(sqs, queues.url, [email_doc(1), email_doc(2, created_at=1e308), email_doc(3)])
    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)])
        async with running_task(config) as (worker, task):
            done = alive_and(task, lambda: worker.stats.poison >= 1 and worker.stats.sent == 2)
            await eventually(done, 30, "poison dead-lettered, the others sent")
            await enqueue(sqs, queues.url, [email_doc(4)])  # the same worker takes more work
            await eventually(alive_and(task, lambda: worker.stats.sent == 3), 30, "one more sent")
            await eventually(empty(sqs, queues.url), 30, "queue empty")
            assert not task.done()
    assert sent_ids(sg) == ["msg-00001", "msg-00003", "msg-00004"]
    assert await records(redis, ["msg-00001", "msg-00003", "msg-00004"]) == {"SENT": 3}
    assert await records(redis, ["msg-00002"]) == {"missing": 1}  # never claimed
    dead = await drain_queue(sqs, queues.dlq_url)
    assert reasons(dead) == {
        "invalid message: created_at: must be an ISO 8601 time or epoch "
        "seconds between 1970 and 9999"
    }
    assert dead_ids(dead) == {"msg-00002"}


def fail_first_claim(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ledger, except that the first claim raises after it has taken the claims (a
    bug of ours after the Redis round trip)."""
    claim = ledger.claim
    failed = False

    async def claim_then_fail(
        requests: Sequence[ClaimRequest], lease: float, *policy: str
    ) -> list[Claim]:
        nonlocal failed
        claims = await claim(requests, lease, *policy)
        if not failed:
            failed = True
            raise RuntimeError("a bug after the claim")
        return claims

    monkeypatch.setattr(ledger, "claim", claim_then_fail)


async def test_an_error_while_admitting_hands_the_batch_back_and_polling_goes_on(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    sqs_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [f"msg-{i:05d}" for i in range(5)]
    await enqueue(sqs, queues.url, [email_doc(i) for i in range(5)])

    def fail_one_claim(worker: Worker) -> None:
        fail_first_claim(worker.ledger, monkeypatch)

    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], pollers=1)
        with capture_logs() as logs:
            async with running_task(config, fail_one_claim) as (worker, task):
                await eventually(alive_and(task, lambda: worker.stats.sent == 5), 30, "all sent")
                await eventually(empty(sqs, queues.url), 30, "queue empty")
                assert not task.done()
    failed = [e for e in logs if e["event"] == "admit_failed"]
    assert failed == [
        {
            "event": "admit_failed",
            "log_level": "warning",
            "error": "RuntimeError",
            "count": failed[0]["count"],
        }
    ]
    assert failed[0]["count"] >= 1
    assert sent_ids(sg) == ids  # each once: the claims taken before the error were released
    assert await records(redis, ids) == {"SENT": 5}
    assert await drain_queue(sqs, queues.dlq_url) == []
    assert worker.slots.used == 0


class SnapshotFailsOnce:
    """A health store whose first snapshot raises (a bug of ours in the router's refresh)."""

    def __init__(self, inner: HealthStore) -> None:
        self._inner = inner
        self.failed = False

    async def snapshot(self) -> dict[str, ProviderHealth]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug in the health snapshot")
        return await self._inner.snapshot()

    async def record(self, observations: Sequence[Observation]) -> None:
        await self._inner.record(observations)

    async def acquire_permits(self, wants: Mapping[str, int]) -> dict[str, ProbeGrant]:
        return await self._inner.acquire_permits(wants)

    async def release(self, permits: Sequence[Permit]) -> None:
        await self._inner.release(permits)

    async def take(self, wants: Mapping[str, int]) -> dict[str, RateGrant]:
        return await self._inner.take(wants)

    async def reserve(
        self, firsts: Mapping[str, int], probes: Collection[str]
    ) -> dict[str, Booking]:
        return await self._inner.reserve(firsts, probes)


async def test_an_error_while_refreshing_the_router_does_not_stop_polling(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    await enqueue(sqs, queues.url, [email_doc(1), email_doc(2)])

    def fail_one_snapshot(worker: Worker) -> None:
        worker.router.health.shared = SnapshotFailsOnce(worker.router.health.shared)

    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], pollers=1)
        with capture_logs() as logs:
            async with running_task(config, fail_one_snapshot) as (worker, task):
                await eventually(alive_and(task, lambda: worker.stats.sent == 2), 30, "sent")
    assert [e["error"] for e in logs if e["event"] == "admit_failed"] == ["RuntimeError"]
    assert sent_ids(sg) == ["msg-00001", "msg-00002"]


SECRETS = ("ann@example.org", "Ann Secret", "Secret subject", "Secret body", "Bob Secret")


def largest_poison(index: int) -> bytes:
    """A 256 KB message (the SQS limit) whose unknown field's name is nearly all of it."""
    doc = email_doc(index, to=[{"email": "ann@example.org", "name": "Ann Secret"}])
    room = MAX_BODY_BYTES - len(orjson.dumps({**doc, "x": "Secret body"}))
    filler = ("ann@example.org Secret subject Secret body " * (room // 40 + 1))[: room - 1]
    body = orjson.dumps({**doc, "x" + filler: "Secret body"})
    assert len(body) == MAX_BODY_BYTES - 1
    return body


def leaky_bodies() -> list[dict[str, Any]]:
    """One bad message per rule of item 14, each carrying text that must never be logged."""
    recipient = {"to": [{"email": "ann@example.org", "name": "Ann Secret"}]}
    base = {"subject": "Secret subject", "text": "Secret body", **recipient}
    return [
        email_doc(10, headers={"X-A": "Secret body\x00"}, **base),
        email_doc(11, headers={"X-A": "Secret body\x0b"}, **base),
        email_doc(12, headers={"X-A": "Secret\x85body"}, **base),
        email_doc(13, headers={"X-A": "Secret body\u2028Bcc: x@example.org"}, **base),
        email_doc(14, headers={"X-SES-CONFIGURATION-SET": "Secret body"}, **base),
        email_doc(15, headers={"X-Mailgun-Variables": "Secret body"}, **base),
        email_doc(16, headers={"X-SMTPAPI": "Secret body"}, **base),
        email_doc(17, **{**base, "to": [{"email": "ann@example.org", "name": "Bob Secret\x0b"}]}),
        email_doc(18, **{**base, "subject": "Secret subject\u2029"}),
        email_doc(20, **{**base, "v": "Secret subject"}),
        email_doc(21, **{**base, "headers": {"X-Order-" + "9" * 60 + ": Secret subject": "x"}}),
    ]


async def test_bad_headers_are_dead_lettered_and_no_log_line_carries_producer_text(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    bad = leaky_bodies()
    huge = largest_poison(19)
    await enqueue(sqs, queues.url, [*bad, email_doc(1)])
    await sqs.send_message(QueueUrl=queues.url, MessageBody=huge.decode())  # alone: 256 KB
    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)])
        with capture_logs() as logs:
            async with running_task(config) as (worker, task):
                stats = worker.stats
                done = alive_and(task, lambda: stats.poison >= len(bad) + 1 and stats.sent == 1)
                await eventually(done, 30, "poison dead-lettered")
                await eventually(empty(sqs, queues.url), 30, "queue empty")
    assert sent_ids(sg) == ["msg-00001"]
    dead = await drain_queue(sqs, queues.dlq_url)
    assert dead_ids(dead) == {d["id"] for d in bad} | {"msg-00019"}
    poison = [e for e in logs if e["event"] == "poison_message"]
    assert len({line["sqs_id"] for line in poison}) == len(bad) + 1
    for line in poison:
        assert set(line) == {"event", "log_level", "sqs_id", "field", "reason"}
        assert len(line["field"]) <= 64
        assert line["field"].isascii()
        assert line["field"].isprintable()
        assert len(line["reason"]) <= 200
    for text in [*reasons(dead), *(repr(e) for e in logs)]:
        assert len(text) < 2000
        for secret in SECRETS:
            assert secret not in text

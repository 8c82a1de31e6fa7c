"""The ambiguous case end to end (real Redis, the SQS emulator, the fake providers): a provider
that accepts a message and then drops the connection, and a worker SIGKILLed mid-send, under
each `dispatch.on_ambiguous` policy. Every duplicate stays traceable to one provider."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from dispatcher import keys
from dispatcher.config import ProviderSettings
from dispatcher.dev.fakes import FAKES, FakeMailgun, FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, queue_depth
from dispatcher.ledger import RecordStatus
from dispatcher.message import Address, Email
from dispatcher.queue import REASON_ATTRIBUTE
from providers import Status, open_provider, parse_options
from providers.ses import tag_value
from tests.support.harness import drain_queue, enqueue, eventually, running, settings
from tests.support.worker_process import provider_entry, record_of, start_worker_process

MESSAGE_ID = "msg-00000"  # email_doc(0)
FINAL = (RecordStatus.SENT, RecordStatus.ERROR)


@pytest.mark.parametrize("kind", sorted(FAKES))
async def test_accept_then_reset_is_ambiguous_and_the_provider_kept_the_message_and_its_id(
    kind: str,
) -> None:
    email = Email(
        id="order-7",
        sender=Address("shop@example.com"),
        to=(Address("ann@example.org"),),
        subject="s",
        text="t",
    )
    async with FAKES[kind]() as fake, aiohttp.ClientSession() as http:
        fake.faults.reset(count=1)
        where = {"endpoint_url": fake.base_url, "region": "us-east-1"}
        if kind != "ses":
            where = {"base_url": fake.base_url, "api_key": fake.api_key}
        if kind == "mailgun":
            where["domain"] = "mg.example.com"
        options = parse_options(kind, where)
        provider = await open_provider(ProviderSettings(kind, kind, options), http)
        try:
            outcome = await provider.send(email)
        finally:
            await provider.aclose()
    assert outcome.status is Status.AMBIGUOUS, outcome
    assert fake.faults.injected["reset"] == 1
    # Accepted before the reset, under the dispatcher id (SendGrid custom_args, Mailgun v:,
    # SES tags): a duplicate of it can be traced.
    wanted = tag_value(email.id) if kind == "ses" else email.id
    assert [r.dispatcher_id for r in fake.receipts] == [wanted]


# policy -> (status, provider, SendGrid receipts, Mailgun receipts)
AFTER_RESET = {
    "retry_same": (RecordStatus.SENT, "sendgrid", 2, 0),
    "fail_over": (RecordStatus.SENT, "mailgun", 1, 1),
    "error": (RecordStatus.ERROR, "sendgrid", 1, 0),
}


@pytest.mark.parametrize("policy", sorted(AFTER_RESET))
async def test_a_send_accepted_then_reset_is_retried_or_failed_as_the_policy_says(
    policy: str, sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.reset(count=1)
        entries = [provider_entry("sendgrid", sg), provider_entry("mailgun", mg)]
        config = settings(queues.url, sqs_endpoint, redis_url, entries, on_ambiguous=policy)
        await enqueue(sqs, queues.url, [email_doc(0)])
        async with running(config):
            await eventually(lambda: sg.faults.injected["reset"] == 1, 30, "the reset")
            # SendGrid is down for the retry's first call: only fail_over may go elsewhere.
            sg.faults.fail(503, count=1)
            await eventually(lambda: _final(redis), 60, "a final status")
        dead = await drain_queue(sqs, queues.dlq_url)
        assert await queue_depth(sqs, queues.url) == 0
    record = await record_of(redis, MESSAGE_ID)
    status, provider, at_sendgrid, at_mailgun = AFTER_RESET[policy]
    assert (record.status, record.provider) == (status, provider)
    assert record.ambiguous_via == ("sendgrid",)
    assert [r.dispatcher_id for r in sg.receipts] == [MESSAGE_ID] * at_sendgrid
    assert [r.dispatcher_id for r in mg.receipts] == [MESSAGE_ID] * at_mailgun
    if policy == "error":
        assert "ambiguous via sendgrid" in (record.last_error or "")
        [letter] = dead
        reason = letter["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
        assert "ambiguous via sendgrid" in reason
    else:
        assert dead == []


# policy -> (status, provider, whether Mailgun got it)
AFTER_KILL = {
    "retry_same": (RecordStatus.SENT, "sendgrid", False),
    "fail_over": (RecordStatus.SENT, "mailgun", True),
    "error": (RecordStatus.ERROR, None, False),
}


@pytest.mark.parametrize("policy", sorted(AFTER_KILL))
async def test_a_worker_killed_mid_send_leaves_the_provider_for_the_next_one(
    policy: str,
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    sqs_endpoint: str,
    tmp_path: Path,
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.hang()
        process = await start_worker_process(tmp_path, queues.url, sqs_endpoint, redis_url, sg)
        await enqueue(sqs, queues.url, [email_doc(0)])
        await eventually(lambda: sg.faults.injected["hang"] == 1, 30, "the send under way")
        # Recorded before the call, in the claim: the provider it is being sent to.
        assert await redis.hget(keys.message("t:", MESSAGE_ID), "via") == b"sendgrid"
        os.kill(process.pid, signal.SIGKILL)
        await process.wait()
        sg.faults.clear()  # the killed worker's request goes on and is accepted: a duplicate
        # Mailgun is planned first now: only retry_same keeps the message to SendGrid.
        entries = [provider_entry("mailgun", mg), provider_entry("sendgrid", sg)]
        config = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            entries,
            visibility_timeout=10,
            on_ambiguous=policy,
        )
        async with running(config):
            await eventually(lambda: _final(redis), 60, "taken over after the lease")
        dead = await drain_queue(sqs, queues.dlq_url)
    record = await record_of(redis, MESSAGE_ID)
    status, provider, to_mailgun = AFTER_KILL[policy]
    assert (record.status, record.provider) == (status, provider)
    assert record.ambiguous_via == ("sendgrid",)  # not `unknown`
    assert [r.dispatcher_id for r in mg.receipts] == [MESSAGE_ID] * to_mailgun
    assert {r.dispatcher_id for r in sg.receipts} <= {MESSAGE_ID}
    assert len(dead) == (1 if policy == "error" else 0)


async def _final(redis: Redis) -> bool:
    raw = await redis.hget(keys.message("t:", MESSAGE_ID), "status")
    return raw in {status.value.encode() for status in FINAL}

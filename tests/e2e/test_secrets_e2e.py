"""A provider key never leaves in an outcome or a log line, even when the provider's 401 quotes
it (fake SendGrid and Mailgun; the worker case with moto SQS and a real Redis)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from dispatcher.config import ProviderSettings
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair
from providers import Status, open_provider, parse_options
from providers.base import SECRET_MARK
from tests.support.configs import mailgun, sendgrid
from tests.support.harness import alive_and, empty, enqueue, eventually, running_task, settings
from tests.support.providers import an_email

WRONG_KEY = "SG.wrong-key-5ecret-7f3a9c2e41d8"
QUOTING = {
    "plain": None,  # the fakes' own 401 words
    "quoted": f"invalid API key {WRONG_KEY}, check it",
    "cut by truncation": "x" * 290 + " " + WRONG_KEY,  # the detail keeps 300 characters
}


async def open_with_wrong_key(kind: str, fake: FakeSendGrid | FakeMailgun, http: Any) -> Any:
    options: dict[str, Any] = {"base_url": fake.base_url, "api_key": WRONG_KEY}
    if kind == "mailgun":
        options["domain"] = "mg.example.com"
    spec = ProviderSettings(kind, kind, parse_options(kind, options), timeout_seconds=5)
    return await open_provider(spec, http)


@pytest.mark.parametrize("kind", ["sendgrid", "mailgun"])
@pytest.mark.parametrize("quoting", list(QUOTING))
async def test_a_401_outcome_never_carries_the_key(
    kind: str, quoting: str, http: aiohttp.ClientSession
) -> None:
    fake = FakeSendGrid() if kind == "sendgrid" else FakeMailgun()
    async with fake:
        message = QUOTING[quoting]
        if message is not None:
            fake.faults.fail(401, message=message)
        provider = await open_with_wrong_key(kind, fake, http)
        outcome = await provider.send(an_email())
        await provider.aclose()
    assert (outcome.status, outcome.misconfigured, outcome.error) == (Status.DOWN, True, "http_401")
    assert fake.receipts == []
    assert WRONG_KEY[:8] not in repr(outcome)  # nor its start, should the detail cut it
    if message is not None:
        assert SECRET_MARK in (outcome.detail or "")


async def test_a_401_quoting_the_key_leaves_it_in_no_log_line(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    await enqueue(sqs, queues.url, [email_doc(1)])
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.fail(401, message=f"invalid API key {WRONG_KEY}")
        entries = [sendgrid(sg, api_key=WRONG_KEY), mailgun(mg)]
        config = settings(queues.url, sqs_endpoint, redis_url, entries)
        with capture_logs() as logs:
            async with running_task(config) as (worker, task):
                stats = worker.stats
                await eventually(alive_and(task, lambda: stats.sent == 1), 30, "failed over")
                await eventually(empty(sqs, queues.url), 30, "queue empty")
    assert sg.receipts == []
    assert [r.dispatcher_id for r in mg.receipts] == ["msg-00001"]
    sends = [e for e in logs if e["event"] == "send"]
    assert sends
    assert "sendgrid:down" in sends[-1]["tried"]  # the 401 was met, and failed over
    assert not [e for e in logs if WRONG_KEY[:8] in repr(e)]

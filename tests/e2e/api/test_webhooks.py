"""Provider webhooks end to end, on real Redis, moto (SQS, SES) and the fake providers.

A worker sends through a fake SendGrid, a fake Mailgun or moto's SES; the fake (or, for SES,
the fake SNS publisher) posts a signed bounce to the API, which moves the SENT record to
BOUNCED and suppresses the address; a second message to it ends ERROR `suppressed`, unsent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid, MotoServer
from dispatcher.dev.fakes.sns import FakeSns, ses_bounce
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair
from dispatcher.ledger import Ledger, Record, RecordStatus
from tests.support.api import feedback_api
from tests.support.configs import mailgun, sendgrid, ses
from tests.support.harness import enqueue, eventually, running, settings
from tests.support.providers import verify_identity

PROVIDERS = ("sendgrid", "mailgun", "ses")


async def record(redis: Redis, message_id: str) -> Record | None:
    return await Ledger(redis, "t:", 3600).get(message_id)


def status_is(redis: Redis, message_id: str, status: RecordStatus) -> Any:
    async def check() -> bool:
        found = await record(redis, message_id)
        return found is not None and found.status is status

    return check


def to(address: str) -> list[dict[str, str]]:
    return [{"email": address, "name": "Dead"}]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_bounce_suppresses_the_address_and_the_next_send_is_not_made(
    provider: str,
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    sqs_endpoint: str,
    keys_file: Path,
    moto: MotoServer,
) -> None:
    await verify_identity(moto, "example.com")
    async with (
        FakeSendGrid() as sg,
        FakeMailgun() as mg,
        FakeSns() as sns,
        feedback_api(queues, sqs_endpoint, redis_url, keys_file, sg, mg) as api,
    ):
        fakes = {"sendgrid": sg, "mailgun": mg}
        if provider in fakes:
            fakes[provider].emit_webhooks(f"{api.url}/v1/webhooks/{provider}", bounce_rate=1.0)
        config = {"sendgrid": sendgrid(sg), "mailgun": mailgun(mg), "ses": ses(moto)}[provider]
        worker_settings = settings(queues.url, sqs_endpoint, redis_url, [config])
        await enqueue(sqs, queues.url, [email_doc(0, to=to("Dead@Example.ORG"))])
        async with running(worker_settings):
            if provider == "ses":
                await eventually(status_is(redis, "msg-00000", RecordStatus.SENT))
                sent = await record(redis, "msg-00000")
                assert sent is not None
                assert sent.provider_message_id
                note = sns.notification(ses_bounce(sent.provider_message_id, "Dead@Example.ORG"))
                async with api.client.post(f"{api.url}/v1/webhooks/ses", json=note) as reply:
                    assert reply.status == 200
            await eventually(status_is(redis, "msg-00000", RecordStatus.BOUNCED), 30, "bounced")
            bounced = await record(redis, "msg-00000")
            assert bounced is not None
            assert (bounced.bounce_type, bounced.reason_code) == (
                "hard",
                "5.1.1" if provider != "mailgun" else "550",
            )
            async with api.client.get(
                f"{api.url}/v1/suppressions", params={"address": " Dead@example.org"}
            ) as reply:
                assert (await reply.json())["reason"] == "bounce"
            # Straight onto the queue, the domain cased otherwise: ended in the claim script.
            await enqueue(sqs, queues.url, [email_doc(1, to=to("Dead@EXAMPLE.org"))])
            await eventually(status_is(redis, "msg-00001", RecordStatus.ERROR), 30, "suppressed")
        second = await record(redis, "msg-00001")
        assert second is not None
        assert second.last_error == "suppressed"
        sent_count = len(moto.requests()) if provider == "ses" else len(fakes[provider].receipts)
        assert sent_count == 1  # the provider received nothing more
        async with api.client.get(f"{api.url}/v1/emails/msg-00000") as reply:
            doc = await reply.json()
        assert (doc["status"], doc["bounce_type"]) == ("BOUNCED", "hard")
        assert doc["event_at"]

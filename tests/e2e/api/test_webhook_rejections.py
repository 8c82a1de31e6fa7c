"""Webhooks that must change nothing: bad signatures, replays, stale timestamps, foreign
certificate hosts and topics are refused (401/403) with one `webhook_rejected` log line;
unknown ids are ignored with a `webhook_ignored` line. SNS signature versions 1 and 2 and the
subscription confirmation, through the fake SNS publisher."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from dispatcher import keys
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid, Receipt
from dispatcher.dev.fakes.mailgun import event_data
from dispatcher.dev.fakes.sendgrid import event
from dispatcher.dev.fakes.sns import FakeSns, ses_bounce
from dispatcher.dev.stack import QueuePair
from dispatcher.ledger import ClaimRequest, Ledger, RecordStatus, Settlement
from tests.support.api import Api, api_config, serve, with_webhooks


@pytest.fixture
async def hooks(
    queues: QueuePair, sqs_endpoint: str, redis_url: str, keys_file: Path
) -> AsyncIterator[tuple[Api, FakeSendGrid, FakeMailgun, FakeSns]]:
    async with FakeSendGrid() as sg, FakeMailgun() as mg, FakeSns() as sns:
        config = with_webhooks(
            api_config(queues, sqs_endpoint, redis_url, keys_file),
            sendgrid_public_key=sg.webhook_public_key,
            mailgun_signing_key=mg.signing_key,
            ses_enabled=True,
            sns_host_pattern=r"127\.0\.0\.1",
            sns_insecure_http=True,
        )
        async with serve(config) as api:
            yield api, sg, mg, sns


async def sent(redis: Redis, message_id: str, provider: str, provider_id: str) -> Ledger:
    ledger = Ledger(redis, "t:", 3600)
    await ledger.claim([ClaimRequest(message_id, "w:1")], 60)
    await ledger.settle([Settlement(message_id, "w:1", RecordStatus.SENT, provider, provider_id)])
    return ledger


async def post(api: Api, provider: str, body: bytes, headers: dict[str, str]) -> int:
    headers = {"Content-Type": "application/json", **headers}
    async with api.client.post(
        f"{api.url}/v1/webhooks/{provider}", data=body, headers=headers
    ) as reply:
        return reply.status


def sendgrid_receipt(message_id: str) -> Receipt:
    payload = {
        "personalizations": [{"to": [{"email": "ann@example.org"}]}],
        "custom_args": {"dispatcher_id": message_id},
    }
    return Receipt("sg-1", message_id, payload, time.time(), time.monotonic())


def mailgun_receipt(message_id: str) -> Receipt:
    form = {"to": ["Ann <ann@example.org>"], "v:dispatcher_id": [message_id]}
    return Receipt("mg-1@mg.example.com", message_id, form, time.time(), time.monotonic())


async def unchanged(redis: Redis, ledger: Ledger, message_id: str) -> None:
    record = await ledger.get(message_id)
    assert record is not None
    assert record.status is RecordStatus.SENT
    assert await redis.hlen(keys.suppression_all("t:")) == 0


def rejected(logs: Sequence[Mapping[str, Any]]) -> list[tuple[str, int, str]]:
    return [
        (e["provider"], e["status"], e["reason"]) for e in logs if e["event"] == "webhook_rejected"
    ]


async def test_sendgrid_refuses_bad_signatures_replays_and_stale_timestamps(
    hooks: tuple[Api, FakeSendGrid, FakeMailgun, FakeSns], redis: Redis
) -> None:
    api, sg, _, _ = hooks
    ledger = await sent(redis, "m1", "sendgrid", "sg-1")
    body = orjson.dumps([event(sendgrid_receipt("m1"), "bounce")])
    signed, headers = sg.sign(body)
    other = FakeSendGrid()  # another key
    with capture_logs() as logs:
        assert await post(api, "sendgrid", body.replace(b"5.1.1", b"5.1.2"), headers) == 401
        assert await post(api, "sendgrid", *other.sign(body)) == 401
        assert await post(api, "sendgrid", body, {}) == 401
        assert await post(api, "sendgrid", *sg.sign(body, int(time.time()) - 3600)) == 403
        await unchanged(redis, ledger, "m1")
        assert await post(api, "sendgrid", signed, headers) == 200
        assert await post(api, "sendgrid", signed, headers) == 403  # the same request again
    assert rejected(logs) == [
        ("sendgrid", 401, "bad signature"),
        ("sendgrid", 401, "bad signature"),
        ("sendgrid", 401, "missing signature headers"),
        ("sendgrid", 403, "timestamp too old (or in the future)"),
        ("sendgrid", 403, "replayed"),
    ]
    record = await ledger.get("m1")
    assert record is not None
    assert record.status is RecordStatus.BOUNCED


async def test_mailgun_refuses_bad_signatures_reused_tokens_and_stale_timestamps(
    hooks: tuple[Api, FakeSendGrid, FakeMailgun, FakeSns], redis: Redis
) -> None:
    api, _, mg, _ = hooks
    ledger = await sent(redis, "m2", "mailgun", "mg-1@mg.example.com")
    data = event_data(mailgun_receipt("m2"), "bounce")
    good = mg.signature()
    forged = {**good, "signature": "0" * 64}
    with capture_logs() as logs:
        for signature, status in (
            (forged, 401),
            (mg.signature(timestamp=int(time.time()) - 3600), 403),
            ({}, 401),
        ):
            forged_doc = {"signature": signature, "event-data": data}
            assert await post(api, "mailgun", orjson.dumps(forged_doc), {}) == status
        await unchanged(redis, ledger, "m2")
        doc = orjson.dumps({"signature": good, "event-data": data})
        assert await post(api, "mailgun", doc, {}) == 200
        assert await post(api, "mailgun", doc, {}) == 403  # the token again
    assert [r[1:] for r in rejected(logs)] == [
        (401, "bad signature"),
        (403, "timestamp too old (or in the future)"),
        (401, "missing signature fields"),
        (403, "replayed"),
    ]


async def test_unknown_ids_are_ignored_with_a_log_line(
    hooks: tuple[Api, FakeSendGrid, FakeMailgun, FakeSns], redis: Redis
) -> None:
    api, sg, mg, _ = hooks
    with capture_logs() as logs:
        body = orjson.dumps([event(sendgrid_receipt("nobody"), "bounce")])
        assert await post(api, "sendgrid", *sg.sign(body)) == 200
        data = event_data(mailgun_receipt("nobody-2"), "complaint")
        doc = orjson.dumps({"signature": mg.signature(), "event-data": data})
        assert await post(api, "mailgun", doc, {}) == 200
    ignored = [(e["provider"], e["id"]) for e in logs if e["event"] == "webhook_ignored"]
    assert ignored == [("sendgrid", "nobody"), ("mailgun", "nobody-2")]
    assert await redis.hlen(keys.suppression_all("t:")) == 0


async def test_sns_checks_signature_versions_hosts_and_confirms_subscriptions(
    hooks: tuple[Api, FakeSendGrid, FakeMailgun, FakeSns], redis: Redis
) -> None:
    api, _, _, sns = hooks
    ledger = await sent(redis, "m3", "ses", "ses-3")
    ledger = await sent(redis, "m4", "ses", "ses-4")
    with capture_logs() as logs:
        note = sns.notification(ses_bounce("ses-3", "ann@example.org"))
        tampered = {**note, "Message": note["Message"].replace("5.1.1", "5.1.2")}
        assert await post(api, "ses", orjson.dumps(tampered), {}) == 401
        elsewhere = {**note, "SigningCertURL": "http://evil.example.com/cert.pem"}
        assert await post(api, "ses", orjson.dumps(elsewhere), {}) == 403
        await unchanged(redis, ledger, "m3")
        assert await post(api, "ses", orjson.dumps(note), {}) == 200  # SignatureVersion 1
        assert await post(api, "ses", orjson.dumps(note), {}) == 403  # the same MessageId
        v2 = sns.notification(ses_bounce("ses-4", "bob@example.org", hard=False), version="2")
        assert await post(api, "ses", orjson.dumps(v2), {}) == 200
        confirmation = sns.subscription_confirmation()
        assert await post(api, "ses", orjson.dumps(confirmation), {}) == 200
    assert [r[1:] for r in rejected(logs)] == [
        (401, "bad signature"),
        (403, "SigningCertURL not on an allowed SNS host"),
        (403, "replayed"),
    ]
    assert sns.cert_fetches == 1  # cached
    assert sns.confirmations == [confirmation["Token"]]
    soft = await ledger.get("m4")
    assert soft is not None
    assert (soft.status, soft.bounce_type) == (RecordStatus.BOUNCED, "soft")
    assert await redis.hlen(keys.suppression_all("t:")) == 1  # the hard bounce only

"""POST /v1/emails through real Redis and SQS (moto): one queue message per `to`, the ledger
PENDING then QUEUED, every validation problem at once, idempotency, partial SQS failures."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher import keys
from dispatcher.dev.stack import QueuePair
from dispatcher.message import decode
from tests.support.api import OTHER_KEY, Api, body
from tests.support.harness import drain_queue, eventually
from tests.support.sqs_gateway import SqsGateway


async def post(api: Api, doc: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    async with api.client.post(f"{api.url}/v1/emails", json=doc, headers=headers) as reply:
        return reply.status, await reply.json()


async def queued_bodies(sqs: Any, queues: QueuePair) -> dict[str, Any]:
    return {(email := decode(m["Body"])).id: email for m in await drain_queue(sqs, queues.url)}


async def test_one_queue_message_per_recipient_recorded_queued(
    api: Api, sqs: Any, queues: QueuePair, redis: Redis
) -> None:
    status, reply = await post(api, body(12, batch_id="spring"))
    assert status == 202
    assert reply["batch_id"] == "spring"
    assert [m["to"] for m in reply["messages"]] == [f"user{n}@example.org" for n in range(12)]
    on_queue = await queued_bodies(sqs, queues)
    assert set(on_queue) == {m["id"] for m in reply["messages"]}
    first = on_queue[reply["messages"][0]["id"]]
    assert [a.email for a in first.to] == ["user0@example.org"]
    assert (first.subject, first.batch_id, dict(first.tags)) == (
        "Your receipt",
        "spring",
        {"kind": "receipt"},
    )
    record = await redis.hgetall(keys.message("t:", reply["messages"][0]["id"]))
    assert (record[b"status"], record[b"created_by"]) == (b"QUEUED", b"ops")


async def test_every_problem_is_reported_at_once(api: Api) -> None:
    doc = body(
        2,
        to=[{"email": "not-an-address"}, {"email": "b@example.org", "name": "B\r\nBcc: x"}],
        cc=[{"email": "c@example.org"}],
        subject="Hello\nworld",
        text=None,
        html=None,
        headers={"X-Ok": "a\r\nInjected: 1", "From": "evil@example.com"},
        colour="blue",
    )
    status, reply = await post(api, doc)
    assert status == 400
    fields = {e["field"] for e in reply["errors"]}
    assert fields >= {
        "to[0].email",
        "to[1].name",
        "cc",
        "subject",
        "text",
        "headers.X-Ok",
        "headers.From",
        "colour",
    }
    too_many = body(1001)
    status, reply = await post(api, too_many)
    assert (status, reply["errors"][0]["field"]) == (400, "to")
    status, reply = await post(api, body(1, text="not for SQS \uffff"))
    assert (status, reply["errors"]) == (
        400,
        [{"field": "body", "error": "contains U+FFFE or U+FFFF, which SQS refuses"}],
    )


async def test_size_type_and_key_errors(api: Api, http: Any) -> None:
    big = orjson.dumps(body(1, text="x" * (api.settings.api.max_body_bytes + 1)))
    json_type = {"Content-Type": "application/json"}
    async with api.client.post(
        f"{api.url}/v1/emails", data=io.BytesIO(big), headers=json_type
    ) as r:
        assert r.status == 413
        assert (await r.json())["error"]
    async with api.client.post(f"{api.url}/v1/emails", data=b"to=a") as r:
        assert (r.status, (await r.json())["error"]) == (415, "send the body as application/json")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        async with http.post(f"{api.url}/v1/emails", json=body(), headers=headers) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert "error" in await r.json()
    named = {"Authorization": f"Bearer {OTHER_KEY}"}
    async with http.post(f"{api.url}/v1/emails", json=body(1), headers=named) as r:
        assert r.status == 202


async def test_idempotency_replay_mismatch_and_concurrent(
    api: Api, gateway: SqsGateway, sqs: Any, queues: QueuePair
) -> None:
    first = await post(api, body(3), **{"Idempotency-Key": "order-1"})
    replay = await post(api, body(3), **{"Idempotency-Key": "order-1"})
    assert first[0] == replay[0] == 202
    assert first[1] == replay[1]
    assert len(await queued_bodies(sqs, queues)) == 3  # the replay enqueued nothing
    mismatch = await post(api, body(4), **{"Idempotency-Key": "order-1"})
    assert mismatch[0] == 422
    too_long = await post(api, body(1), **{"Idempotency-Key": "k" * 257})
    assert (too_long[0], too_long[1]["errors"][0]["field"]) == (400, "Idempotency-Key")
    gateway.hold = asyncio.Event()
    running = asyncio.create_task(post(api, body(2), **{"Idempotency-Key": "order-2"}))
    await eventually(lambda: gateway.waiting == 1, what="the first request to reach SQS")
    async with api.client.post(
        f"{api.url}/v1/emails", json=body(2), headers={"Idempotency-Key": "order-2"}
    ) as busy:
        assert busy.status == 409
        assert int(busy.headers["Retry-After"]) >= 1
    gateway.hold.set()
    done = await running
    assert done[0] == 202
    assert await post(api, body(2), **{"Idempotency-Key": "order-2"}) == done
    assert len(await queued_bodies(sqs, queues)) == 2


async def test_a_partial_sqs_failure_answers_503_and_a_retry_enqueues_only_the_rest(
    api: Api, gateway: SqsGateway, sqs: Any, queues: QueuePair, redis: Redis
) -> None:
    doc = body(25)
    for n in (3, 12, 13):  # SQS fails these entries of their batches, every time
        doc["to"][n]["email"] = f"sqs-down-{n}@example.org"
    gateway.fail_marker = b"sqs-down-"
    async with api.client.post(
        f"{api.url}/v1/emails", json=doc, headers={"Idempotency-Key": "k-25"}
    ) as r:
        status, reply, retry_after = r.status, await r.json(), r.headers.get("Retry-After")
    assert (status, retry_after) == (503, "2")
    assert len(reply["queued"]) == 22
    assert len(reply["not_queued"]) == 3
    assert gateway.failed_entries == 9  # three attempts each
    for message_id in reply["not_queued"]:
        record = await redis.hgetall(keys.message("t:", message_id))
        assert record[b"status"] == b"PENDING"
    first_wave = await queued_bodies(sqs, queues)
    assert set(first_wave) == set(reply["queued"])
    gateway.fail_marker = None
    status, retried = await post(api, doc, **{"Idempotency-Key": "k-25"})
    assert status == 202
    every = sorted(reply["queued"] + reply["not_queued"], key=lambda i: int(i.rsplit("-", 1)[1]))
    assert [m["id"] for m in retried["messages"]] == every
    second_wave = await queued_bodies(sqs, queues)
    assert set(second_wave) == set(reply["not_queued"])  # only those
    for message_id in reply["not_queued"]:
        record = await redis.hgetall(keys.message("t:", message_id))
        assert record[b"status"] == b"QUEUED"


@pytest.mark.parametrize("path", ["/v1/emails", "/v1/emails/x", "/v1/batches/x", "/graphql"])
async def test_every_v1_and_graphql_route_needs_a_key(api: Api, http: Any, path: str) -> None:
    async with http.get(f"{api.url}{path}") as reply:
        assert reply.status == 401
        assert orjson.loads(await reply.read())["error"]

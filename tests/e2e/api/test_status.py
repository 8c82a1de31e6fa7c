"""Status routes on real Redis and moto: by id, by status / batch / creation time with a
cursor, batch counts; and /healthz, /readyz."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from redis.asyncio import Redis

from dispatcher.config import Settings
from dispatcher.dev.stack import free_port
from dispatcher.ledger import ClaimRequest, Ledger, RecordStatus, Settlement
from tests.support.api import Api, send, serve


async def get(api: Api, path: str) -> tuple[int, dict[str, Any]]:
    async with api.client.get(f"{api.url}{path}") as reply:
        return reply.status, await reply.json()


async def test_by_id_by_status_by_batch_and_by_time(api: Api, redis: Redis) -> None:
    b1, b2 = await send(api, 3, "b1"), await send(api, 2, "b2")
    ledger = Ledger(redis, "t:", 3600)  # a worker sends one
    await ledger.claim([ClaimRequest(b1[0], "w1", "b1")], 30)
    await ledger.settle([Settlement(b1[0], "w1", RecordStatus.SENT, "sim", "sim-1")])
    status, one = await get(api, f"/v1/emails/{b1[0]}")
    assert status == 200
    assert {k: one[k] for k in ("id", "batch_id", "status", "provider", "attempts")} == {
        "id": b1[0],
        "batch_id": "b1",
        "status": "SENT",
        "provider": "sim",
        "attempts": 1,
    }
    assert (one["provider_message_id"], one["created_by"], one["error"]) == ("sim-1", "ops", None)
    assert datetime.fromisoformat(one["created_at"]) <= datetime.fromisoformat(one["updated_at"])
    assert (await get(api, "/v1/emails/nope"))[0] == 404

    _, sent = await get(api, "/v1/emails?status=SENT")
    assert [m["id"] for m in sent["messages"]] == [b1[0]]
    _, queued = await get(api, "/v1/emails?status=QUEUED&batch_id=b1")
    assert {m["id"] for m in queued["messages"]} == set(b1[1:])
    later = quote((datetime.now(UTC) + timedelta(minutes=5)).isoformat())
    _, none = await get(api, f"/v1/emails?created_from={later}")
    assert none == {"messages": [], "next_cursor": None}

    seen, cursor = [], ""
    while True:
        status, page = await get(api, f"/v1/emails?limit=2{cursor}")
        assert status == 200
        seen += [m["id"] for m in page["messages"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(seen) == sorted(b1 + b2)
    assert seen[:2] == sorted(b2, reverse=True)  # newest first

    status, batch = await get(api, "/v1/batches/b1?limit=2")
    assert status == 200
    assert (batch["total"], batch["counts"]) == (
        3,
        {"PENDING": 0, "QUEUED": 2, "SENDING": 0, "SENT": 1, "ERROR": 0}
        | dict.fromkeys(("DELIVERED", "BOUNCED", "COMPLAINED"), 0),
    )
    assert len(batch["messages"]) == 2
    assert batch["next_cursor"]
    assert (await get(api, "/v1/batches/unknown"))[0] == 404


async def test_bad_query_parameters_are_named(api: Api) -> None:
    for query, field in (
        ("status=LOST", "status"),
        ("limit=0", "limit"),
        ("created_to=yesterday", "created_to"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
    ):
        status, reply = await get(api, f"/v1/emails?{query}")
        assert status == 400
        assert [e["field"] for e in reply["errors"]] == [field]


async def test_health_and_readiness(api: Api, http: Any) -> None:
    async with http.get(f"{api.url}/healthz") as reply:
        assert (reply.status, await reply.json()) == (200, {"status": "ok"})
    async with http.get(f"{api.url}/readyz") as reply:
        assert (reply.status, await reply.json()) == (
            200,
            {"ready": True, "checks": {"redis": "ok", "sqs": "ok"}},
        )


async def test_readyz_says_which_dependency_is_down(api_settings: Settings, http: Any) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    broken = replace(api_settings, redis=replace(api_settings.redis, url=closed))
    async with serve(broken) as api:
        async with http.get(f"{api.url}/readyz") as reply:
            doc = await reply.json()
        assert (reply.status, doc["ready"], doc["checks"]["sqs"]) == (503, False, "ok")
        assert doc["checks"]["redis"] != "ok"
        async with api.client.get(f"{api.url}/v1/emails") as reply:
            assert reply.status == 503  # the ledger cannot be read: JSON, with Retry-After
            assert reply.headers["Retry-After"]

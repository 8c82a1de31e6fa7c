"""`/v1/suppressions` on real Redis and moto: add, check, list (hashes only), lift; a
suppressed recipient is answered `suppressed` and not enqueued; a CSV counts them apart."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from dispatcher import keys
from tests.support.api import Api, body, upload


async def call(api: Api, method: str, **options: Any) -> tuple[int, dict[str, Any]]:
    async with api.client.request(method, f"{api.url}/v1/suppressions", **options) as reply:
        return reply.status, await reply.json()


async def test_add_check_list_and_lift(api: Api, redis: Redis) -> None:
    status, added = await call(
        api, "POST", json={"addresses": ["Ann@Example.ORG", " bob@example.org"]}
    )
    assert (status, added["suppressed"]) == (200, 2)
    _, found = await call(api, "GET", params={"address": "Ann@example.org "})
    assert (found["suppressed"], found["reason"]) == (True, "manual")
    _, listed = await call(api, "GET")
    assert sorted(e["hash"] for e in listed["suppressions"]) == sorted(added["hashes"])
    stored = await redis.hgetall(keys.suppression_all("t:"))
    assert not any(b"@" in k or b"@" in v for k, v in stored.items())  # no plain address
    assert (await call(api, "DELETE", json={"addresses": ["Ann@EXAMPLE.org"]}))[0] == 200
    _, lifted = await call(api, "GET", params={"address": "Ann@Example.ORG"})
    assert lifted["suppressed"] is False
    assert (await call(api, "POST", json={"addresses": ["not an address"]}))[0] == 400
    assert (await call(api, "POST", json={"addresses": ["a@b.org"], "reason": "x"}))[0] == 400


async def test_suppressed_recipients_are_not_enqueued(api: Api, redis: Redis) -> None:
    await call(api, "POST", json={"addresses": ["user1@example.org"]})
    async with api.client.post(f"{api.url}/v1/emails", json=body(3)) as reply:
        assert reply.status == 202
        messages = (await reply.json())["messages"]
    assert [m["result"] for m in messages] == ["queued", "suppressed", "queued"]
    assert not await redis.exists(keys.message("t:", messages[1]["id"]))
    csv = "email\nuser0@example.org\nUSER1@example.org\nuser1@EXAMPLE.org\nuser2@example.org\n"
    status, tally = await upload(api, csv, subject="Hi", text="Hello", html="")
    assert status == 202
    assert (tally["accepted"], tally["suppressed"]) == (3, 1)  # USER1@ is another mailbox

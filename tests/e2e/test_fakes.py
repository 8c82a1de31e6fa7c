"""The fakes themselves: wire-format checks, faults on command (from Python and over HTTP),
and the standalone process the bench runs."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid, FakeSes, control
from providers import mailgun, sendgrid
from tests.support.providers import an_email

ROOT = Path(__file__).resolve().parents[2]


async def post_sendgrid(
    http: aiohttp.ClientSession, fake: FakeSendGrid, doc: Any, key: str = "test-key"
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with http.post(
        f"{fake.base_url}/v3/mail/send", data=orjson.dumps(doc), headers=headers
    ) as response:
        body = await response.read()
        return response.status, orjson.loads(body) if body else None


async def statuses(http: aiohttp.ClientSession, fake: FakeSendGrid, n: int) -> list[int]:
    doc = sendgrid.build(an_email())
    return [(await post_sendgrid(http, fake, doc))[0] for _ in range(n)]


async def test_sendgrid_fake_checks_the_payload_like_sendgrid(
    fake_sendgrid: FakeSendGrid, http: aiohttp.ClientSession
) -> None:
    good = sendgrid.build(an_email())
    assert (await post_sendgrid(http, fake_sendgrid, good, key="nope"))[0] == 401
    status, body = await post_sendgrid(http, fake_sendgrid, {**good, "from": {}})
    assert (status, body["errors"][0]["field"]) == (400, "from")
    twice = {
        **good,
        "personalizations": [{"to": [{"email": "a@x.org"}], "cc": [{"email": "A@x.org"}]}],
    }
    status, body = await post_sendgrid(http, fake_sendgrid, twice)
    assert status == 400
    assert "[A@x.org]" in body["errors"][0]["message"]
    status, _ = await post_sendgrid(http, fake_sendgrid, {**good, "content": []})
    assert status == 400
    assert fake_sendgrid.receipts == []
    assert (await post_sendgrid(http, fake_sendgrid, good))[0] == 202
    assert fake_sendgrid.receipts[0].dispatcher_id == "order-42-receipt"


async def test_mailgun_fake_checks_auth_domain_and_fields(
    fake_mailgun: FakeMailgun, http: aiohttp.ClientSession
) -> None:
    auth = {"Authorization": mailgun.basic_auth("api", "test-key")}
    fields = mailgun.build(an_email())
    url = f"{fake_mailgun.base_url}/v3/mg.example.com/messages"
    async with http.post(url, data=fields) as response:
        assert (response.status, await response.text()) == (401, "Forbidden")
    async with http.post(url.replace("mg.example", "other"), data=fields, headers=auth) as r:
        assert r.status == 404
    no_body = [(k, v) for k, v in fields if k not in ("text", "html")]
    async with http.post(url, data=no_body, headers=auth) as response:
        assert response.status == 400
        assert "'text', 'html' or 'template'" in (await response.json())["message"]
    async with http.post(url, data=fields, headers=auth) as response:
        answer = await response.json()
    [receipt] = fake_mailgun.receipts
    assert answer["id"] == f"<{receipt.provider_id}>"
    assert receipt.payload["to"] == ["Ann Example <ann@example.org>", "bob@example.org"]


async def test_ses_fake_wants_a_signature(fake_ses: FakeSes, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{fake_ses.base_url}/v2/email/outbound-emails", json={}) as response:
        assert response.status == 403
        assert response.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"


async def test_a_fault_for_the_next_n_requests_then_normal_service(
    fake_sendgrid: FakeSendGrid, http: aiohttp.ClientSession
) -> None:
    fake_sendgrid.faults.fail(503, count=2)
    assert await statuses(http, fake_sendgrid, 4) == [503, 503, 202, 202]
    assert fake_sendgrid.answered == {503: 2, 202: 2}


async def test_a_fraction_of_requests_is_faulted_reproducibly(http: aiohttp.ClientSession) -> None:
    runs = []
    for _ in range(2):
        async with FakeSendGrid(seed=11) as fake:
            fake.faults.fail(500, fraction=0.3)
            runs.append(await statuses(http, fake, 60))
    assert runs[0] == runs[1]
    assert 8 <= runs[0].count(500) <= 30
    assert set(runs[0]) == {500, 202}


async def test_latency_and_clear(fake_sendgrid: FakeSendGrid, http: aiohttp.ClientSession) -> None:
    fake_sendgrid.faults.latency(150)
    started = time.monotonic()
    assert await statuses(http, fake_sendgrid, 1) == [202]
    assert time.monotonic() - started >= 0.15
    fake_sendgrid.faults.throttle(reset_in=3)
    fake_sendgrid.faults.clear()
    assert fake_sendgrid.faults.latency_ms == 0
    assert await statuses(http, fake_sendgrid, 1) == [202]


async def test_the_control_endpoint_drives_a_fake_from_outside(
    fake_sendgrid: FakeSendGrid, http: aiohttp.ClientSession
) -> None:
    await control(http, fake_sendgrid.base_url, "throttle", reset_in=5, count=1)
    doc = sendgrid.build(an_email())
    headers = {"Authorization": "Bearer test-key"}
    async with http.post(
        f"{fake_sendgrid.base_url}/v3/mail/send", json=doc, headers=headers
    ) as response:
        assert response.status == 429
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time()) + 4
    assert await statuses(http, fake_sendgrid, 1) == [202]
    with pytest.raises(ValueError, match="unknown op"):
        await control(http, fake_sendgrid.base_url, "explode")
    async with http.get(f"{fake_sendgrid.base_url}/_control/receipts?offset=0") as response:
        page = await response.json()
    assert page["next"] == 1
    assert page["receipts"][0]["dispatcher_id"] == "order-42-receipt"
    async with http.get(f"{fake_sendgrid.base_url}/_control/stats") as response:
        stats = await response.json()
    assert stats == {
        "kind": "sendgrid",
        "received": 1,
        "answered": {"429": 1, "202": 1},
        "injected": {"throttle": 1},
    }


async def test_closing_a_fake_drops_the_requests_it_holds(http: aiohttp.ClientSession) -> None:
    fake = await FakeSendGrid().start()
    fake.faults.hang()
    pending = asyncio.create_task(statuses(http, fake, 1))
    async with asyncio.timeout(5):
        await fake.faults.wait_holding()
    await fake.close()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await pending
    assert fake.receipts == []


@pytest.mark.parametrize("kind", ["sendgrid", "mailgun", "ses"])
async def test_a_fake_runs_as_its_own_process(kind: str, http: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dispatcher.dev.fakes",
        kind,
        "--port",
        "0",
        "--api-key",
        "k",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode().strip()
        assert line.startswith(f"{kind} listening on http://127.0.0.1:")
        base_url = line.rpartition(" ")[2]
        await control(http, base_url, "latency", ms=1)
        async with http.get(f"{base_url}/_control/stats") as response:
            assert (await response.json())["received"] == 0
    finally:
        process.terminate()
        assert await process.wait() == 0

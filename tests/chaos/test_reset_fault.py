"""The fakes' `reset` fault, which the chaos suite uses for the ambiguous case: the message is
accepted and recorded, then the connection drops before any answer (unlike `abort`, which
drops it unrecorded)."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.message import decode
from providers import sendgrid


async def post(http: aiohttp.ClientSession, fake: FakeSendGrid) -> int:
    body = orjson.dumps(sendgrid.build(decode(orjson.dumps(email_doc(7)))))
    headers = {"Authorization": "Bearer test-key", "Content-Type": "application/json"}
    async with http.post(f"{fake.base_url}/v3/mail/send", data=body, headers=headers) as reply:
        return reply.status


async def test_reset_records_the_message_then_drops_the_connection(
    fake_sendgrid: FakeSendGrid, http: aiohttp.ClientSession
) -> None:
    fake_sendgrid.faults.reset(count=1)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(http, fake_sendgrid)
    assert [r.dispatcher_id for r in fake_sendgrid.receipts] == ["msg-00007"]
    assert await post(http, fake_sendgrid) == 202  # the rule was for one request only
    assert len(fake_sendgrid.receipts) == 2
    assert fake_sendgrid.faults.injected["reset"] == 1


async def test_abort_drops_the_connection_without_recording(
    fake_sendgrid: FakeSendGrid, http: aiohttp.ClientSession
) -> None:
    fake_sendgrid.faults.abort(count=1)
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(http, fake_sendgrid)
    assert fake_sendgrid.receipts == []

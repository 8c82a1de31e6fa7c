"""Header injection through the intake API: CR, LF, CRLF, NUL and over-long lines (RFC 5322
§2.1.1: 998 octets) are refused in every header-bearing field, with the field named, both in
`POST /v1/emails` and in a campaign CSV row (the row rejected, the good rows enqueued)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from dispatcher.dev.stack import QueuePair
from dispatcher.message import decode
from tests.support.api import Api, body, upload
from tests.support.harness import drain_queue
from tests.support.injection import (
    ATTACKS,
    BREAKS,
    FIELDS,
    INJECTED,
    attacked,
    inject,
    one_of_each,
)


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("field", FIELDS)
async def test_post_emails_refuses_injection_naming_the_field(
    api: Api, field: str, attack: str
) -> None:
    doc = body(1, **one_of_each())
    named = inject(doc, field, attack)
    async with api.client.post(f"{api.url}/v1/emails", json=doc) as reply:
        status, answer = reply.status, await reply.json()
    assert status == 400
    assert named & {e["field"] for e in answer["errors"]}, answer["errors"]
    async with api.client.post(f"{api.url}/v1/emails", json=body(1)) as reply:
        assert reply.status == 202  # the same endpoint still takes a clean request


def csv_of(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("column", ["email", "name", "subject"])
async def test_campaign_row_with_injection_is_rejected_naming_the_column(
    api: Api, sqs: Any, queues: QueuePair, column: str, attack: str
) -> None:
    bad = {"email": "bad@example.org", "name": "Bad", "subject": "Hello Bad"}
    bad[column] = attacked(bad[column], attack, address=column == "email")
    rows = [
        ["email", "name", "subject"],
        ["good@example.org", "Good", "Hello Good"],
        [bad["email"], bad["name"], bad["subject"]],
    ]
    status, reply = await upload(api, csv_of(rows), subject="Hi", text="Hi {{name}}", html="")
    assert status == 202, reply
    assert reply["accepted"] == 1
    assert [r["row"] for r in reply["rejected_rows"]] == [3]
    assert reply["rejected_rows"][0]["error"].startswith(f"{column}: "), reply
    queued = [decode(m["Body"]) for m in await drain_queue(sqs, queues.url)]
    assert [(e.to[0].email, e.to[0].name, e.subject) for e in queued] == [
        ("good@example.org", "Good", "Hello Good")
    ]


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("field", ["from", "subject"])
async def test_campaign_form_field_with_injection_is_refused(
    api: Api, field: str, attack: str
) -> None:
    value = {"from": "Shop <shop@example.com>", "subject": "Hello"}[field]
    if field == "from" and attack != "long":
        value = f"Shop{BREAKS[attack]}{INJECTED} <shop@example.com>"
    else:
        value = attacked(value, attack)
    status, reply = await upload(
        api,
        csv_of([["email"], ["a@example.org"]]),
        **{"subject": "Hi", field: value, "text": "Hi", "html": ""},
    )
    assert status == 400, reply
    assert [e["field"] for e in reply["errors"]] == [field]

"""POST /v1/campaigns: CSV streamed record by record, templates, dedupe within the file and
across re-uploads, bad rows listed; and the whole way to SENT through the dispatcher."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dispatcher.api.csvstream import records
from dispatcher.config import Settings
from dispatcher.dev.stack import QueuePair
from dispatcher.message import decode
from tests.support.api import Api, upload
from tests.support.harness import drain_queue, eventually, running


def chunks_of(data: bytes, size: int) -> Any:
    stream = io.BytesIO(data)

    async def read_chunk(_: int) -> bytes:
        return stream.read(size)

    return read_chunk


async def all_records(data: bytes, size: int) -> list[tuple[int, list[str] | None, str]]:
    return [(r.number, r.fields, r.error) async for r in records(chunks_of(data, size))]


@pytest.mark.parametrize("size", [1, 7, 65536])
async def test_csv_records_whatever_the_chunking(size: int) -> None:
    data = (
        b"\xef\xbb\xbfEmail,Name,Note\r\n"
        b'a@example.org,"Ann, A.","two\r\nlines"\r\n'
        b"\r\n"
        b'b@example.org,"Bob ""B""",\xc3\xa9t\xc3\xa9\n'
        b"c@example.org,\xff\xfe,x\n"
        b'd@example.org,Dee,"open'
    )
    assert await all_records(data, size) == [
        (1, ["Email", "Name", "Note"], ""),
        (2, ["a@example.org", "Ann, A.", "two\r\nlines"], ""),
        (3, ["b@example.org", 'Bob "B"', "été"], ""),
        (4, None, "not UTF-8"),
        (5, None, "a quoted field is not closed at the end of the file"),
    ]


async def test_templates_overrides_dedupe_and_bad_rows(
    api: Api, sqs: Any, queues: QueuePair
) -> None:
    csv_text = (
        "EMAIL,Name,Company,Subject\n"
        "ann@Example.ORG,Ann,<Acme & Co>,\n"
        " ann@example.org ,Ann again,Acme,\n"  # the same address once normalised
        "bob@example.org,Bob,Bobco,Just for Bob\n"
        "not-an-address,Nope,X,\n"
        "carl@example.org,Carl\n"  # too few fields
    )
    status, reply = await upload(api, csv_text, batch_id="spring")
    assert status == 202
    assert {k: reply[k] for k in ("batch_id", "accepted", "skipped_duplicates")} == {
        "batch_id": "spring",
        "accepted": 2,
        "skipped_duplicates": 1,
    }
    assert reply["rejected_rows"] == [
        {"row": 5, "error": "email: not a valid address"},
        {"row": 6, "error": "2 fields, the header has 4"},
    ]
    sent = {
        decode(m["Body"]).to[0].email: decode(m["Body"]) for m in await drain_queue(sqs, queues.url)
    }
    assert set(sent) == {"ann@example.org", "bob@example.org"}
    ann = sent["ann@example.org"]
    assert (ann.subject, ann.text, ann.html, ann.sender.name) == (
        "Hello Ann",
        "Hi Ann, from <Acme & Co>",
        "<p>Hi Ann of &lt;Acme &amp; Co&gt;</p>",
        "Shop",
    )
    assert sent["bob@example.org"].subject == "Just for Bob"
    status, again = await upload(api, csv_text, batch_id="spring")
    assert (status, again["accepted"], again["skipped_duplicates"]) == (202, 0, 3)


async def test_form_errors_are_named_before_anything_is_enqueued(api: Api) -> None:
    status, reply = await upload(api, "email\na@example.org\n", subject="", text="", html="")
    assert status == 400
    assert {e["field"] for e in reply["errors"]} == {"subject", "text"}
    status, reply = await upload(
        api, "email,name,company\na@example.org,A,Co\n", subject="Hi {{nickname}}"
    )
    assert (status, reply["errors"]) == (
        400,
        [{"field": "subject", "error": "unknown column {{nickname}}"}],
    )
    status, reply = await upload(api, "address\na@example.org\n")
    assert (status, reply["errors"][0]["field"]) == (400, "file")
    async with api.client.post(f"{api.url}/v1/campaigns", json={}) as r:
        assert r.status == 415


@pytest.mark.parametrize("api_settings", [{"max_csv_rows": 3}], indirect=True)
async def test_max_csv_rows_is_enforced_with_a_clear_error(api: Api) -> None:
    rows = "".join(f"u{n}@example.org,U{n},Co\n" for n in range(5))
    status, reply = await upload(api, "email,name,company\n" + rows, batch_id="big")
    assert status == 413
    assert "max_csv_rows (3)" in reply["error"]
    assert reply["accepted"] == 3


def thousand_rows() -> bytes:
    """1,000 rows: 890 distinct addresses, 100 repeats of them (case and spaces vary), 10 bad."""
    lines = ["email,name,company"]
    for n in range(890):
        lines.append(f"user{n}@example.org,User {n},Co {n % 7}")
    for n in range(100):
        lines.append(f"  user{n * 3}@EXAMPLE.org ,Again {n},Co")
    for n in range(10):
        lines.append(f"broken-{n},Bad {n},Co")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8-sig")


@pytest.fixture
async def worker(api_settings: Settings) -> AsyncIterator[None]:
    async with running(api_settings):
        yield


@pytest.mark.parametrize("sqs_endpoint", ["fauxqs"], indirect=True)
async def test_a_thousand_row_campaign_reaches_sent_and_a_reupload_accepts_none(
    api: Api, worker: None
) -> None:
    status, reply = await upload(api, thousand_rows(), batch_id="launch")
    assert status == 202
    assert (reply["accepted"], reply["skipped_duplicates"], len(reply["rejected_rows"])) == (
        890,
        100,
        10,
    )

    async def all_sent() -> bool:
        async with api.client.get(f"{api.url}/v1/batches/launch?limit=1") as r:
            counts = (await r.json())["counts"]
        return bool(counts["SENT"] == 890)

    await eventually(all_sent, 90, "890 SENT")
    async with api.client.get(f"{api.url}/v1/batches/launch") as r:
        batch = await r.json()
    assert batch["total"] == 890
    assert batch["counts"] == {"PENDING": 0, "QUEUED": 0, "SENDING": 0, "SENT": 890, "ERROR": 0} | (
        dict.fromkeys(("DELIVERED", "BOUNCED", "COMPLAINED"), 0)
    )
    status, again = await upload(api, thousand_rows(), batch_id="launch")
    assert (status, again["accepted"], again["skipped_duplicates"]) == (202, 0, 990)


async def test_rows_sqs_refuses_answer_503_and_a_reupload_enqueues_only_those(
    api: Api, gateway: Any, sqs: Any, queues: QueuePair
) -> None:
    rows = "".join(f"u{n}@example.org,U{n},Co\n" for n in range(30))
    csv_text = "email,name,company\n" + rows.replace("u7@", "sqs-down-7@")
    gateway.fail_marker = b"sqs-down-"
    status, reply = await upload(api, csv_text, batch_id="flaky")
    assert status == 503
    assert (reply["accepted"], reply["skipped_duplicates"]) == (29, 0)
    assert len(await drain_queue(sqs, queues.url)) == 29
    gateway.fail_marker = None
    status, again = await upload(api, csv_text, batch_id="flaky")
    assert (status, again["accepted"], again["skipped_duplicates"]) == (202, 1, 29)
    [late] = await drain_queue(sqs, queues.url)
    assert decode(late["Body"]).to[0].email == "sqs-down-7@example.org"

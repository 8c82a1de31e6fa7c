"""Bounded memory on bad input (the API runs in this process: tracemalloc measures it, with the
client's side included): a body over `max_body_bytes` is refused with 413 without being read
whole; one request with 1,000 recipients (the documented `to` limit, `models.MAX_TO`) is taken,
1,001 refused naming `to`; a 1 GB CSV streamed from a generator, never held anywhere, is cut at
`max_csv_rows` with a clear 413."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp.payload import AsyncIterablePayload
from redis.asyncio import Redis

from dispatcher.api.campaigns import MAX_LISTED_REJECTIONS
from dispatcher.api.models import MAX_TO
from tests.support.api import Api, body
from tests.support.harness import records

MB = 1024 * 1024
GB = 1024 * MB
CHUNK = 64 * 1024


@dataclass
class Peak:
    bytes: int = 0


@contextmanager
def peak_growth() -> Iterator[Peak]:
    """The peak of memory allocated (tracemalloc) above where it stood on entry."""
    peak = Peak()
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        yield peak
        peak.bytes = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


@dataclass
class Stream:
    """An async byte stream of `total` bytes made on the fly, counting what was taken."""

    head: bytes
    row: bytes
    total: int
    taken: int = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        rows = self.row * (CHUNK // len(self.row))
        yield self.head
        self.taken = len(self.head)
        while self.taken < self.total:
            yield rows
            self.taken += len(rows)


@pytest.mark.parametrize("api_settings", [{"max_body_bytes": 256 * 1024}], indirect=True)
async def test_a_body_over_max_body_bytes_is_refused_unread(api: Api) -> None:
    stream = Stream(b'{"text": "', b"x" * 64, 64 * MB)  # chunked: no Content-Length to trust
    with peak_growth() as peak:
        async with api.client.post(
            f"{api.url}/v1/emails",
            data=AsyncIterablePayload(stream.chunks()),
            headers={"Content-Type": "application/json"},
        ) as reply:
            status, answer = reply.status, await reply.json()
    assert status == 413
    assert "error" in answer
    assert peak.bytes < 8 * MB, peak.bytes
    print(f"\n413 after {stream.taken / MB:.1f} MB offered; peak growth {peak.bytes / MB:.2f} MB")


async def test_a_thousand_recipients_taken_one_more_refused(api: Api, redis: Redis) -> None:
    assert MAX_TO == 1000
    with peak_growth() as peak:
        async with api.client.post(f"{api.url}/v1/emails", json=body(MAX_TO)) as reply:
            status, answer = reply.status, await reply.json()
    assert status == 202
    ids = [m["id"] for m in answer["messages"]]
    assert await records(redis, ids) == {"QUEUED": MAX_TO}
    assert peak.bytes < 50 * MB, peak.bytes
    print(f"\n1,000 recipients: peak growth {peak.bytes / MB:.2f} MB")
    async with api.client.post(f"{api.url}/v1/emails", json=body(MAX_TO + 1)) as reply:
        assert reply.status == 400
        assert [e["field"] for e in (await reply.json())["errors"]] == ["to"]


def campaign(stream: Stream) -> aiohttp.MultipartWriter:
    form = aiohttp.MultipartWriter("form-data")
    for name, value in (("from", "Shop <shop@example.com>"), ("subject", "Hi"), ("text", "Hi")):
        form.append(value).set_content_disposition("form-data", name=name)
    part = form.append(AsyncIterablePayload(stream.chunks()))
    part.set_content_disposition("form-data", name="file", filename="list.csv")
    return form


ROWS = 1000


@pytest.mark.parametrize("api_settings", [{"max_csv_rows": ROWS}], indirect=True)
async def test_a_1_gb_csv_stream_stops_at_max_csv_rows(api: Api, redis: Redis) -> None:
    stream = Stream(b"email,name\n", b"same@example.org,Same Name\n", GB)
    with peak_growth() as peak:
        async with api.client.post(f"{api.url}/v1/campaigns", data=campaign(stream)) as reply:
            status, answer = reply.status, await reply.json()
    assert status == 413
    assert f"max_csv_rows ({ROWS})" in answer["error"]
    assert answer["accepted"] + answer["skipped_duplicates"] == ROWS
    assert stream.taken < GB  # the stream was cut, not read to its end
    assert peak.bytes < 50 * MB, peak.bytes
    print(f"\nCSV cut after {stream.taken / MB:.1f} MB of 1 GB; peak {peak.bytes / MB:.2f} MB")


@pytest.mark.parametrize("api_settings", [{"max_csv_rows": 20 * ROWS}], indirect=True)
async def test_a_stream_of_bad_rows_is_counted_and_only_the_first_listed(api: Api) -> None:
    stream = Stream(b"email,name\n", b"not-an-address,Nobody\n", GB)
    with peak_growth() as peak:
        async with api.client.post(f"{api.url}/v1/campaigns", data=campaign(stream)) as reply:
            status, answer = reply.status, await reply.json()
    assert status == 413
    assert (answer["accepted"], answer["rejected"]) == (0, 20 * ROWS)
    assert [r["row"] for r in answer["rejected_rows"]] == list(range(2, MAX_LISTED_REJECTIONS + 2))
    assert peak.bytes < 50 * MB, peak.bytes
    print(f"\n20,000 bad rows: {stream.taken / MB:.1f} MB taken; peak {peak.bytes / MB:.2f} MB")

"""The load: N messages at a steady rate, half through the intake API (POST /v1/emails), half
written to SQS directly, 1 % poison (malformed bodies and invalid fields, straight to SQS).

Every recipient, subject and body carries the run's `marker`, so the log scan can look for
them. An API call that fails (Redis or SQS trouble at the API) is retried with the same
Idempotency-Key, so the ids it finally returns are exactly the ones queued.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair
from tests.support.harness import enqueue

API_BATCH = 5  # recipients per POST /v1/emails (one queue message each)
POISON_EVERY = 100


@dataclass
class Sent:
    """What the load put in, for the accounting."""

    enqueued_at: dict[str, float] = field(default_factory=dict)  # message id -> time.time()
    via_api: set[str] = field(default_factory=set)
    poison: dict[str, float] = field(default_factory=dict)  # poison marker -> time.time()
    recipients: set[str] = field(default_factory=set)
    api_refused: int = 0  # messages the API never accepted (error after every retry)

    def ids(self) -> set[str]:
        return set(self.enqueued_at)


def recipient(marker: str, n: int) -> str:
    return f"rcpt.{marker}.{n}@chaos.example.org"


def subject(marker: str) -> str:
    return f"Your chaos order {marker}"


def _direct_doc(marker: str, phase: str, n: int) -> dict[str, Any]:
    doc = email_doc(n, id=f"chaos-{phase}-{n:06d}", batch_id=f"chaos-{phase}")
    doc["to"] = [{"email": recipient(marker, n)}]
    doc.update(subject=subject(marker), text=f"body {marker}", html=f"<p>body {marker}</p>")
    return doc


def _poison(marker: str, phase: str, n: int) -> bytes:
    """Alternately a body that is not JSON and one with an invalid field; both name a token."""
    token = f"poison-{phase}-{n:06d}"
    if (n // POISON_EVERY) % 2:
        return f'{{"v": 1, "id": "{token}", "to": [{{"email": '.encode()
    doc = _direct_doc(marker, phase, n)
    doc.update(id=token, to=[{"email": f"not-an-address-{marker}"}])
    return orjson.dumps(doc)


class Load:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        api_url: str,
        sqs: Any,
        queues: QueuePair,
        *,
        marker: str,
        phase: str,
        retry_seconds: float,
    ) -> None:
        self.http, self.api_url, self.sqs, self.queues = http, api_url, sqs, queues
        self.marker, self.phase, self.retry_seconds = marker, phase, retry_seconds
        self.sent = Sent()
        self._calls: set[asyncio.Task[None]] = set()

    async def run(self, messages: int, seconds: float) -> Sent:
        """Put `messages` in over `seconds`, in ticks of 0.2 s; wait for the API calls."""
        ticks = max(1, int(seconds / 0.2))
        per_tick = [messages * (t + 1) // ticks - messages * t // ticks for t in range(ticks)]
        started, n = time.monotonic(), 0
        for t, count in enumerate(per_tick):
            await self._tick(range(n, n + count))
            n += count
            await asyncio.sleep(max(0.0, started + (t + 1) * 0.2 - time.monotonic()))
        if self._calls:
            await asyncio.gather(*self._calls)
        return self.sent

    async def _tick(self, numbers: range) -> None:
        direct: list[bytes] = []
        api: list[int] = []
        for n in numbers:
            if n % POISON_EVERY == POISON_EVERY - 1:
                direct.append(_poison(self.marker, self.phase, n))
                self.sent.poison[f"poison-{self.phase}-{n:06d}"] = time.time()
            elif n % 2:
                doc = _direct_doc(self.marker, self.phase, n)
                direct.append(orjson.dumps(doc))
                self.sent.enqueued_at[doc["id"]] = time.time()
                self.sent.recipients.add(doc["to"][0]["email"])
            else:
                api.append(n)
        if direct:
            await enqueue(self.sqs, self.queues.url, direct)
        for start in range(0, len(api), API_BATCH):
            task = asyncio.create_task(self._post(api[start : start + API_BATCH]))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _post(self, numbers: list[int]) -> None:
        to = [{"email": recipient(self.marker, n)} for n in numbers]
        self.sent.recipients.update(r["email"] for r in to)
        doc = {
            "from": {"email": "shop@example.com", "name": "Shop"},
            "to": to,
            "subject": subject(self.marker),
            "text": f"body {self.marker}",
            "batch_id": f"chaos-{self.phase}-api",
        }
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        deadline = time.monotonic() + self.retry_seconds
        while True:
            reply = await self._try_post(doc, headers)
            if reply is not None:
                for message in reply["messages"]:
                    self.sent.enqueued_at[message["id"]] = time.time()
                    self.sent.via_api.add(message["id"])
                return
            if time.monotonic() > deadline:
                self.sent.api_refused += len(numbers)
                return
            await asyncio.sleep(1.0)

    async def _try_post(self, doc: dict[str, Any], headers: dict[str, str]) -> Any:
        try:
            async with self.http.post(
                f"{self.api_url}/v1/emails", json=doc, headers=headers
            ) as reply:
                if reply.status == 202:
                    return await reply.json()
                await reply.read()
                return None
        except (aiohttp.ClientError, TimeoutError):
            return None

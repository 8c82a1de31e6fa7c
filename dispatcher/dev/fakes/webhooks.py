"""Webhooks from the fakes: after each accepted message, a fake told to (`fake.emit_webhooks(...)`)
posts one event about it to a URL, in its provider's real format and signed with a test key:
a bounce (hard) with probability `bounce_rate`, else a complaint with `complaint_rate`, else a
delivery, drawn from `random.Random(seed)`. `fake.webhook_replies` keeps (outcome, status) of
each post; `await fake.webhooks_settled()` waits for those in flight.

SendGrid   ECDSA P-256 signature headers over timestamp + body (`sendgrid_public_key` is the
           verification key to configure, base64 DER)
Mailgun    `signature` {timestamp, token, signature = HMAC-SHA-256(signing key, ts + token)}
SES        see `dispatcher.dev.fakes.sns` (moto sends, the fake SNS publisher signs the
           notification)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp


class Receipt(Protocol):  # dispatcher.dev.fakes.faults.Receipt, which imports this module
    @property
    def provider_id(self) -> str: ...

    @property
    def payload(self) -> Any: ...


RETRIES = 20
Build = Callable[[Any, str], tuple[bytes, dict[str, str]]]  # receipt, outcome -> request


@dataclass
class WebhookPlan:
    url: str
    bounce_rate: float = 0.0
    complaint_rate: float = 0.0
    seed: int = 0
    random: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def draw(self) -> str:
        roll = self.random.random()
        if roll < self.bounce_rate:
            return "bounce"
        if roll < self.bounce_rate + self.complaint_rate:
            return "complaint"
        return "delivered"


class Emitter:
    """Posts the events of one fake, each in a task of its own, kept until it ends."""

    def __init__(self, plan: WebhookPlan, build: Build) -> None:
        self.plan = plan
        self._build = build
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.replies: list[tuple[str, str, int]] = []  # (provider id, outcome, status)

    def emit(self, receipt: Receipt) -> None:
        outcome = self.plan.draw()
        task = asyncio.create_task(self._post(receipt, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, receipt: Receipt, outcome: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        status = 0
        for attempt in range(RETRIES):
            if attempt:
                await asyncio.sleep(0.2 * attempt)
            body, headers = self._build(receipt, outcome)  # signed afresh, as providers do
            headers = {"Content-Type": "application/json", **headers}
            try:
                async with self._session.post(self.plan.url, data=body, headers=headers) as reply:
                    status = reply.status
            except aiohttp.ClientError:
                status = 0
            if 0 < status < 500:
                break
        self.replies.append((receipt.provider_id, outcome, status))

    async def settled(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks)

    async def close(self) -> None:
        await self.settled()
        if self._session is not None:
            await self._session.close()

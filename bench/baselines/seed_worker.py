"""Baseline (c): a worker as the reference write-ups in shared/reference/ draw it, on the same
stack. One message at a time: receive ten, then for each one GET its idempotency key, read every
provider's breaker state and usage counter from Redis, pick the least used closed provider, send
(through the same provider code as the dispatcher), SET the key, INCR the counters, push the
latency and mark the provider healthy (or count a failure and maybe open its breaker), then
delete that message alone. About ten Redis round trips and one SQS call per message.

    python -m bench.baselines.seed_worker --endpoint URL --redis-url URL \
        --sendgrid URL --mailgun URL --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
import uvloop
from redis.asyncio import Redis

from bench.baselines import Measured, Window
from bench.stack import API_KEY, MAILGUN_DOMAIN, enqueue, message_bodies
from dispatcher.dev.stack import create_queue_pair, sqs_client
from dispatcher.message import decode
from providers.base import Provider, Status
from providers.mailgun import Mailgun, MailgunOptions
from providers.sendgrid import SendGrid, SendGridOptions

BREAKER_OPEN_SECONDS = 30
TIMEOUT_SECONDS = 15.0  # a provider's default `timeout_seconds`
FAILURES_TO_OPEN = 5


class SeedWorker:
    def __init__(self, sqs: Any, url: str, redis: Redis, providers: Sequence[Provider]) -> None:
        self.sqs, self.url, self.redis = sqs, url, redis
        self.providers = {p.name: p for p in providers}
        self.handled = 0

    async def run(self, deadline: float, limit: int) -> None:
        while time.monotonic() < deadline and self.handled < limit:
            reply = await self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in reply.get("Messages", []):
                if time.monotonic() >= deadline:
                    return  # the rest come back after their visibility timeout
                await self.handle(message)
                self.handled += 1

    async def handle(self, message: dict[str, Any]) -> None:
        email = decode(message["Body"])
        key = f"seed:idempotency:{email.id}"
        if await self.redis.get(key) is None:
            name = await self.choose()
            outcome = await self.providers[name].send(email)
            if outcome.status is Status.SENT:
                await self.redis.set(key, outcome.provider_message_id or "sent", ex=86_400)
                await self.redis.incr(f"seed:usage:{name}")
                await self.redis.incr("seed:sent")
                await self.redis.lpush(f"seed:latency:{name}", round(outcome.latency * 1000, 1))
                await self.redis.set(f"seed:health:{name}", "healthy")
            else:
                await self.failed(name)
        await self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    async def choose(self) -> str:
        """The least used provider whose breaker is closed (the first one if all are open)."""
        usage: dict[str, int] = {}
        for name in self.providers:
            if await self.redis.get(f"seed:breaker:{name}") is not None:
                continue  # open
            usage[name] = int(await self.redis.get(f"seed:usage:{name}") or 0)
        return min(usage, key=usage.__getitem__) if usage else next(iter(self.providers))

    async def failed(self, name: str) -> None:
        if await self.redis.incr(f"seed:failures:{name}") >= FAILURES_TO_OPEN:
            await self.redis.set(f"seed:breaker:{name}", "open", ex=BREAKER_OPEN_SECONDS)
            await self.redis.delete(f"seed:failures:{name}")


def open_providers(sendgrid_url: str, mailgun_url: str, http: Any) -> list[Provider]:
    return [
        SendGrid(
            "sendgrid",
            TIMEOUT_SECONDS,
            SendGridOptions(api_key=API_KEY, base_url=sendgrid_url),
            http,
        ),
        Mailgun(
            "mailgun",
            TIMEOUT_SECONDS,
            MailgunOptions(api_key=API_KEY, domain=MAILGUN_DOMAIN, base_url=mailgun_url),
            http,
        ),
    ]


async def measure(args: argparse.Namespace) -> Measured:
    redis = Redis.from_url(args.redis_url)
    async with sqs_client(args.endpoint) as sqs, aiohttp.ClientSession() as http:
        pair = await create_queue_pair(sqs, f"bench-seed-{uuid.uuid4().hex[:8]}")
        try:
            await enqueue(sqs, pair.url, message_bodies(f"seed-{uuid.uuid4().hex[:6]}", args.count))
            worker = SeedWorker(
                sqs, pair.url, redis, open_providers(args.sendgrid, args.mailgun, http)
            )
            window = Window()
            window.start()
            await worker.run(time.monotonic() + args.seconds, args.count)
            return window.stop(worker.handled)
        finally:
            await redis.aclose()
            for url in pair:
                await sqs.delete_queue(QueueUrl=url)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.baselines.seed_worker", description=__doc__
    )
    parser.add_argument("--endpoint", required=True, help="fauxqs endpoint URL")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--sendgrid", required=True, help="fake SendGrid base URL")
    parser.add_argument("--mailgun", required=True, help="fake Mailgun base URL")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--count", type=int, default=1000, help="messages enqueued (the cap)")
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(measure(args)).emit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

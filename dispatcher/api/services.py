"""What the handlers share, opened once per app in a cleanup context and kept in an AppKey."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from dispatcher.api.enqueue import Enqueuer
from dispatcher.api.idempotency import Idempotency
from dispatcher.api.sns import Fetch, SnsVerifier
from dispatcher.api.webhook_auth import Replays, sendgrid_key
from dispatcher.app import open_redis
from dispatcher.config import ConfigError, Settings
from dispatcher.feedback import Feedback
from dispatcher.intake import IntakeLedger
from dispatcher.queue import SqsQueue
from dispatcher.records import Records
from dispatcher.scripts import RedisClient
from dispatcher.suppression import AddressHasher, Suppressions

MAX_FETCH_BYTES = 64 * 1024  # a signing certificate, a subscription confirmation


@dataclass(frozen=True, slots=True)
class Hooks:
    """The configured webhook verifiers (None: that webhook is not served)."""

    sendgrid_key: ec.EllipticCurvePublicKey | None
    sns: SnsVerifier | None


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    redis: RedisClient
    sqs: Any  # the aiobotocore SQS client
    queue: SqsQueue
    records: Records
    enqueuer: Enqueuer
    idempotency: Idempotency
    suppressions: Suppressions
    feedback: Feedback
    replays: Replays
    hooks: Hooks


SERVICES = web.AppKey("services", Services)


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    redis = open_redis(settings.redis)
    stack = contextlib.AsyncExitStack()
    try:
        config = AioConfig(max_pool_connections=64, retries={"mode": "standard"})
        sqs = await stack.enter_async_context(
            get_session().create_client(
                "sqs",
                region_name=settings.queue.region,
                endpoint_url=settings.queue.endpoint_url,
                config=config,
            )
        )
        http = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        )
        yield _services(settings, redis, sqs, http)
    finally:
        await stack.aclose()
        await redis.aclose()


def _services(
    settings: Settings, redis: RedisClient, sqs: Any, http: aiohttp.ClientSession
) -> Services:
    """The API's stores and gateways over one Redis client, one SQS client and one session."""
    ttl = settings.api.retention_days * 86_400
    prefix = settings.redis.key_prefix
    lease = settings.api.lease_seconds
    queue = SqsQueue(
        sqs,
        settings.queue.url,
        settings.queue.dead_letter_url or "",
        wait_seconds=0,
        visibility_timeout=settings.queue.visibility_timeout,
    )
    suppressions = Suppressions(redis, prefix, AddressHasher(settings.suppression.secret, prefix))
    return Services(
        settings=settings,
        redis=redis,
        sqs=sqs,
        queue=queue,
        records=Records(redis, prefix, ttl, time.time),
        enqueuer=Enqueuer(
            IntakeLedger(redis, prefix, ttl, lease_seconds=lease), queue, suppressions
        ),
        idempotency=Idempotency(redis, prefix, settings.api.idempotency_hours * 3600, lease),
        suppressions=suppressions,
        feedback=Feedback(redis, prefix, ttl, suppressions),
        replays=Replays(redis, prefix),
        hooks=hooks(settings, fetcher(http)),
    )


def hooks(settings: Settings, fetch: Fetch) -> Hooks:
    w = settings.webhooks
    try:
        key = sendgrid_key(w.sendgrid_public_key) if w.sendgrid_public_key else None
    except ValueError as exc:
        raise ConfigError("webhooks.sendgrid_public_key", str(exc)) from None
    return Hooks(key, SnsVerifier(w, fetch) if w.ses_enabled else None)


def fetcher(http: aiohttp.ClientSession) -> Fetch:
    """GET a small document (raises OSError for any failure, a non-200 answer included)."""

    async def fetch(url: str) -> bytes:
        try:
            async with http.get(url, allow_redirects=False) as reply:
                body = await reply.content.read(MAX_FETCH_BYTES + 1)
        except aiohttp.ClientError as exc:
            raise OSError(type(exc).__name__) from None
        if reply.status != 200 or len(body) > MAX_FETCH_BYTES:
            raise OSError(f"status {reply.status}")
        return body

    return fetch


def services_context(settings: Settings) -> Any:
    """A cleanup context for `app.cleanup_ctx`: opens the services before the app serves."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app[SERVICES] = services
            yield

    return context

"""What the handlers share, opened once per app in a cleanup context and kept in an AppKey."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aiohttp import web

from dispatcher.api.enqueue import Enqueuer
from dispatcher.api.idempotency import Idempotency
from dispatcher.app import open_redis
from dispatcher.config import Settings
from dispatcher.intake import IntakeLedger
from dispatcher.queue import SqsQueue
from dispatcher.records import Records
from dispatcher.scripts import RedisClient


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    redis: RedisClient
    sqs: Any  # the aiobotocore SQS client
    queue: SqsQueue
    records: Records
    enqueuer: Enqueuer
    idempotency: Idempotency


SERVICES = web.AppKey("services", Services)


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    ttl = settings.api.retention_days * 86_400
    prefix = settings.redis.key_prefix
    redis = open_redis(settings.redis)
    try:
        config = AioConfig(max_pool_connections=64, retries={"mode": "standard"})
        async with get_session().create_client(
            "sqs",
            region_name=settings.queue.region,
            endpoint_url=settings.queue.endpoint_url,
            config=config,
        ) as sqs:
            queue = SqsQueue(
                sqs,
                settings.queue.url,
                settings.queue.dead_letter_url or "",
                wait_seconds=0,
                visibility_timeout=settings.queue.visibility_timeout,
            )
            intake = IntakeLedger(redis, prefix, ttl)
            yield Services(
                settings=settings,
                redis=redis,
                sqs=sqs,
                queue=queue,
                records=Records(redis, prefix, ttl, time.time),
                enqueuer=Enqueuer(intake, queue),
                idempotency=Idempotency(redis, prefix, settings.api.idempotency_hours * 3600),
            )
    finally:
        await redis.aclose()


def services_context(settings: Settings) -> Any:
    """A cleanup context for `app.cleanup_ctx`: opens the services before the app serves."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app[SERVICES] = services
            yield

    return context

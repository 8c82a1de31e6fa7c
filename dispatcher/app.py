"""Wiring: open every client the worker needs from frozen settings, and close them after."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import botocore
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

from dispatcher import __version__
from dispatcher.admission import RATE_AHEAD_SECONDS
from dispatcher.config import ConfigError, RedisSettings, RoutingSettings, Settings
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.health.resilient import ResilientHealth
from dispatcher.ledger import Ledger
from dispatcher.ledger_epoch import LedgerEpoch
from dispatcher.ops.metrics import worker_registry
from dispatcher.ops.probes import serving_probes
from dispatcher.queue import SqsQueue, resolve_dead_letter_url
from dispatcher.redis_connection import connection_class
from dispatcher.round_trips import RoundTrips
from dispatcher.router import Router
from dispatcher.scripts import RedisClient
from dispatcher.stats import Stats
from dispatcher.suppression import AddressHasher
from dispatcher.worker import Worker
from providers import open_providers
from providers.base import Provider
from strategies import Tuning, build_strategy

log = structlog.get_logger("dispatcher.app")
EVICTION_SAFE_POLICY = "noeviction"  # the only maxmemory-policy that never drops ledger records
SQS_ATTEMPTS = 3  # each SQS call: the first try and two retries (botocore "standard" mode)
USER_AGENT = f"dispatcher/{__version__} botocore/{botocore.__version__}"


@contextlib.asynccontextmanager
async def open_sqs(settings: Settings, pool: int = 32) -> AsyncIterator[Any]:
    """An SQS client with explicit timeouts (botocore's defaults wait 60 s to connect and 60 s
    for each read, per attempt), so that a call to an unreachable endpoint fails in bounded
    time and the next heartbeat or poll tries again."""
    queue = settings.queue
    config = AioConfig(
        max_pool_connections=pool,
        connect_timeout=queue.connect_timeout_seconds,
        read_timeout=queue.read_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": SQS_ATTEMPTS},
        # The hot client's per-call work: our calls have fixed shapes (tested), so botocore's
        # parameter validation is skipped, and a fixed User-Agent spares it rebuilding and
        # sanitising the SDK's one twice per request.
        parameter_validation=False,
        user_agent=USER_AGENT,
    )
    async with get_session().create_client(
        "sqs",
        region_name=queue.region,
        endpoint_url=queue.endpoint_url,
        config=config,
    ) as client:
        yield client


def tuning(routing: RoutingSettings) -> Tuning:
    return Tuning(
        stale_seconds=routing.stale_seconds,
        slow_start_seconds=routing.slow_start_seconds,
        panic_threshold=routing.panic_threshold,
        latency_outlier_ratio=routing.latency_outlier_ratio,
    )


@contextlib.asynccontextmanager
async def open_worker(
    settings: Settings,
    *,
    providers: Sequence[Provider] | None = None,
    stats: Stats | None = None,
) -> AsyncIterator[Worker]:
    """Everything a `Worker` needs, opened in order and closed in reverse."""
    strategy = build_strategy(settings.routing.strategy, tuning(settings.routing))
    dispatch = settings.dispatch
    async with contextlib.AsyncExitStack() as stack:
        redis = open_redis(settings.redis)
        stack.push_async_callback(redis.aclose)
        await warn_if_evicting(redis)
        sqs = await stack.enter_async_context(open_sqs(settings, dispatch.pollers + 32))
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=dispatch.max_in_flight, limit_per_host=0)
        )
        stack.push_async_callback(http.close)
        if providers is None:
            providers = await open_providers(settings.providers, http)
            for provider in providers:
                stack.push_async_callback(provider.aclose)
        queue = await open_queue(settings, sqs)
        prefix = settings.redis.key_prefix
        hasher = AddressHasher(settings.suppression.secret, prefix)
        trips = RoundTrips(redis)  # a flush's settle and health record: one round trip
        ttl = dispatch.record_ttl_days * 86_400
        ledger = Ledger(redis, prefix, ttl, hasher=hasher, trips=trips)
        health = await health_store(settings, redis, trips)
        router = Router(strategy, providers, settings.providers, health, random.Random())
        yield Worker(dispatch, queue, ledger, router, stats, epoch=LedgerEpoch(redis, prefix))


async def open_queue(settings: Settings, sqs: Any) -> SqsQueue:
    """The worker's queue: its own URL and the DLQ's (from the config or the RedrivePolicy)."""
    dead_letter_url = settings.queue.dead_letter_url or await resolve_dead_letter_url(
        sqs, settings.queue.url
    )
    if not dead_letter_url:
        raise ConfigError(
            "queue.dead_letter_url", "is required when the queue has no RedrivePolicy"
        )
    return SqsQueue(
        sqs,
        settings.queue.url,
        dead_letter_url,
        wait_seconds=settings.queue.wait_time_seconds,
        visibility_timeout=settings.queue.visibility_timeout,
    )


def open_redis(settings: RedisSettings) -> RedisClient:
    """A client that retries a call twice on a dropped connection (after a Redis restart or a
    failover each pooled connection would otherwise fail once more), and gives up on an
    unanswered call after 2 s rather than the default 5 s, so a partition falls back to local
    health soon. The retry is redis-py's asyncio one: the synchronous `redis.retry.Retry`
    returns the call's coroutine unawaited, so it never retries. One Redis packs commands
    with hiredis, and a write on a reset connection is a `ConnectionError`
    (`redis_connection`)."""
    retry = Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.25), retries=2)
    limits: dict[str, Any] = {"socket_timeout": 2.0, "socket_connect_timeout": 1.0}
    if settings.cluster:  # the URL names one node; the client finds the others and the slots
        return RedisCluster.from_url(settings.url, retry=retry, **limits)
    return Redis.from_url(settings.url, retry=retry, **limits, **connection_class(settings.url))


async def warn_if_evicting(redis: RedisClient) -> None:
    """Log an error when Redis may evict ledger records. They carry a TTL, so a `volatile-*`
    policy (ElastiCache's default is volatile-lru) evicts them first when memory runs short,
    and an `allkeys-*` one may evict any: a lost record lets a redelivered message be sent
    again. Reads `INFO memory` (ElastiCache disables CONFIG GET); a failed read is only noted."""
    try:
        memory = await redis.info("memory")
    except (RedisError, OSError) as exc:
        log.warning("ledger.policy_unchecked", error=type(exc).__name__)
        return
    policy = str(memory.get("maxmemory_policy", EVICTION_SAFE_POLICY))
    if policy != EVICTION_SAFE_POLICY:
        log.error(
            "ledger.evicting_policy",
            maxmemory_policy=policy,
            maxmemory=memory.get("maxmemory"),
            fix=f"set maxmemory-policy {EVICTION_SAFE_POLICY} (on ElastiCache: in the parameter "
            "group); see Redis durability in the README",
        )


async def health_store(
    settings: Settings, redis: RedisClient, trips: RoundTrips | None = None
) -> ResilientHealth:
    """Shared health in Redis, falling back to per-process health while Redis is away. Its
    scripts are registered now, so that the first batch does not pay for it."""
    shared = RedisHealth(
        redis,
        settings.redis.key_prefix,
        settings.providers,
        settings.routing,
        ahead_seconds=RATE_AHEAD_SECONDS,
        trips=trips,
    )
    try:
        await shared.load_scripts()
    except (RedisError, OSError) as exc:  # unreachable now: loaded on first use instead
        log.warning("health_scripts_not_loaded", error=type(exc).__name__)
    local = MemoryHealth(settings.providers, settings.routing, ahead_seconds=RATE_AHEAD_SECONDS)
    return ResilientHealth(shared, local)


async def run(settings: Settings) -> None:
    """`dispatcher run`: work until SIGTERM or SIGINT, drain, and return."""
    async with (
        open_worker(settings) as worker,
        serving_probes(settings.metrics, worker, worker_registry(worker)) as probes,
    ):
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        log.info(
            "worker_started",
            queue=settings.queue.url,
            providers=[p.name for p in settings.providers],
            strategy=settings.routing.strategy,
            max_in_flight=settings.dispatch.max_in_flight,
            probes=probes,
        )
        try:
            await worker.run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

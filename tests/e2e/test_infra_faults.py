"""The worker's clients under infrastructure faults: a Redis restart, an SQS endpoint gone during a
long send, an evicting Redis memory policy, and the in-flight limit's memory."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ReadTimeoutError
from redis.asyncio import Redis
from structlog.testing import capture_logs

from dispatcher import keys
from dispatcher.app import SQS_ATTEMPTS, open_redis, open_sqs, open_worker, warn_if_evicting
from dispatcher.concurrency import AdaptiveLimit
from dispatcher.config import ConfigError, DispatchSettings, RedisSettings, Settings, parse
from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, RedisServer, free_port
from providers.base import Outcome, Status
from tests.support.configs import sendgrid
from tests.support.harness import empty, enqueue, eventually, records, running, settings
from tests.support.tcp_proxy import TcpProxy

DRY_RUN = {"name": "dry", "type": "simulated"}


async def test_a_redis_client_reconnects_after_a_restart_within_one_call() -> None:
    async with RedisServer() as server:
        client = open_redis(RedisSettings(url=server.url))
        try:
            await client.set("k", "v")  # a pooled connection now exists
            port = server.port
            await asyncio.to_thread(server.restart)
            assert server.port == port
            # The pooled connection is dead: the client's retry must reconnect within the call.
            assert await client.set("k", "w")
            assert await client.get("k") == b"w"
        finally:
            await client.aclose()


def test_a_fixed_limit_keeps_no_latencies() -> None:
    fixed = AdaptiveLimit(DispatchSettings(max_in_flight=32))
    adaptive = AdaptiveLimit(DispatchSettings(max_in_flight=64))
    assert fixed.fixed
    for limit in (fixed, adaptive):
        for status in (Status.SENT, Status.REJECTED, Status.THROTTLED) * 1000:
            limit.observe(Outcome(status, "a", latency=0.01))
    assert fixed.samples == 0  # nothing closes its intervals: it must not count at all
    assert adaptive.samples == 3000
    adaptive.adjust(64)
    assert adaptive.samples == 0  # each interval clears what it counted


async def test_a_worker_with_a_fixed_limit_does_not_accumulate_latencies(
    sqs: Any, queues: QueuePair, redis_url: str, sqs_endpoint: str
) -> None:
    count = 300
    await enqueue(sqs, queues.url, [email_doc(i) for i in range(count)])
    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], max_in_flight=32)
        async with running(config) as worker:
            assert worker.limit.fixed  # max_in_flight <= 32: the default floor equals it
            await eventually(lambda: worker.stats.sent == count, 120, f"{count} sent")
            assert worker.limit.samples == 0
    assert len(sg.receipts) == count


async def lease_until(redis: Redis, message_id: str) -> int:
    """The record's `lease_until` (epoch ms), 0 once settled."""
    value = await redis.hget(keys.message("t:", message_id), "lease_until")
    return int(value or 0)


def sqs_proxy(sqs_endpoint: str) -> TcpProxy:
    """A proxy to the SQS emulator (start it with `async with`)."""
    return TcpProxy("127.0.0.1", urlsplit(sqs_endpoint).port or 80)


async def test_the_lease_is_extended_while_sqs_fails_during_a_long_send(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    await enqueue(sqs, queues.url, [email_doc(0)])
    async with sqs_proxy(sqs_endpoint) as proxy, FakeSendGrid() as sg:
        sg.faults.hang()  # the send runs until the provider is let answer
        config = settings(
            queues.url,
            f"http://127.0.0.1:{proxy.port}",
            redis_url,
            [sendgrid(sg, timeout_seconds=120)],
            visibility_timeout=10,  # a heartbeat every 3.3 s
        )
        with capture_logs() as logs:
            async with running(config) as worker:
                await eventually(lambda: sg.faults.injected["hang"] == 1, 30, "send under way")
                claimed = await lease_until(redis, "msg-00000")
                assert claimed > 0
                await proxy.cut("refuse")  # every SQS call fails from now on

                async def extended() -> bool:
                    return await lease_until(redis, "msg-00000") > claimed

                def hiding_failed() -> bool:
                    return any(e["event"] == "heartbeat_failed" for e in logs)

                await eventually(hiding_failed, 60, "a visibility heartbeat failed")
                await eventually(extended, 30, "the lease extended while SQS fails")
                await proxy.restore()
                sg.faults.clear()
                await eventually(lambda: worker.stats.sent == 1, 30, "sent")
                await eventually(empty(sqs, queues.url), 30, "deleted from the queue")
    failed = [e for e in logs if e["event"] == "heartbeat_failed"]
    assert {e["part"] for e in failed} == {"visibility"}  # the lease never failed
    assert await records(redis, ["msg-00000"]) == {"SENT": 1}
    assert len(sg.receipts) == 1


def with_queue(config: Settings, **changes: Any) -> Settings:
    return dataclasses.replace(config, queue=dataclasses.replace(config.queue, **changes))


async def test_the_sqs_client_has_explicit_timeouts_and_bounded_retries(
    queues: QueuePair, redis_url: str, sqs_endpoint: str
) -> None:
    config = settings(queues.url, sqs_endpoint, redis_url, [DRY_RUN])
    async with open_sqs(config) as client:
        used = client.meta.config
        assert (used.connect_timeout, used.read_timeout) == (5.0, 30.0)
        assert used.retries == {"mode": "standard", "total_max_attempts": SQS_ATTEMPTS}
        assert await client.get_queue_attributes(QueueUrl=queues.url)
    tuned = with_queue(config, connect_timeout_seconds=2.0, read_timeout_seconds=12.0)
    async with open_sqs(tuned) as client:
        assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (2, 12)


async def test_an_sqs_call_to_a_silent_endpoint_fails_at_the_read_timeout(
    queues: QueuePair, redis_url: str, sqs_endpoint: str
) -> None:
    async with sqs_proxy(sqs_endpoint) as proxy:
        config = settings(queues.url, f"http://127.0.0.1:{proxy.port}", redis_url, [DRY_RUN])
        config = with_queue(config, read_timeout_seconds=2.0)
        async with open_sqs(config) as client:
            await proxy.cut("blackhole")  # connections are taken and never answered
            async with asyncio.timeout(60):  # botocore's default: 60 s per attempt, 3 attempts
                with pytest.raises(ReadTimeoutError):
                    await client.get_queue_attributes(QueueUrl=queues.url)
            await proxy.restore()


def test_the_read_timeout_must_outlast_the_long_poll() -> None:
    doc: dict[str, Any] = {
        "queue": {"url": "q", "wait_time_seconds": 20, "read_timeout_seconds": 20},
        "providers": [DRY_RUN],
    }
    with pytest.raises(ConfigError, match="must be > wait_time_seconds") as caught:
        parse(doc)
    assert caught.value.key == "queue.read_timeout_seconds"


@pytest.fixture
async def evicting(redis: Redis) -> AsyncIterator[Redis]:
    """The session's Redis with ElastiCache's default policy, restored after the test."""
    before = str((await redis.config_get("maxmemory-policy"))["maxmemory-policy"])
    await redis.config_set("maxmemory-policy", "volatile-lru")
    try:
        yield redis
    finally:
        await redis.config_set("maxmemory-policy", before)


def policy_errors(logs: Sequence[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "ledger.evicting_policy"]


async def test_a_worker_starting_on_an_evicting_redis_says_so_loudly(
    evicting: Redis, queues: QueuePair, redis_url: str, sqs_endpoint: str
) -> None:
    config = settings(queues.url, sqs_endpoint, redis_url, [DRY_RUN])
    with capture_logs() as logs:
        async with open_worker(config):
            pass
    [error] = policy_errors(logs)
    assert error["log_level"] == "error"
    assert error["maxmemory_policy"] == "volatile-lru"
    assert "maxmemory-policy noeviction" in error["fix"]


async def test_a_worker_starting_on_a_noeviction_redis_is_quiet(
    redis: Redis, queues: QueuePair, redis_url: str, sqs_endpoint: str
) -> None:
    assert (await redis.config_get("maxmemory-policy"))["maxmemory-policy"] == "noeviction"
    config = settings(queues.url, sqs_endpoint, redis_url, [DRY_RUN])
    with capture_logs() as logs:
        async with open_worker(config):
            pass
    assert policy_errors(logs) == []


async def test_an_unanswered_policy_check_is_noted_not_raised() -> None:
    client = open_redis(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))  # nobody there
    try:
        with capture_logs() as logs:
            await warn_if_evicting(client)
    finally:
        await client.aclose()
    assert [(e["event"], e["log_level"]) for e in logs] == [("ledger.policy_unchecked", "warning")]

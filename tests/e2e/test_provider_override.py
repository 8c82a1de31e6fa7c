"""`dispatcher provider drain|resume|open|close NAME`: two workers on one Redis and one queue
honour it at their next routing decision, `resume` brings traffic back, the TTL ends it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from dispatcher import cli, keys
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair
from dispatcher.health.base import Block, Observation, blocks
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.ops.metrics import worker_registry
from dispatcher.ops.overrides import parse_duration
from dispatcher.status import read_status
from dispatcher.worker import Worker
from providers.base import Status
from strategies.base import Circuit
from tests.support.configs import config_file, mailgun, sendgrid, two_providers
from tests.support.harness import enqueue, eventually, running, settings

MAX_IN_FLIGHT = 8


async def operator(path: Path, *args: str) -> None:
    assert await asyncio.to_thread(cli.main, ["provider", *args, "--config", str(path)]) == 0


def sees(workers: list[Worker], provider: str, mode: str | None) -> bool:
    return all(
        (h := w.router.report.get(provider)) is not None and h.override == mode for w in workers
    )


async def test_drain_stops_traffic_on_both_workers_resume_and_the_ttl_bring_it_back(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str, tmp_path: Path
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.latency(20)
        mg.faults.latency(20)
        providers = [sendgrid(sg), mailgun(mg)]
        config = settings(
            queues.url, sqs_endpoint, redis_url, providers, max_in_flight=MAX_IN_FLIGHT
        )
        path = config_file(tmp_path, config)
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(300)])
        async with running(config) as one, running(config) as two:
            workers = [one, two]

            def sent() -> int:
                return one.stats.sent + two.stats.sent

            await eventually(lambda: sent() >= 50, 60, "50 sent before the drain")
            await operator(path, "drain", "sendgrid")
            await eventually(lambda: sees(workers, "sendgrid", "drain"), 10, "drain seen")
            at_drain = len(sg.receipts)
            await eventually(lambda: sent() == 300, 60, "300 sent")
            # Only sends routed before each worker's next routing decision reached it.
            assert len(sg.receipts) <= at_drain + 2 * MAX_IN_FLIGHT
            assert len(mg.receipts) >= 300 - at_drain - 2 * MAX_IN_FLIGHT > 0
            collected = {
                tuple(sample.labels.values()): sample.value
                for family in worker_registry(one).collect()
                if family.name == "dispatcher_provider_override"
                for sample in family.samples
            }
            assert collected == {("sendgrid", "drain"): 1.0}
            rows = {r["provider"]: r for r in await read_status(config)}
            assert rows["sendgrid"]["override"] == "drain"
            assert 0 < rows["sendgrid"]["override_for_s"] <= 3600

            await operator(path, "resume", "sendgrid")
            await eventually(lambda: sees(workers, "sendgrid", None), 10, "resume seen")
            before = len(sg.receipts), len(mg.receipts)
            await enqueue(sqs, queues.url, [email_doc(i) for i in range(300, 400)])
            await eventually(lambda: sent() == 400, 60, "400 sent")
            assert (len(sg.receipts), len(mg.receipts)) == (before[0] + 100, before[1])

            await operator(path, "drain", "sendgrid", "--for", "2s")
            await eventually(lambda: sees(workers, "sendgrid", "drain"), 10, "short drain seen")
            await eventually(lambda: sees(workers, "sendgrid", None), 10, "the drain expired")
            assert not await redis.exists(keys.health_override("t:", "sendgrid"))
            await enqueue(sqs, queues.url, [email_doc(i) for i in range(400, 450)])
            await eventually(lambda: sent() == 450, 60, "450 sent")
            assert len(sg.receipts) == before[0] + 150
    delivered = [r.dispatcher_id for r in sg.receipts + mg.receipts]
    assert len(delivered) == len(set(delivered)) == 450


async def test_open_and_close_override_the_shared_breaker(redis: Redis, redis_url: str) -> None:
    config = two_providers(redis_url)
    health = RedisHealth(redis, "t:", config.providers, config.routing)
    await health.record([Observation("b", Status.DOWN, 0.01)] * 6)  # trips b
    await redis.set(keys.health_override("t:", "a"), "open", px=60_000)
    await redis.set(keys.health_override("t:", "b"), "close", px=60_000)
    report = await health.snapshot()
    assert (report["a"].circuit, report["a"].override) == (Circuit.OPEN, "open")
    assert report["a"].open_until is not None
    assert report["a"].open_until > report["a"].at
    assert (report["b"].circuit, report["b"].override) == (Circuit.CLOSED, "close")
    await redis.set(keys.health_override("t:", "a"), "drain", px=60_000)
    drained = (await health.snapshot())["a"]
    assert Block.DRAINED in blocks(drained, config.providers[0])


async def test_memory_health_keeps_the_last_override_it_saw(redis: Redis, redis_url: str) -> None:
    config = two_providers(redis_url)
    shared = RedisHealth(redis, "t:", config.providers, config.routing)
    local = MemoryHealth(config.providers, config.routing)
    await redis.set(keys.health_override("t:", "a"), "drain", px=60_000)
    local.remember_overrides(await shared.snapshot())
    kept = (await local.snapshot())["a"]
    assert kept.override == "drain"
    assert Block.DRAINED in blocks(kept, config.providers[0])
    await redis.delete(keys.health_override("t:", "a"))  # resumed while Redis answered
    local.remember_overrides(await shared.snapshot())
    assert (await local.snapshot())["a"].override is None


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "15m", "2h", "1d", "500ms")] == [
        90,
        90,
        900,
        7200,
        86_400,
        0.5,
    ]
    for bad in ("", "5 weeks", "-1s", "0", "31d"):
        try:
            parse_duration(bad)
        except ValueError:
            continue
        raise AssertionError(bad)

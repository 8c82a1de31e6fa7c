"""`dispatcher top`, captured with rich's own recording console: from Redis health alone, and
with a running worker's /metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from rich.console import Console

from dispatcher import cli, keys
from dispatcher.config import MetricsSettings
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, free_port
from dispatcher.health.base import Observation
from dispatcher.health.redis import RedisHealth
from dispatcher.ops.metrics import worker_registry
from dispatcher.ops.probes import serving_probes
from dispatcher.ops.top import Sample, TopSource, render, run_top
from providers.base import Status
from tests.support.configs import config_file, mailgun, sendgrid, two_providers
from tests.support.harness import enqueue, eventually, running, settings


def recorded() -> Console:
    return Console(record=True, width=120, file=io.StringIO(), color_system=None)


async def test_a_frame_from_redis_alone_shows_breakers_shares_latency_and_overrides(
    redis: Redis, redis_url: str
) -> None:
    config = two_providers(redis_url)
    health = RedisHealth(redis, "t:", config.providers, config.routing)
    await health.record(
        [Observation("a", Status.DOWN, 0.01)] * 6 + [Observation("b", Status.SENT, 0.08)] * 18
    )
    await redis.set(keys.health_override("t:", "b"), "drain", px=600_000)
    async with aiohttp.ClientSession() as http:
        sample = await TopSource(health, config, None).sample(http)
    console = recorded()
    console.print(render(sample))
    lines = console.export_text().splitlines()
    assert "msg/s (all replicas, window)" in lines[0]
    assert "in flight: no worker /metrics" in lines[0]
    a = next(line for line in lines if line.startswith("│ a "))
    b = next(line for line in lines if line.startswith("│ b "))
    assert "open" in a
    assert "100.0" in a  # error rate
    assert "25%" in a  # 6 of 24 answers
    assert "closed" in b
    assert "75%" in b
    assert "drain 600s" in b or "drain 599s" in b
    assert sample.health["b"].p50_ms is not None


async def test_top_follows_a_running_worker_through_its_metrics(
    sqs: Any, queues: QueuePair, redis_url: str, sqs_endpoint: str, tmp_path: Path
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        providers = [sendgrid(sg), mailgun(mg)]
        config = settings(queues.url, sqs_endpoint, redis_url, providers, max_in_flight=8)
        probes = MetricsSettings("127.0.0.1", free_port())
        config = dataclasses.replace(config, metrics=probes)
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(50)])
        async with (
            running(config) as worker,
            serving_probes(probes, worker, worker_registry(worker)) as url,
            Redis.from_url(redis_url) as redis,
        ):
            await eventually(lambda: worker.stats.sent == 50, 60, "50 sent")
            health = RedisHealth(redis, "t:", config.providers, config.routing)
            source = TopSource(health, config, url)
            console = recorded()
            await run_top(source, console, frames=2)
            async with aiohttp.ClientSession() as http:
                reading = await source.sample(http)
    text = console.export_text()
    assert "msg/s (this worker)" in text
    assert "in flight 0 / limit 8" in text
    assert "sendgrid" in text
    assert "closed" in text
    assert reading.worker is not None
    assert reading.worker.sent == 50
    assert reading.rate is not None


async def test_the_top_command_draws_frames(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config_file(tmp_path, two_providers(redis_url))
    args = ["top", "--config", str(path), "--frames", "1"]
    assert await asyncio.to_thread(cli.main, args) == 0
    out = capsys.readouterr().out
    assert "provider" in out
    assert "closed" in out


def test_render_without_any_answer() -> None:
    console = recorded()
    console.print(render(Sample({}, 30)))
    assert "0 msg/s" in console.export_text()

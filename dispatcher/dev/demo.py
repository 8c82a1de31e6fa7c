"""`dispatcher demo`: the whole pipeline on this machine, in well under two minutes.

It starts redis-server, fauxqs (a local SQS endpoint) and the intake API, uploads a CSV
campaign of 5,000 customers (with duplicates and bad rows, which the API skips and reports)
and a few single sends through the API, runs the real worker against three simulated
providers with `dispatcher top`'s live view (Redis health and the worker's own /metrics),
takes one provider down halfway so the failover shows, checks that
every message was sent exactly once, reads the campaign's counts back from
`GET /v1/batches/{id}`, and stops everything it started. Logs go to `.run/demo.log` (JSON
lines, this run only).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from dispatcher import logs
from dispatcher.app import open_worker
from dispatcher.config import MetricsSettings, Settings, parse
from dispatcher.dev.demo_api import FrontDoor, serving, write_campaign
from dispatcher.dev.stack import (
    AWS_CREDENTIALS,
    REPO,
    Fauxqs,
    QueuePair,
    RedisServer,
    create_queue_pair,
    free_port,
    queue_depth,
    sqs_client,
)
from dispatcher.health.redis import RedisHealth
from dispatcher.ops.metrics import worker_registry
from dispatcher.ops.probes import serving_probes
from dispatcher.ops.top import TopSource, render
from dispatcher.stats import Stats
from dispatcher.worker import Worker
from providers.simulated import Simulated

PROVIDERS = (("ses-sim", 90), ("sendgrid-sim", 70), ("mailgun-sim", 110))  # name, latency ms
TAKEN_DOWN = "ses-sim"
FRAME_SECONDS = 0.5
CAMPAIGN = "spring-sale"
DUPLICATES, BAD_ROWS, SINGLES = 50, 5, (1, 3, 2)  # single sends: recipients each


async def run_demo(messages: int = 5000) -> None:
    log_path = REPO / ".run" / "demo.log"
    log_path.parent.mkdir(exist_ok=True)
    os.environ.update(AWS_CREDENTIALS)  # the demo's own process talks to a local endpoint
    with log_path.open("wb") as log_file, RedisServer() as redis, Fauxqs() as sqs_server:
        logs.configure("info", log_file)
        print(f"local stack: redis {redis.url}, SQS (fauxqs) {sqs_server.endpoint_url}")
        async with sqs_client(sqs_server.endpoint_url) as sqs:
            pair = await create_queue_pair(
                sqs, f"demo-{uuid.uuid4().hex[:8]}", max_receive_count=20
            )
            settings = _settings(pair, sqs_server.endpoint_url, redis.url)
            async with serving(settings) as front:
                print(f"intake API: {front.url} (docs: {front.url}/docs)")
                total = await _through_the_api(front, log_path.parent, messages)
                stats = Stats()
                async with open_worker(settings, stats=stats) as worker:
                    elapsed = await _watch(worker, total, settings)
                await _summary(stats, worker, total, elapsed, sqs, pair, log_path)
                counts = (await front.batch(CAMPAIGN))["counts"]
                print(f"  GET /v1/batches/{CAMPAIGN}: {counts}")


async def _through_the_api(front: FrontDoor, folder: Path, rows: int) -> int:
    """Upload the campaign and the single sends; returns how many messages were queued."""
    csv_path = folder / "demo-campaign.csv"
    write_campaign(csv_path, rows, DUPLICATES, BAD_ROWS)
    started = time.monotonic()
    upload = await front.upload_campaign(csv_path, CAMPAIGN)
    print(
        f"POST /v1/campaigns ({rows + DUPLICATES + BAD_ROWS:,} rows): {upload['accepted']:,} "
        f"queued, {upload['skipped_duplicates']} duplicates skipped, "
        f"{len(upload['rejected_rows'])} bad rows, in {time.monotonic() - started:.1f} s"
    )
    singles = [await front.send(n, "receipts") for n in SINGLES]
    print(f"POST /v1/emails x {len(singles)}: {sum(map(len, singles))} messages queued")
    return int(upload["accepted"]) + sum(map(len, singles))


def _settings(pair: QueuePair, endpoint: str, redis_url: str) -> Settings:
    return parse(
        {
            "queue": {
                "url": pair.url,
                "endpoint_url": endpoint,
                "wait_time_seconds": 1,
                "dead_letter_url": pair.dlq_url,
            },
            "redis": {"url": redis_url, "key_prefix": "demo:"},
            "dispatch": {"max_in_flight": 32, "pollers": 2, "drain_seconds": 10},
            "routing": {"strategy": "round_robin"},
            "providers": [
                {
                    "name": name,
                    "type": "simulated",
                    "latency_ms": latency,
                    "error_rate": 0.002,
                    "seed": seed,
                }
                for seed, (name, latency) in enumerate(PROVIDERS)
            ],
        }
    )


async def _watch(worker: Worker, total: int, settings: Settings) -> float:
    """Run the worker under `dispatcher top`'s view; take a provider down halfway; stop when
    done."""
    redis = Redis.from_url(settings.redis.url)
    health = RedisHealth(redis, settings.redis.key_prefix, settings.providers, settings.routing)
    probes = MetricsSettings("127.0.0.1", free_port())
    task = asyncio.create_task(worker.run())
    started, notes = time.monotonic(), dict[str, str]()
    try:
        async with (
            serving_probes(probes, worker, worker_registry(worker)) as url,
            aiohttp.ClientSession() as http,
        ):
            source = TopSource(health, settings, url)
            with Live(console=Console(), auto_refresh=False) as live:
                while worker.stats.settled < total and not task.done():
                    if worker.stats.settled >= total // 2 and TAKEN_DOWN not in notes:
                        _simulated(worker, TAKEN_DOWN).set_fault(down=True)
                        notes[TAKEN_DOWN] = f"DOWN since {worker.stats.settled:,} (503s)"
                    sample = await source.sample(http)
                    sample.notes = notes
                    frame = Group(_progress(worker, total, started), render(sample))
                    live.update(frame, refresh=True)
                    await asyncio.sleep(FRAME_SECONDS)
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
        await task
        await redis.aclose()
    return elapsed


def _progress(worker: Worker, total: int, started: float) -> Text:
    done, elapsed = min(worker.stats.settled, total), time.monotonic() - started
    return Text(
        f"{done:,}/{total:,} settled ({100 * done / max(1, total):.0f}%) in {elapsed:.1f} s"
    )


def _simulated(worker: Worker, name: str) -> Simulated:
    provider = next(p for p in worker.router.providers if p.name == name)
    if not isinstance(provider, Simulated):
        raise TypeError(f"{name} is not a simulated provider")
    return provider


async def _summary(
    stats: Stats,
    worker: Worker,
    total: int,
    elapsed: float,
    sqs: Any,
    pair: QueuePair,
    log_path: Path,
) -> None:
    sent_ids: dict[str, int] = {}
    for provider in worker.router.providers:
        if isinstance(provider, Simulated):
            for message_id, times in provider.sent_ids.items():
                sent_ids[message_id] = sent_ids.get(message_id, 0) + times
    twice = sum(1 for times in sent_ids.values() if times > 1)
    missing = total - len(sent_ids)
    left = await queue_depth(sqs, pair.url)
    dead = await queue_depth(sqs, pair.dlq_url)
    print()
    print(f"summary: {stats.sent:,} sent in {elapsed:.1f} s ({stats.sent / elapsed:,.0f} msg/s)")
    for name, counts in sorted(stats.providers.items()):
        print(
            f"  {name:<14} sent {counts.sent:>6,}   errors {counts.error_count:>5,} "
            f"{dict(counts.errors)}   mean latency {counts.mean_latency_ms:6.1f} ms"
        )
    print(
        f"  retried {stats.retried:,}, dead-lettered {stats.dead_lettered:,}, "
        f"queue left {left}, DLQ {dead}"
    )
    verdict = "OK" if not twice and not missing and left == 0 else "FAILED"
    print(
        f"  exactly once: {verdict} ({len(sent_ids):,} distinct ids sent, {twice} twice, "
        f"{missing} missing)"
    )
    print(f"  logs: {log_path}")
    if verdict != "OK":
        raise SystemExit(1)

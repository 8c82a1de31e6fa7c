"""A ledger that lost its data is noticed once, loudly: the epoch key (`dispatcher.ledger_epoch`)
on a real Redis, flushed under the module and restarted without persistence under a worker."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from dispatcher import keys
from dispatcher.config import MetricsSettings
from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, RedisServer, free_port, queue_depth
from dispatcher.ledger_epoch import LedgerEpoch
from dispatcher.ops.metrics import worker_registry
from dispatcher.ops.probes import serving_probes
from dispatcher.scripts import RedisClient
from tests.support.configs import sendgrid
from tests.support.harness import enqueue, eventually, records, running, settings
from tests.support.metrics import scrape, value
from tests.support.redis_targets import RedisTarget

LOST = "ledger_lost_data"


def lost_lines(logs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == LOST]


@pytest.mark.redis_targets("single", "cluster")
async def test_a_flushed_ledger_is_reported_once_then_the_new_epoch_is_kept(
    redis: RedisClient, redis_target: RedisTarget
) -> None:
    first, later = LedgerEpoch(redis, "t:"), LedgerEpoch(redis, "t:")
    await first.start()
    await later.start()
    assert first.token is not None
    assert later.token == first.token  # the first worker set it; a later one reads it
    with capture_logs() as logs:
        assert not await first.check()  # unchanged: nothing to report
        redis_target.flush()  # FLUSHALL on every primary
        assert await first.check()
        assert not await first.check()  # the new epoch was adopted: reported once
        assert await later.check()  # each worker notices the loss once
        assert not await later.check()
    assert first.losses == 1
    assert later.losses == 1
    stored = await redis.get(keys.ledger_epoch("t:"))
    assert isinstance(stored, bytes)
    assert first.token == later.token == stored.decode()
    lines = lost_lines(logs)
    assert len(lines) == 2
    assert all(line["log_level"] == "error" for line in lines)
    # the first to look finds it gone and sets a new one; the other finds that one
    assert [line["found"] for line in lines] == ["missing", "changed"]


async def test_a_changed_epoch_is_a_loss_and_redis_away_is_skipped() -> None:
    with RedisServer() as server:
        client = Redis.from_url(server.url)
        try:
            epoch = LedgerEpoch(client, "t:")
            await epoch.start()
            await client.set(keys.ledger_epoch("t:"), "another")  # e.g. a failover's old copy
            assert await epoch.check()
            assert epoch.token == "another"
            server.stop()
            with capture_logs() as logs:
                assert not await epoch.check()  # an outage is not a loss: skipped
            assert [e["event"] for e in logs] == ["ledger_epoch_unchecked"]
            assert epoch.losses == 1
        finally:
            await client.aclose()


async def test_a_worker_notices_a_redis_restart_without_persistence_once_and_keeps_sending(
    sqs: Any, queues: QueuePair, sqs_endpoint: str
) -> None:
    before, after = [email_doc(i) for i in range(5)], [email_doc(i) for i in range(5, 10)]
    with RedisServer() as server, capture_logs() as logs:
        async with FakeSendGrid() as sg, aiohttp.ClientSession() as http:
            config = settings(
                queues.url, sqs_endpoint, server.url, [sendgrid(sg)], visibility_timeout=10
            )  # a heartbeat every 3.3 s
            config = dataclasses.replace(config, metrics=MetricsSettings("127.0.0.1", free_port()))
            async with running(config) as worker:
                registry = worker_registry(worker)
                async with serving_probes(config.metrics, worker, registry) as url:
                    assert url is not None
                    assert worker.epoch is not None
                    epoch = worker.epoch
                    await enqueue(sqs, queues.url, before)
                    await eventually(lambda: len(sg.receipts) == 5, 60, "5 sent")
                    await eventually(lambda: epoch.checks >= 1, 30, "a first epoch check")
                    assert lost_lines(logs) == []
                    await asyncio.to_thread(server.restart)  # no persistence: the data is gone
                    await enqueue(sqs, queues.url, after)
                    await eventually(lambda: len(sg.receipts) == 10, 60, "10 sent")
                    await eventually(lambda: epoch.losses == 1, 30, "the loss noticed")
                    noticed = epoch.checks
                    await eventually(lambda: epoch.checks >= noticed + 2, 30, "two more beats")
                    lost = value(await scrape(http, url), "dispatcher_ledger_data_lost_total")
        client = Redis.from_url(server.url)
        try:
            assert await records(client, [d["id"] for d in after]) == {"SENT": 5}
        finally:
            await client.aclose()
    assert len(lost_lines(logs)) == 1
    assert lost == 1
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == [f"msg-{i:05d}" for i in range(10)]
    assert await queue_depth(sqs, queues.url) == 0

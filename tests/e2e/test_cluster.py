"""The same scripts on a real three-primary Redis Cluster (`redis-cli --cluster create` over the
Debian redis-server): the ledger, provider health and shared rate limits, the intake records,
and a worker end to end with `[redis] cluster = true`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis import RedisCluster as SyncRedisCluster
from redis.asyncio import RedisCluster

from dispatcher import keys
from dispatcher.app import open_redis
from dispatcher.config import RedisSettings
from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, queue_depth
from dispatcher.dev.stack import RedisCluster as ClusterServers
from dispatcher.health.base import Observation
from dispatcher.health.redis import RedisHealth
from dispatcher.ledger import ClaimRequest, ClaimVerdict, Ledger, RecordStatus, Settlement
from providers.base import Status
from tests.support.clock import Clock
from tests.support.configs import sendgrid
from tests.support.harness import enqueue, eventually, running, settings, statuses
from tests.support.health import PROVIDERS, ROUTING


@pytest.fixture
def cluster_servers(redis_cluster_servers: ClusterServers) -> ClusterServers:
    return redis_cluster_servers  # the session's cluster (tests/conftest.py)


@pytest.fixture
async def cluster(cluster_servers: ClusterServers) -> AsyncIterator[RedisCluster]:
    with SyncRedisCluster.from_url(cluster_servers.url) as sync:
        sync.flushall(target_nodes=SyncRedisCluster.PRIMARIES)
    client = open_redis(RedisSettings(url=cluster_servers.url, cluster=True))
    assert isinstance(client, RedisCluster)
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_ledger_claims_settles_and_extends_across_every_primary(
    cluster: RedisCluster,
) -> None:
    book = Ledger(cluster, "t:", 3600)
    await book.load_scripts()
    ids = [f"m-{i}" for i in range(60)]  # their shards fall on all three primaries
    claims = await book.claim([ClaimRequest(i, f"o-{i}") for i in ids], 30)
    assert {c.verdict for c in claims} == {ClaimVerdict.CLAIMED}
    assert all(await book.extend([(i, f"o-{i}") for i in ids], 30))
    sent = [Settlement(i, f"o-{i}", RecordStatus.SENT, "sendgrid") for i in ids]
    assert {s.verdict.value for s in await book.settle(sent)} == {"OK"}
    again = await book.claim([ClaimRequest(i, "late") for i in ids], 30)
    assert {c.verdict for c in again} == {ClaimVerdict.SENT}
    assert statuses([await book.get(i) for i in ids]) == {"SENT": 60}
    nodes = [cluster.get_node_from_key(keys.message("t:", i)) for i in ids]
    assert len({node.name for node in nodes if node is not None}) == 3


async def test_scripts_reload_on_every_primary_after_a_flush(cluster: RedisCluster) -> None:
    book = Ledger(cluster, "t:", 3600)
    await book.load_scripts()
    await cluster.script_flush()  # SCRIPT FLUSH goes to every primary
    claims = await book.claim([ClaimRequest(f"n-{i}", "o") for i in range(30)], 30)
    assert {c.verdict for c in claims} == {ClaimVerdict.CLAIMED}


async def test_health_and_rate_limits_run_on_the_cluster(cluster: RedisCluster) -> None:
    clock = Clock()
    store = RedisHealth(cluster, "t:", PROVIDERS, ROUTING, clock, ahead_seconds=1.0)
    await store.load_scripts()
    await store.record(
        [Observation("a", Status.SENT, 0.05) for _ in range(5)]
        + [Observation("a", Status.DOWN, 0.05) for _ in range(2)]
    )
    report = await store.snapshot()
    assert (report["a"].calls, report["a"].successes, report["a"].failures) == (7, 5, 2)
    first = (await store.take({"b": 30}))["b"]
    assert first.granted > 0
    assert (await store.take({"b": 1}))["b"].granted == 0  # booked up to the horizon


async def test_a_worker_on_the_cluster_sends_each_message_once(
    sqs: Any,
    queues: QueuePair,
    cluster: RedisCluster,
    cluster_servers: ClusterServers,
    sqs_endpoint: str,
) -> None:
    count = 200
    ids = [f"msg-{i:05d}" for i in range(count)]
    await enqueue(sqs, queues.url, [email_doc(i) for i in range(count)])
    async with FakeSendGrid() as sg:
        config = settings(
            queues.url,
            sqs_endpoint,
            cluster_servers.url,
            [sendgrid(sg, rate_limit=400)],
            strategy="adaptive",
            cluster=True,
        )
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent == count, 60, "200 sent")

            async def empty() -> bool:
                return await queue_depth(sqs, queues.url) == 0

            await eventually(empty, 30, "queue empty")
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == ids
    book = Ledger(cluster, "t:", 3600)
    assert statuses([await book.get(i) for i in ids]) == {"SENT": count}

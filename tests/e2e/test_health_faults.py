"""Redis answers, but with an error: READONLY (a master turned replica after a failover),
NOREPLICAS (min-replicas-to-write not met), OOM (maxmemory reached with noeviction).

PING still answers in every one of these states. Routing health falls back to per-process
state as it does when Redis is unreachable, the ledger gate stays closed until Redis takes
writes again, and a worker (moto SQS, the fake SendGrid) rides it out and sends everything
once Redis is writable.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, RedisServer, queue_depth
from dispatcher.health.base import Observation
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.health.resilient import ResilientHealth
from dispatcher.ledger import Ledger
from dispatcher.ledger_gate import LedgerGate
from dispatcher.router import Router
from providers.base import Status
from providers.simulated import Simulated, SimulatedOptions
from strategies import build_strategy
from strategies.base import Circuit
from tests.support.clock import Clock
from tests.support.configs import sendgrid
from tests.support.harness import enqueue, eventually, records, running, settings
from tests.support.health import PROVIDERS, ROUTING


@pytest.fixture
def faulty_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own, so that a fault never outlives the test."""
    with RedisServer() as server:
        yield server


@pytest.fixture
async def faulty(faulty_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(faulty_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def fault(client: Redis, name: str, *, on: bool = True) -> None:
    """Cause the fault `name` (`on`), or end it."""
    if name == "readonly":  # a replica of a master that is gone
        await (client.replicaof("127.0.0.1", 1) if on else client.replicaof("NO", "ONE"))
    elif name == "noreplicas":
        await client.config_set("min-replicas-to-write", 1 if on else 0)
    else:
        assert name == "oom"
        await client.config_set("maxmemory-policy", "noeviction")
        await client.config_set("maxmemory", 1 if on else 0)


@pytest.mark.parametrize("name", ["readonly", "noreplicas"])
async def test_an_error_reply_falls_back_to_local_health_instead_of_raising(
    faulty: Redis, name: str
) -> None:
    clock, ticks = Clock(), [0.0]
    shared = RedisHealth(faulty, "t:", PROVIDERS, ROUTING, clock)
    store = ResilientHealth(shared, MemoryHealth(PROVIDERS, ROUTING, clock), 5.0, lambda: ticks[0])
    router = Router(
        build_strategy("priority"),
        [Simulated(p.name, p.timeout_seconds, SimulatedOptions()) for p in PROVIDERS],
        PROVIDERS,
        store,
        random.Random(1),
        monotonic=lambda: ticks[0],
    )
    await shared.load_scripts()
    await fault(faulty, name)
    assert await faulty.ping()
    snapshot = await router.refresh(force=True)  # raised ResponseError before
    circuits = [v.circuit for v in snapshot.providers]
    assert (store.degraded, circuits) == (True, [Circuit.CLOSED, Circuit.CLOSED])
    routes = await router.plan(2)  # routing goes on from per-process health
    assert [r.order[0].name for r in routes] == ["a", "a"]
    await store.record([Observation("a", Status.DOWN, 0.01)] * 3)  # counted locally
    assert (await router.refresh(force=True)).providers[0].circuit is Circuit.OPEN
    await fault(faulty, name, on=False)
    ticks[0] += 6  # past the next probe of Redis
    snapshot = await router.refresh(force=True)
    # Shared again, where it never tripped.
    assert (store.degraded, snapshot.providers[0].circuit) == (False, Circuit.CLOSED)


@pytest.mark.parametrize("name", ["readonly", "oom"])
async def test_the_ledger_gate_stays_closed_while_writes_fail_though_ping_answers(
    faulty: Redis, name: str
) -> None:
    stopping = asyncio.Event()
    gate = LedgerGate(Ledger(faulty, "t:", 3600), stopping, random.Random(3))
    await fault(faulty, name)
    await faulty.config_resetstat()
    try:
        gate.close()
        # Over 2 s the probe tries again and again (after 0.125-0.25 s, then 0.25-0.5 s, ...).
        await asyncio.sleep(2.0)
        assert await faulty.ping()
        assert not gate.is_open
        stats = (await faulty.info("commandstats"))["cmdstat_set"]
        assert stats["rejected_calls"] + stats["failed_calls"] >= 2
        await fault(faulty, name, on=False)
        await eventually(lambda: gate.is_open, 30, "the gate reopened")
    finally:
        stopping.set()  # a probe still waiting lets the gate open and ends
        await eventually(lambda: gate.is_open, 10, "the probe ended")


async def test_a_worker_rides_out_a_redis_that_refuses_writes(
    sqs: Any, queues: QueuePair, faulty: Redis, faulty_server: RedisServer, sqs_endpoint: str
) -> None:
    ids = [f"msg-{i:05d}" for i in range(10)]
    await fault(faulty, "readonly")  # from the start: the first health snapshot fails
    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, faulty_server.url, [sendgrid(sg)])
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(len(ids))])
        async with running(config) as worker:
            store = worker.router.health
            assert isinstance(store, ResilientHealth)
            await eventually(lambda: store.degraded, 30, "health degraded")
            await eventually(lambda: not worker.ledger_gate.is_open, 30, "ledger gate closed")
            await asyncio.sleep(1.0)  # the worker keeps running meanwhile, and waits
            assert (worker.stats.sent, sg.receipts) == (0, [])
            assert not worker.ledger_gate.is_open
            await fault(faulty, "readonly", on=False)
            await eventually(lambda: worker.stats.settled == len(ids), 60, "all sent")

            async def empty() -> bool:
                return await queue_depth(sqs, queues.url) == 0

            await eventually(empty, 30, "queue empty")
            await eventually(lambda: not store.degraded, 30, "health shared again")
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == ids
    assert await records(faulty, ids) == {"SENT": len(ids)}

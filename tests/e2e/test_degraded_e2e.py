"""Redis goes away mid-run and comes back: the worker waits, records, and reconnects.

`tests.support.tcp_proxy.TcpProxy` sits between the worker and a real redis-server. The ledger
lives in Redis too, so while it is cut no message may be claimed (they wait on the queue), sends
already under way are recorded once it returns, and routing health falls back to per-process state
(`ResilientHealth` -> `MemoryHealth`), saying so once, not per message, and reconnects.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from structlog.testing import capture_logs

from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, RedisServer, queue_depth
from dispatcher.health.base import (
    Booking,
    HealthStore,
    Observation,
    Permit,
    ProbeGrant,
    ProviderHealth,
    RateGrant,
)
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.health.resilient import ResilientHealth
from providers.base import Status
from tests.support.configs import sendgrid
from tests.support.harness import drain_queue, enqueue, eventually, records, running, settings
from tests.support.health import PROVIDERS, ROUTING
from tests.support.tcp_proxy import TcpProxy

CUT_SECONDS = 4.0


def fail_fast(port: int) -> Redis:
    """A client that tries once: every call through a cut fails at once."""
    return Redis(host="127.0.0.1", port=port, socket_timeout=1, retry=Retry(NoBackoff(), 0))


async def test_the_proxy_cuts_and_restores_redis(redis_server: RedisServer) -> None:
    async with TcpProxy("127.0.0.1", redis_server.port) as proxy:
        client = fail_fast(proxy.port)
        try:
            assert await client.ping()
            for mode in ("refuse", "reset", "blackhole"):
                await proxy.cut(mode)
                fresh = fail_fast(proxy.port)
                for c in (client, fresh):  # an open connection, and a new one
                    with pytest.raises(RedisError):
                        await c.ping()
                await fresh.aclose()
                await proxy.restore()
                assert await client.ping(), mode
        finally:
            await client.aclose()
    assert proxy.refused_or_reset >= 2  # reset and blackhole each took and dropped some


class Counting:
    """A `HealthStore` that counts the calls that reach it."""

    def __init__(self, inner: HealthStore) -> None:
        self.inner, self.calls = inner, 0

    async def record(self, observations: Sequence[Observation]) -> None:
        self.calls += 1
        await self.inner.record(observations)

    async def snapshot(self) -> dict[str, ProviderHealth]:
        self.calls += 1
        return await self.inner.snapshot()

    async def acquire_permits(self, wants: Mapping[str, int]) -> dict[str, ProbeGrant]:
        self.calls += 1
        return await self.inner.acquire_permits(wants)

    async def release(self, permits: Sequence[Permit]) -> None:
        self.calls += 1
        await self.inner.release(permits)

    async def take(self, wants: Mapping[str, int]) -> dict[str, RateGrant]:
        self.calls += 1
        return await self.inner.take(wants)

    async def reserve(
        self, firsts: Mapping[str, int], probes: Collection[str]
    ) -> dict[str, Booking]:
        self.calls += 1
        return await self.inner.reserve(firsts, probes)


async def test_degraded_health_probes_one_call_at_a_time_backs_off_and_warns_once_a_period(
    redis_server: RedisServer, redis_url: str
) -> None:
    ticks = [0.0]
    async with TcpProxy("127.0.0.1", redis_server.port) as proxy:
        client = fail_fast(proxy.port)
        shared = Counting(RedisHealth(client, "t:", PROVIDERS, ROUTING))
        store = ResilientHealth(
            shared,
            MemoryHealth(PROVIDERS, ROUTING),
            4.0,
            lambda: ticks[0],
            warn_seconds=30.0,
            rng=random.Random(7),
        )
        try:
            with capture_logs() as logs:
                await store.snapshot()
                await proxy.cut("refuse")
                await store.record([Observation("a", Status.SENT, 0.01)])
                assert store.degraded
                assert shared.calls == 2
                for _ in range(20):  # answered locally at once, Redis not asked again yet
                    await store.snapshot()
                assert shared.calls == 2

                # 40 s of outage in 0.1 s steps, three callers at a time: at most one probe
                # per step, spaced by a delay doubling from 0.5 s up to 4 s (jittered 50-100 %).
                probes = []
                for _ in range(400):
                    ticks[0] += 0.1
                    before = shared.calls
                    await asyncio.gather(store.snapshot(), store.snapshot(), store.take({"b": 1}))
                    assert shared.calls - before <= 1
                    if shared.calls > before:
                        probes.append(ticks[0])
                gaps = [b - a for a, b in itertools.pairwise(probes)]
                assert max(gaps) <= 4.0 + 0.11
                assert min(gaps) >= 0.5 * 0.5 * 2 - 0.01  # the first gap follows a 1 s delay
                assert 10 <= len(probes) <= 25, probes

                await proxy.restore()
                await eventually(lambda: _restored(store, ticks), 10, "reconnected")
                # A blip within the warning period is counted, not logged.
                await proxy.cut("reset")
                await store.snapshot()
                assert store.degraded
                await proxy.restore()
                await eventually(lambda: _restored(store, ticks), 10, "reconnected again")
        finally:
            await client.aclose()
    degraded = [e for e in logs if e["event"] == "health.degraded"]
    restored = [e for e in logs if e["event"] == "health.restored"]
    # Once when Redis went, once more 30 s later (the outage went on), not per failed call.
    assert [e["log_level"] for e in degraded] == ["warning", "warning"]
    assert degraded[1]["degraded_for_s"] >= 30
    assert degraded[1]["failed_calls"] >= 5  # the probes since the first warning
    assert len(restored) == 1  # the silent blip is not announced either
    assert restored[0]["degraded_for_s"] >= 40


async def _restored(store: ResilientHealth, ticks: list[float]) -> bool:
    ticks[0] += 0.5
    await store.snapshot()
    return not store.degraded


async def release_and_watch(sg: FakeSendGrid, store: ResilientHealth) -> bool:
    """For CUT_SECONDS: let the held sends through after one, and watch for degraded health."""
    cut_at, seen = time.monotonic(), False
    while time.monotonic() - cut_at < CUT_SECONDS:
        if time.monotonic() - cut_at > 1 and sg.faults.injected["hang"]:
            sg.faults.clear()  # the held sends are accepted while Redis is away
        seen = seen or store.degraded
        await asyncio.sleep(0.05)
    return seen


async def test_a_redis_outage_holds_messages_records_late_sends_and_reconnects(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_server: RedisServer,
    sqs_endpoint: str,
) -> None:
    before, hung, during = range(20), range(20, 28), range(28, 68)
    ids = [f"msg-{i:05d}" for i in range(68)]
    await enqueue(sqs, queues.url, [email_doc(i) for i in before])
    async with TcpProxy("127.0.0.1", redis_server.port) as proxy, FakeSendGrid() as sg:
        config = settings(
            queues.url,
            sqs_endpoint,
            f"redis://127.0.0.1:{proxy.port}/0",
            [sendgrid(sg, timeout_seconds=30)],
            strategy="adaptive",
            max_in_flight=32,
        )
        with capture_logs() as logs:
            async with running(config) as worker:
                store = worker.router.health
                assert isinstance(store, ResilientHealth)
                await eventually(lambda: worker.stats.sent == len(before), 60, "first sends")
                assert not store.degraded

                # Eight sends under way (the provider holds them), then Redis goes away.
                sg.faults.hang()
                await enqueue(sqs, queues.url, [email_doc(i) for i in hung])
                await eventually(lambda: sg.faults.injected["hang"] == len(hung), 30, "held")
                await proxy.cut("refuse")
                received_at_cut = worker.stats.received
                await enqueue(sqs, queues.url, [email_doc(i) for i in during])
                degraded_seen = await release_and_watch(sg, store)
                sent_during_cut = [r.dispatcher_id or "" for r in sg.receipts[len(before) :]]
                received_during_cut = worker.stats.received - received_at_cut
                recorded_during_cut = worker.stats.sent - len(before)
                local = (await store.snapshot())["sendgrid"]  # degraded: this process's own
                await proxy.restore()
                restored_at = time.monotonic()
                await eventually(lambda: not store.degraded, 30, "health back on Redis")
                reconnected_after = time.monotonic() - restored_at
                await eventually(lambda: worker.stats.sent == len(ids), 60, "all recorded")
                recorded_after = time.monotonic() - restored_at

                async def empty() -> bool:
                    return await queue_depth(sqs, queues.url) == 0

                await eventually(empty, 30, "queue empty")
    events = Counter((e["event"], e["log_level"]) for e in logs)
    warnings = {name: n for (name, level), n in events.items() if level == "warning"}
    print(
        f"cut {CUT_SECONDS}s: {len(sent_during_cut)} sent and {received_during_cut} received "
        f"during it; health reconnected {reconnected_after:.2f}s and everything was recorded "
        f"{recorded_after:.2f}s after the restore; warnings {warnings}"
    )

    # Nothing lost, nothing twice, everything recorded SENT and deleted, nothing dead-lettered.
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == ids
    assert await records(redis, ids) == {"SENT": len(ids)}
    assert await drain_queue(sqs, queues.dlq_url) == []

    # While Redis was away only the sends already under way went out, and they were recorded
    # once it came back; the messages that arrived meanwhile were received, not claimed, and
    # waited on the queue.
    assert sorted(sent_during_cut) == [f"msg-{i:05d}" for i in hung]
    assert recorded_during_cut == 0
    assert received_during_cut >= 1
    assert events["claim_failed", "warning"] >= 1

    # Health fell back to per-process state, which counted each held send once although the
    # ledger write was retried; it said so once (not per message or per call), and came back.
    assert degraded_seen
    assert (local.calls, local.successes) == (len(hung), len(hung))
    assert events["health.degraded", "warning"] == 1
    assert events["health.restored", "info"] == 1
    # The ledger said so once too; a pooled connection left over from before the cut can fail
    # once more right after it (Redis.from_url builds connections without retries).
    assert 1 <= events["ledger_unavailable", "warning"] <= 2
    assert events["ledger_restored", "info"] == events["ledger_unavailable", "warning"]
    assert not store.degraded


@pytest.mark.parametrize("queues", [{"max_receive_count": 2}], indirect=True)
async def test_a_long_redis_outage_does_not_wear_out_the_messages_receive_count(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    redis_server: RedisServer,
    sqs_endpoint: str,
) -> None:
    # Each receive of a message counts towards the queue's maxReceiveCount (2 here): a worker
    # that cannot claim must stop receiving, or an outage of a few visibility periods sends
    # every waiting message to the dead-letter queue unsent.
    ids = [f"msg-{i:05d}" for i in range(21)]
    async with TcpProxy("127.0.0.1", redis_server.port) as proxy, FakeSendGrid() as sg:
        config = settings(
            queues.url,
            sqs_endpoint,
            f"redis://127.0.0.1:{proxy.port}/0",
            [sendgrid(sg)],
            strategy="adaptive",
        )
        await enqueue(sqs, queues.url, [email_doc(0)])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent == 1, 30, "running")
            await proxy.cut("refuse")
            await enqueue(sqs, queues.url, [email_doc(i) for i in range(1, len(ids))])
            await asyncio.sleep(12)  # claim failures send a message back for 5 s each time
            received_during_cut = worker.stats.received - 1
            await proxy.restore()

            async def settled() -> bool:
                return await queue_depth(sqs, queues.url) == 0

            await eventually(settled, 30, "queue empty")
    print(f"received {received_during_cut} times during a 12 s outage")
    assert await drain_queue(sqs, queues.dlq_url) == []
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == ids
    assert received_during_cut <= len(ids) - 1

"""Half-open probes as the router plans them, on a real Redis (the Lua breaker) under virtual
time: each answer is fenced by the generation it was routed under, and a stall on a half-open
breaker backs off. End to end (moto SQS, real Redis, the fake providers): short polls on an
empty queue back off too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.config import BreakerSettings, DispatchSettings, ProviderSettings
from dispatcher.delivery import attempt
from dispatcher.health import Health
from dispatcher.health_model import Observation
from dispatcher.message import Address, Email
from dispatcher.router import Router
from providers.base import Provider, Status
from strategies import build_strategy
from strategies.base import Circuit
from tests.conftest import QueuePair
from tests.fakes import FakeSendGrid, MotoServer
from tests.harness import running, settings
from tests.scripted import ScriptedProvider
from tests.test_health_lua import ROUTING, Clock
from tests.test_worker import sendgrid

BREAKER = BreakerSettings(
    consecutive_failures=3,
    open_seconds=2.0,
    half_open_permits=2,
    half_open_successes=1,
    permit_lease_seconds=120.0,
)
EMAIL = Email(
    id="p-1",
    sender=Address("s@example.com"),
    to=(Address("r@example.org"),),
    subject="s",
    text="t",
    size=1000,
)
POLICY = DispatchSettings(max_attempts=3)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def provider(name: str, **changes: Any) -> ProviderSettings:
    return ProviderSettings(name, "simulated", breaker=replace(BREAKER, **changes))


def router_of(
    redis: Redis, clock: Clock, providers: Sequence[Provider], settings: Sequence[ProviderSettings]
) -> Router:
    """`priority` over `providers` (first is preferred), health in Redis, all on `clock`."""
    store = Health(redis, "t:", settings, ROUTING, clock, random.Random(5))
    strategy = build_strategy("priority")
    return Router(strategy, providers, settings, store, random.Random(1), monotonic=clock)


async def half_open(router: Router, clock: Clock, name: str = "a") -> int:
    """Trip `name` with failures in a row, let its open period pass; its new generation."""
    await router.store.record([Observation(name, Status.DOWN, 0.01)] * 3)
    clock.now += BREAKER.open_seconds * 1.3  # past the jittered open period
    health = (await router.store.snapshot())[name]
    assert health.circuit is Circuit.HALF_OPEN
    return health.generation


async def test_a_late_failure_routed_while_closed_leaves_a_half_open_breaker_alone(
    redis: Redis, clock: Clock
) -> None:
    slow = ScriptedProvider("a", [Status.AMBIGUOUS])  # the 15 s timeout of a send under way
    router = router_of(redis, clock, [slow, ScriptedProvider("b")], [provider("a"), provider("b")])
    await router.refresh(force=True)
    [route] = await router.plan(1)  # while "a" is closed, generation 0
    assert [p.name for p in route.order] == ["a", "b"]
    generation = await half_open(router, clock)  # meanwhile it trips and goes half-open
    await router.refresh(force=True)
    decision = await attempt(EMAIL, route, router, 0, POLICY, random.Random(1))
    await router.store.record(decision.observations)
    health = (await router.store.snapshot())["a"]
    assert (health.circuit, health.generation) == (Circuit.HALF_OPEN, generation)


async def test_a_stale_success_does_not_close_a_half_open_breaker_a_probe_does(
    redis: Redis, clock: Clock
) -> None:
    a = ScriptedProvider("a")
    router = router_of(redis, clock, [a, ScriptedProvider("b")], [provider("a"), provider("b")])
    await router.refresh(force=True)
    [stale] = await router.plan(1)
    generation = await half_open(router, clock)
    await router.refresh(force=True)
    decision = await attempt(EMAIL, stale, router, 0, POLICY, random.Random(1))
    await router.store.record(decision.observations)
    health = (await router.store.snapshot())["a"]
    assert (health.circuit, health.generation) == (Circuit.HALF_OPEN, generation)
    # A probe sent under a permit of this generation closes it (half_open_successes = 1).
    await router.refresh(force=True)
    [probe] = await router.plan(1)
    assert probe.permit is not None
    assert probe.permit.generation == generation
    decision = await attempt(EMAIL, probe, router, 0, POLICY, random.Random(1))
    await router.store.record(decision.observations)
    assert (await router.store.snapshot())["a"].circuit is Circuit.CLOSED
    assert a.received == ["p-1", "p-1"]


async def test_a_stalled_half_open_breaker_is_looked_at_less_and_less_often(
    redis: Redis, clock: Clock
) -> None:
    # "a" is half-open and another replica holds its only permit: nothing is eligible. A poller
    # sleeps `wait_hint()` and looks again; over a minute it reads the health about once a
    # second (not ten times), and it sees the permit free within a second of its release.
    settings = [provider("a", half_open_permits=1)]
    router = router_of(redis, clock, [ScriptedProvider("a")], settings)
    other = Health(redis, "t:", settings, ROUTING, clock)
    await half_open(router, clock)
    held = (await other.acquire_permits({"a": 1}))["a"].permits
    assert len(held) == 1
    await redis.config_resetstat()
    stop = clock.now + 60
    while clock.now < stop:
        assert not (await router.refresh()).eligible()
        clock.now += router.wait_hint() + 0.001  # a sleep ends a little after it is due
    reads = (await redis.info("commandstats"))["cmdstat_evalsha"]["calls"]
    assert 50 <= reads <= 90  # it was about 600
    await other.release(held)  # the other replica's probe is over
    freed_at = clock.now
    while not (await router.refresh()).eligible():
        clock.now += router.wait_hint() + 0.001
    assert clock.now - freed_at <= 1.0 + 0.01  # dispatcher.wait_hint.MAX_PROBE_WAIT_SECONDS
    assert router.wait_hint() == pytest.approx(0.1)  # no stall now: back to refresh_seconds


@pytest.mark.parametrize("sqs_endpoint", ["moto"], indirect=True)
async def test_short_polls_on_an_empty_queue_back_off(
    sqs: Any,
    queues: QueuePair,
    redis_url: str,
    sqs_endpoint: str,
    moto_server: MotoServer,
) -> None:
    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], pollers=2)
        config = replace(config, queue=replace(config.queue, wait_time_seconds=0))
        async with running(config):
            await asyncio.sleep(2.0)  # the period over which receives are counted
    receives = [
        r
        for r in moto_server.requests("/")
        if r["headers"].get("X-Amz-Target") == "AmazonSQS.ReceiveMessage"
        and isinstance(r["body"], dict)
        and r["body"].get("QueueUrl") == queues.url
    ]
    assert 2 <= len(receives) < 40  # two pollers; spinning, they made hundreds

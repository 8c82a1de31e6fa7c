"""Half-open probes as the router plans them, on a real Redis (the Lua breaker) under virtual
time: each answer is fenced by the generation it was routed under, every probe permit not used
goes back at once, and a stall on a half-open breaker backs off. End to end (moto SQS, real
Redis, the fake providers): a permit is not leaked for a message too large for its provider,
and short polls on an empty queue back off too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from dispatcher import keys
from dispatcher.config import BreakerSettings, DispatchSettings, ProviderSettings
from dispatcher.delivery import attempt
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid, MotoServer
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair
from dispatcher.health.base import Observation
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.health.resilient import ResilientHealth
from dispatcher.message import Address, Email
from dispatcher.router import Router
from providers import open_providers
from providers.base import Outcome, Provider, Status
from providers.simulated import SimulatedOptions
from strategies import build_strategy
from strategies.base import Circuit
from tests.support.clock import Clock
from tests.support.configs import mailgun, sendgrid
from tests.support.harness import enqueue, eventually, records, running, settings
from tests.support.health import ROUTING
from tests.support.scripted import ScriptedProvider

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
    return ProviderSettings(
        name, "simulated", SimulatedOptions(), breaker=replace(BREAKER, **changes)
    )


def router_of(
    redis: Redis, clock: Clock, providers: Sequence[Provider], settings: Sequence[ProviderSettings]
) -> Router:
    """`priority` over `providers` (first is preferred), health in Redis, all on `clock`."""
    shared = RedisHealth(redis, "t:", settings, ROUTING, clock, random.Random(5))
    store = ResilientHealth(shared, MemoryHealth(settings, ROUTING, clock), monotonic=clock)
    strategy = build_strategy("priority")
    return Router(strategy, providers, settings, store, random.Random(1), monotonic=clock)


async def half_open(router: Router, clock: Clock, name: str = "a") -> int:
    """Trip `name` with failures in a row, let its open period pass; its new generation."""
    await router.health.record([Observation(name, Status.DOWN, 0.01)] * 3)
    clock.now += BREAKER.open_seconds * 1.3  # past the jittered open period
    health = (await router.health.snapshot())[name]
    assert health.circuit is Circuit.HALF_OPEN
    return health.generation


async def permits(redis: Redis, name: str = "a") -> int:
    return int(await redis.zcard(keys.health_permits("t:", name)))


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
    decision = await attempt(EMAIL, route, router.admission, 0, POLICY, random.Random(1))
    await router.health.record(decision.observations)
    health = (await router.health.snapshot())["a"]
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
    decision = await attempt(EMAIL, stale, router.admission, 0, POLICY, random.Random(1))
    await router.health.record(decision.observations)
    health = (await router.health.snapshot())["a"]
    assert (health.circuit, health.generation) == (Circuit.HALF_OPEN, generation)
    # A probe sent under a permit of this generation closes it (half_open_successes = 1).
    await router.refresh(force=True)
    [probe] = await router.plan(1)
    assert probe.permit is not None
    assert probe.permit.generation == generation
    decision = await attempt(EMAIL, probe, router.admission, 0, POLICY, random.Random(1))
    await router.health.record(decision.observations)
    assert (await router.health.snapshot())["a"].circuit is Circuit.CLOSED
    assert a.received == ["p-1", "p-1"]


async def test_a_permit_without_a_rate_token_is_released_in_the_same_plan(
    redis: Redis, clock: Clock
) -> None:
    # "a" is half-open with two permits free but one rate token: of three messages one probes
    # "a", the others go to "b", and the second permit is not kept.
    settings = [provider("a", half_open_successes=2), provider("b")]
    settings[0] = replace(settings[0], rate_limit=0.5, burst=1)
    router = router_of(redis, clock, [ScriptedProvider("a"), ScriptedProvider("b")], settings)
    await half_open(router, clock)
    await router.refresh(force=True)
    routes = await router.plan(3)
    assert [[p.name for p in r.order] for r in routes] == [["a", "b"], ["b"], ["b"]]
    assert [r.permit is not None for r in routes] == [True, False, False]
    assert await permits(redis) == 1  # the probe's own, nothing else
    for route in routes:
        decision = await attempt(EMAIL, route, router.admission, 0, POLICY, random.Random(1))
        await router.health.record(decision.observations)
    assert await permits(redis) == 0
    assert (await router.health.snapshot())["a"].circuit is Circuit.HALF_OPEN  # one probe of 2
    assert len((await router.health.acquire_permits({"a": 2}))["a"].permits) == 2


async def test_a_permit_for_a_provider_too_small_for_the_message_is_released(
    redis: Redis, clock: Clock
) -> None:
    small = ScriptedProvider("a", max_message_bytes=100)
    router = router_of(redis, clock, [small, ScriptedProvider("b")], [provider("a"), provider("b")])
    await half_open(router, clock)
    await router.refresh(force=True)
    [route] = await router.plan(1)  # planned without the message's size: "a" gets a permit
    assert route.permit is not None
    assert await permits(redis) == 1
    decision = await attempt(EMAIL, route, router.admission, 0, POLICY, random.Random(1))
    assert [o.provider for o in decision.tried] == ["b"]
    assert await permits(redis) == 0
    grant = (await router.health.acquire_permits({"a": 2}))["a"]
    assert len(grant.permits) == 2  # both free for the next probes
    await router.health.release(grant.permits)
    # Planned with the sizes, "a" is left out and no permit is taken at all.
    [route] = await router.plan(1, [EMAIL.size])
    assert ([p.name for p in route.order], route.permit) == (["b"], None)
    assert await permits(redis) == 0


async def test_a_stalled_half_open_breaker_is_looked_at_less_and_less_often(
    redis: Redis, clock: Clock
) -> None:
    # "a" is half-open and another replica holds its only permit: nothing is eligible. A poller
    # sleeps `wait_hint()` and looks again; over a minute it reads the health about once a
    # second (not ten times), and it sees the permit free within a second of its release.
    settings = [provider("a", half_open_permits=1)]
    router = router_of(redis, clock, [ScriptedProvider("a")], settings)
    other = RedisHealth(redis, "t:", settings, ROUTING, clock)
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


class Capped:
    """A real provider that takes messages up to `max_message_bytes` only."""

    def __init__(self, inner: Provider, max_message_bytes: int) -> None:
        self._inner, self._max = inner, max_message_bytes

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def max_message_bytes(self) -> int:
        return self._max

    async def send(self, email: Email) -> Outcome:
        return await self._inner.send(email)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_the_worker_keeps_no_permit_for_a_message_too_large_for_the_probe(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    state = keys.health_state("t:", "sendgrid")
    await redis.hset(state, mapping={"state": "half_open", "gen": 4})
    async with FakeSendGrid() as sg, FakeMailgun() as mg, aiohttp.ClientSession() as http:
        config = settings(
            queues.url, sqs_endpoint, redis_url, [sendgrid(sg), mailgun(mg)], pollers=1
        )
        real = await open_providers(config.providers, http)
        providers = [Capped(real[0], 1_000), real[1]]
        await enqueue(sqs, queues.url, [email_doc(0, text="x" * 2_000)])
        async with running(config, providers) as worker:
            await eventually(lambda: worker.stats.settled == 1, 30, "sent")
    assert (len(sg.receipts), len(mg.receipts)) == (0, 1)
    assert await records(redis, ["msg-00000"]) == {"SENT": 1}
    assert await permits(redis, "sendgrid") == 0
    assert await redis.hget(state, "state") == b"half_open"


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

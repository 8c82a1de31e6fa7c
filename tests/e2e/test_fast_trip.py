"""The router's local fast trip and its wait hint, on a real Redis health store."""

from __future__ import annotations

import random

from redis.asyncio import Redis

from dispatcher.config import Settings
from dispatcher.health.base import Observation
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.health.resilient import FastTrip, ResilientHealth
from dispatcher.router import Router
from providers.base import Outcome, Status
from providers.options import expect
from providers.simulated import Simulated, SimulatedOptions
from strategies import Tuning, build_strategy
from strategies.base import Circuit
from tests.support.harness import settings

BREAKER = {"consecutive_failures": 3, "open_seconds": 2, "half_open_permits": 1}


def config(redis_url: str = "redis://127.0.0.1:1") -> Settings:
    return settings(
        "http://q",
        "http://e",
        redis_url,
        [{"name": n, "type": "simulated", **BREAKER} for n in ("a", "b")],
        strategy="round_robin",
    )


def router_on(redis: Redis, redis_url: str, clock: list[float]) -> Router:
    conf = config(redis_url)
    providers = [
        Simulated(p.name, p.timeout_seconds, expect(p.options, SimulatedOptions))
        for p in conf.providers
    ]
    shared = RedisHealth(redis, "t:", conf.providers, conf.routing, clock=lambda: clock[0])
    local = MemoryHealth(conf.providers, conf.routing, clock=lambda: clock[0])
    health = ResilientHealth(shared, local, monotonic=lambda: clock[0])
    return Router(
        build_strategy("round_robin", Tuning()),
        providers,
        conf.providers,
        health,
        random.Random(1),
        monotonic=lambda: clock[0],
    )


def down(name: str, misconfigured: bool = False) -> Outcome:
    return Outcome(Status.DOWN, name, error="http_503", misconfigured=misconfigured)


def test_a_streak_at_the_breaker_threshold_holds_for_open_seconds_and_a_success_clears() -> None:
    conf = config()
    trip = FastTrip(conf.providers)
    trip.note(down("a"), 0.0)
    trip.note(Outcome(Status.THROTTLED, "a"), 0.1)  # throttling is not an outage
    trip.note(Outcome(Status.AMBIGUOUS, "a", error="timeout"), 0.2)
    assert trip.held(0.2) == set()
    trip.note(down("a"), 0.3)
    assert trip.held(0.3) == {"a"}
    assert trip.held(2.4) == set()  # open_seconds later it may be tried again
    trip.note(down("b", misconfigured=True), 3.0)  # a bad key trips at once
    assert trip.held(3.0) == {"b"}
    trip.note(Outcome(Status.SENT, "b"), 3.1)
    assert trip.held(3.1) == set()


async def test_the_router_holds_a_failing_provider_before_the_shared_breaker_hears(
    redis: Redis, redis_url: str
) -> None:
    clock = [1_800_000_000.0]
    router = router_on(redis, redis_url, clock)
    await router.refresh(force=True)
    for _ in range(3):
        router.admission.observe(down("a"), None, 0)  # answered, not yet recorded in Redis
    orders = [[p.name for p in r.order] for r in await router.plan(4)]
    assert orders == [["b"]] * 4
    assert not await router.admission.admit("a")
    assert 0.1 <= router.wait_hint() <= 2.0
    # The shared breaker hears of it (the settler records the failures) and opens: from then
    # on the shared state decides, and its half-open probes wake the pollers quickly.
    await router.health.record([Observation("a", Status.DOWN, 0.01)] * 3)
    snapshot = await router.refresh(force=True)
    assert snapshot.providers[0].circuit is Circuit.OPEN
    clock[0] += 2.5  # past open_seconds: half-open
    snapshot = await router.refresh(force=True)
    assert snapshot.providers[0].circuit is Circuit.HALF_OPEN
    assert router.wait_hint() == 0.1

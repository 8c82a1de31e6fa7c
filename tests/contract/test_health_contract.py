"""One contract over both health stores: `RedisHealth` (the Lua scripts, on a real Redis, under
a virtual clock) and `MemoryHealth` (the in-process copy, on the same clock).

The behavioural checks run once per store; the state machine drives both with the same random
outcomes, reservations, permit requests, token takes, releases and clock advances, and asserts
that their snapshots and answers stay equal (circuit, generation, trips, window sums, permits in
use, tokens). The fast trip's streak is checked against the breaker's own rule.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)
from redis.asyncio import Redis

from dispatcher.config import ProviderSettings, RoutingSettings
from dispatcher.health.base import HealthStore, Observation, Permit, ProviderHealth
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.health.resilient import FastTrip
from providers.base import Outcome, Status
from providers.simulated import SimulatedOptions
from strategies.base import Circuit
from tests.support.clock import Clock
from tests.support.harness import BREAKER, run_machine_on_redis
from tests.support.health import KINDS

T = TypeVar("T")
ROUTING = RoutingSettings(window_seconds=10, bucket_seconds=1)
PROVIDERS = (
    ProviderSettings("a", "simulated", SimulatedOptions(), breaker=BREAKER),
    ProviderSettings(
        "b", "simulated", SimulatedOptions(), breaker=BREAKER, rate_limit=20.0, burst=5
    ),
)
AHEAD = 0.5  # rate tokens booked this far ahead, as the app does
_examples = itertools.count()


def obs(kind: str, provider: str = "a", gen: int = 0, permit: Permit | None = None) -> Observation:
    return Observation(
        provider,
        KINDS[kind],
        0.05,
        misconfigured=kind == "M",
        generation=gen,
        permit=permit.token if permit else None,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[HealthStore]:
    if request.param == "memory":
        yield MemoryHealth(PROVIDERS, ROUTING, clock, random.Random(7), ahead_seconds=AHEAD)
        return
    client = Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        yield RedisHealth(
            client, "c:", PROVIDERS, ROUTING, clock, random.Random(7), ahead_seconds=AHEAD
        )
    finally:
        await client.aclose()


async def half_open(store: HealthStore, clock: Clock, name: str) -> ProviderHealth:
    await store.record([obs("D", name)] * BREAKER.consecutive_failures)
    clock.now += BREAKER.open_max_seconds
    health = (await store.snapshot())[name]
    assert health.circuit is Circuit.HALF_OPEN
    return health


async def test_reserve_grants_a_closed_unlimited_provider_everything_without_permits(
    store: HealthStore,
) -> None:
    booked = await store.reserve({"a": 7}, ())
    assert booked["a"].rate.granted == 7
    assert booked["a"].permits == ()


async def test_reserve_books_rate_tokens_as_take_does(store: HealthStore) -> None:
    first = (await store.reserve({"b": 30}, ()))["b"]
    assert first.rate.granted == 5 + 10  # the burst now, and AHEAD seconds at 20/s
    assert first.permits == ()
    assert (await store.take({"b": 1}))["b"].granted == 0  # the same limit


async def test_reserve_takes_a_probes_token_only_with_its_permit(
    store: HealthStore, clock: Clock
) -> None:
    gen = (await half_open(store, clock, "b")).generation
    booked = (await store.reserve({"b": 5}, {"b"}))["b"]
    assert [p.generation for p in booked.permits] == [gen] * BREAKER.half_open_permits
    assert booked.rate.granted == BREAKER.half_open_permits
    again = (await store.reserve({"b": 1}, {"b"}))["b"]
    assert (again.permits, again.rate.granted) == ((), 0)  # every permit is taken
    await store.release(booked.permits[:1])
    assert (await store.snapshot())["b"].permits_in_use == 1


async def test_reserve_finds_an_open_breaker_due_and_half_opens_it(
    store: HealthStore, clock: Clock
) -> None:
    await store.record([obs("D")] * BREAKER.consecutive_failures)
    opened = (await store.snapshot())["a"]
    assert (await store.reserve({"a": 1}, {"a"}))["a"].permits == ()  # open: no probe
    clock.now += BREAKER.open_max_seconds
    [permit] = (await store.reserve({"a": 1}, {"a"}))["a"].permits
    assert permit.generation == opened.generation + 1
    assert (await store.snapshot())["a"].circuit is Circuit.HALF_OPEN


async def test_a_rejected_send_ends_the_failure_streak(store: HealthStore) -> None:
    await store.record([obs(k) for k in "SSSSDDRD"])  # 3 failed of 8: under the rate
    assert (await store.snapshot())["a"].circuit is Circuit.CLOSED
    await store.record([obs(k) for k in "DD"])
    assert (await store.snapshot())["a"].circuit is Circuit.OPEN


def test_the_fast_trip_counts_a_streak_as_the_breaker_does() -> None:
    trip = FastTrip(PROVIDERS)
    for status in (Status.DOWN, Status.DOWN, Status.REJECTED, Status.DOWN):
        trip.note(Outcome(status, "a", error="x"), 0.0)
    assert trip.held(0.0) == set()  # the rejection ended the streak, as in breaker_record.lua
    for _ in range(2):
        trip.note(Outcome(Status.DOWN, "a", error="x"), 0.0)
    assert trip.held(0.0) == {"a"}


class StoresAgree(RuleBasedStateMachine):
    runner: ClassVar[asyncio.Runner]
    client: ClassVar[Redis]

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        prefix = f"contract{next(_examples)}:"
        self.stores: tuple[HealthStore, HealthStore] = (
            RedisHealth(
                self.client,
                prefix,
                PROVIDERS,
                ROUTING,
                self.clock,
                random.Random(3),
                ahead_seconds=AHEAD,
            ),
            MemoryHealth(PROVIDERS, ROUTING, self.clock, random.Random(3), ahead_seconds=AHEAD),
        )
        self.held: list[Permit] = []
        self.report = self.read()

    def both(self, call: Callable[[HealthStore], Coroutine[Any, Any, T]]) -> tuple[T, T]:
        return self.runner.run(call(self.stores[0])), self.runner.run(call(self.stores[1]))

    def read(self) -> dict[str, ProviderHealth]:
        shared, local = self.both(lambda store: store.snapshot())
        for name in shared:
            a, b = shared[name], local[name]
            assert replace(a, ewma_ms=None, tokens=None, headroom=0.0) == replace(
                b, ewma_ms=None, tokens=None, headroom=0.0
            )
            assert a.ewma_ms == (None if b.ewma_ms is None else pytest.approx(b.ewma_ms))
            assert a.tokens == (None if b.tokens is None else pytest.approx(b.tokens, abs=1e-9))
            assert a.headroom == pytest.approx(b.headroom, abs=1e-9)
        return shared

    @rule(seconds=st.sampled_from([0.001, 0.04, 0.5, 1.0, 2.0, 4.0, 9.0, 13.0, 25.0]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(
        name=st.sampled_from("ab"),
        kinds=st.text("SRTDAM", min_size=1, max_size=4),
        slow=st.booleans(),
        stale=st.booleans(),
    )
    def outcomes(self, name: str, kinds: str, slow: bool, stale: bool) -> None:
        gen = max(0, self.report[name].generation - stale)
        batch = [
            Observation(name, KINDS[k], 2.0 if slow else 0.05, k == "M", 0.5, gen) for k in kinds
        ]
        self.both(lambda store: store.record(batch))

    @rule(a=st.integers(0, 4), b=st.integers(0, 12))
    def reserve(self, a: int, b: int) -> None:
        firsts = {n: k for n, k in (("a", a), ("b", b)) if k}
        probes = {n for n in firsts if self.report[n].circuit is Circuit.HALF_OPEN}
        shared, local = self.both(lambda store: store.reserve(firsts, probes))
        assert shared.keys() == local.keys()
        for name, booking in shared.items():
            assert booking.permits == local[name].permits
            assert booking.rate.granted == local[name].rate.granted
            assert booking.rate.wait == pytest.approx(local[name].rate.wait, abs=1e-9)
            self.held.extend(booking.permits)

    @rule(want=st.integers(1, 3))
    def acquire(self, want: int) -> None:
        shared, local = self.both(lambda store: store.acquire_permits({"a": want, "b": want}))
        assert shared == local
        self.held.extend(p for grant in shared.values() for p in grant.permits)

    @rule(want=st.integers(1, 8))
    def take(self, want: int) -> None:
        shared, local = self.both(lambda store: store.take({"a": want, "b": want}))
        assert {n: g.granted for n, g in shared.items()} == {n: g.granted for n, g in local.items()}

    @precondition(lambda self: self.held)
    @rule(data=st.data(), kind=st.sampled_from("SSRDAM"), release=st.booleans())
    def resolve(self, data: st.DataObject, kind: str, release: bool) -> None:
        """A probe is recorded (which releases its permit) or handed back unused."""
        permit = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        if release:
            self.both(lambda store: store.release([permit]))
        else:
            observation = obs(kind, permit.provider, permit.generation, permit)
            self.both(lambda store: store.record([observation]))

    @invariant()
    def snapshots_agree(self) -> None:
        self.report = self.read()


def test_both_stores_stay_equal_under_random_traffic(redis_url: str) -> None:
    run_machine_on_redis(StoresAgree, redis_url, examples=60)

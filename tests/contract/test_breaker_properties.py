"""Property tests of the breaker state machine, driven through the real Lua and `MemoryHealth` at
once: for any sequence of outcomes, permit requests, crashed probes and time advances,

- both stores agree on every breaker field (the in-process fallback is the same machine);
- no generation ever admits more live probes than `half_open_permits`;
- generations never go backwards, and an open breaker always has a future `open_until`;
- nothing is ever stuck: once time passes the open period and the leases, probes are granted
  and their successes close the breaker.

Hypothesis drives a synchronous state machine; each step runs the async stores on a private
event loop (`asyncio.Runner`), with a fresh key prefix per example on the test's Redis.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import event
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
from providers.base import Status
from providers.simulated import SimulatedOptions
from strategies.base import Circuit
from tests.support.clock import Clock
from tests.support.harness import BREAKER, run_machine_on_redis
from tests.support.health import KINDS

T = TypeVar("T")
PROVIDERS = (ProviderSettings("a", "simulated", SimulatedOptions(), breaker=BREAKER),)
ROUTING = RoutingSettings(window_seconds=10, bucket_seconds=1)
SETTLED = BREAKER.misconfigured_open_seconds + BREAKER.permit_lease_seconds + 1
_examples = itertools.count()


class BreakerMachine(RuleBasedStateMachine):
    runner: ClassVar[asyncio.Runner]  # set by the test, with the Redis client it runs against
    client: ClassVar[Redis]

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        prefix = f"prop{next(_examples)}:"
        self.stores: tuple[HealthStore, HealthStore] = (
            RedisHealth(self.client, prefix, PROVIDERS, ROUTING, self.clock, random.Random(3)),
            MemoryHealth(PROVIDERS, ROUTING, self.clock, random.Random(3)),
        )
        self.held: list[Permit] = []  # probes in flight
        self.leases: dict[str, float] = {}  # every permit granted -> lease expiry
        self.last = self.read()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coro)

    def both(self, call: Callable[[HealthStore], Coroutine[Any, Any, T]]) -> tuple[T, T]:
        return self.run(call(self.stores[0])), self.run(call(self.stores[1]))

    def read(self) -> ProviderHealth:
        shared, local = self.both(lambda store: store.snapshot())
        a, b = shared["a"], local["a"]
        assert replace(a, ewma_ms=None) == replace(b, ewma_ms=None)
        assert a.ewma_ms == (None if b.ewma_ms is None else pytest.approx(b.ewma_ms, rel=1e-9))
        return a

    def record(self, *observations: Observation) -> None:
        self.both(lambda store: store.record(observations))

    @rule(seconds=st.sampled_from([2.0, 0.5, 1.0, 4.0, 9.0, 13.0, 0.001]))
    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(
        kind=st.sampled_from("SRTDAM"),
        slow=st.booleans(),
        stale=st.booleans(),
        retry=st.none() | st.sampled_from([0.5, 3.0, 60.0]),
    )
    def outcome(self, kind: str, slow: bool, stale: bool, retry: float | None) -> None:
        """A send routed when the last snapshot was taken (or earlier: stale)."""
        generation = self.last.generation - 1 if stale else self.last.generation
        self.record(
            Observation(
                "a", KINDS[kind], 2.0 if slow else 0.05, kind == "M", retry, max(0, generation)
            )
        )

    @rule(kind=st.sampled_from("DAS"), count=st.integers(1, 4), slow=st.booleans())
    def burst(self, kind: str, count: int, slow: bool) -> None:
        """Several sends of the current generation settle in one flush."""
        latency = 2.0 if slow else 0.05
        status = KINDS[kind]
        self.record(*[Observation("a", status, latency, generation=self.last.generation)] * count)

    @rule(want=st.integers(1, 3))
    def probe(self, want: int) -> None:
        self.acquire(want)

    @precondition(lambda self: self.last.circuit is Circuit.HALF_OPEN)
    @rule(want=st.integers(1, 3))
    def probe_while_half_open(self, want: int) -> None:
        self.acquire(want)

    def acquire(self, want: int) -> None:
        shared, local = self.both(lambda store: store.acquire_permits({"a": want}))
        assert shared == local
        grant = shared["a"]
        assert len(grant.permits) <= want
        if grant.circuit is not Circuit.HALF_OPEN:
            assert grant.permits == ()
        for permit in grant.permits:
            self.held.append(permit)
            self.leases[permit.token] = self.clock.now + BREAKER.permit_lease_seconds

    @precondition(lambda self: self.held)
    @rule(data=st.data(), kind=st.sampled_from("SSRTDAM"), slow=st.booleans())
    def resolve(self, data: st.DataObject, kind: str, slow: bool) -> None:
        """A probe finishes and its outcome is recorded, which releases its permit."""
        permit = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        self.leases.pop(permit.token)
        latency = 2.0 if slow else 0.05
        status, misconfigured = KINDS[kind], kind == "M"
        self.record(
            Observation("a", status, latency, misconfigured, None, permit.generation, permit.token)
        )

    @precondition(lambda self: self.held)
    @rule(release=st.booleans())
    def abandon(self, release: bool) -> None:
        """A probe is cancelled (its permit released) or its process crashes (never released)."""
        permit = self.held.pop()
        if release:
            self.both(lambda store: store.release([permit]))
            self.leases.pop(permit.token)

    @rule()
    def recovers_once_time_passes(self) -> None:
        """Liveness: past every open period and lease, successful probes close the breaker."""
        self.clock.now += SETTLED
        self.held.clear()
        for _ in range(BREAKER.half_open_successes):
            health = self.read()
            if health.circuit is Circuit.CLOSED:
                break
            assert health.circuit is Circuit.HALF_OPEN
            shared, local = self.both(lambda store: store.acquire_permits({"a": 1}))
            assert shared == local
            [permit] = shared["a"].permits  # never stuck without a free permit
            self.record(
                Observation("a", Status.SENT, 0.05, False, None, permit.generation, permit.token)
            )
        assert self.read().circuit is Circuit.CLOSED

    @invariant()
    def stores_agree_and_stay_within_bounds(self) -> None:
        health = self.read()
        assert health.generation >= self.last.generation
        assert health.permits_in_use <= BREAKER.half_open_permits
        live = [
            t
            for t, expiry in self.leases.items()
            if expiry > self.clock.now and t.startswith(f"{health.generation}.")
        ]
        assert len(live) <= BREAKER.half_open_permits
        if health.circuit is Circuit.OPEN:
            assert health.open_until is not None
            assert health.open_until > health.at
            assert health.permits_in_use == 0
        self.last = health
        event(f"{health.circuit} trips={health.trips} permits={health.permits_in_use}")


def test_breaker_state_machine_on_redis_and_in_process(redis_url: str) -> None:
    run_machine_on_redis(BreakerMachine, redis_url, examples=80)

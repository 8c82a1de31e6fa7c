"""Provider health on a real Redis, under virtual time (the explicit `now` argument).

The contract tests run against both stores: `RedisHealth` (the Lua scripts) and `MemoryHealth`
(the per-process fallback), so the two state machines cannot drift apart. Redis-only tests follow:
one cluster slot, round trips, replicas sharing limits and permits, the Redis clock, fallback.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.crc import key_slot
from structlog.testing import capture_logs

from dispatcher import keys
from dispatcher.config import ProviderSettings
from dispatcher.health.base import (
    HIST_BOUNDS_MS,
    Booking,
    HealthStore,
    Observation,
    Permit,
    ProbeGrant,
    ProviderHealth,
    RateGrant,
    hist_bucket,
    percentile,
)
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import SCRIPTS, RedisHealth
from dispatcher.health.resilient import ResilientHealth
from dispatcher.health.view import routing_snapshot, view
from dispatcher.scripts import RedisClient
from providers.base import Outcome, Status
from strategies.base import Circuit
from tests.support.clock import START, Clock
from tests.support.health import BREAKER, KINDS, PROVIDERS, ROUTING
from tests.support.redis_targets import RedisTarget

# The tests that take `redis` run on one Redis and on the cluster (tests/conftest.py).
pytestmark = pytest.mark.redis_targets("single", "cluster")


Make = Callable[..., HealthStore]


def tuned(**changes: Any) -> tuple[ProviderSettings, ...]:
    breaker = replace(BREAKER, **changes)
    return tuple(replace(p, breaker=breaker) for p in PROVIDERS)


def obs(
    kind: str,
    gen: int = 0,
    latency: float = 0.05,
    provider: str = "a",
    permit: Permit | None = None,
    retry_after: float | None = None,
) -> Observation:
    """One outcome by its class letter: S R T D A M (see dispatcher.health.base)."""
    return Observation(
        provider,
        KINDS[kind],
        latency,
        misconfigured=kind == "M",
        retry_after=retry_after,
        generation=gen,
        permit=permit.token if permit else None,
    )


def many(kinds: str, gen: int = 0, latency: float = 0.05) -> list[Observation]:
    return [obs(kind, gen, latency) for kind in kinds]


async def health(store: HealthStore, provider: str = "a") -> ProviderHealth:
    return (await store.snapshot())[provider]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["redis", "cluster", "local"])
async def make(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Make]:
    """Builds the store under test (on one Redis, on the three-primary cluster, or in memory);
    every store of one test shares one Redis and one clock."""
    client: RedisClient | None = None
    if request.param == "redis":
        client = Redis.from_url(request.getfixturevalue("redis_url"))
    elif request.param == "cluster":
        target = RedisTarget(request.getfixturevalue("redis_cluster_servers").url, cluster=True)
        target.flush()
        client = target.client()

    def build(
        providers: tuple[ProviderSettings, ...] = PROVIDERS, rng: random.Random | None = None
    ) -> HealthStore:
        rng = rng or random.Random(7)
        if client is None:
            return MemoryHealth(providers, ROUTING, clock, rng)
        return RedisHealth(client, "t:", providers, ROUTING, clock, rng)

    yield build
    if client is not None:
        await client.aclose()


async def trip(store: HealthStore, clock: Clock) -> ProviderHealth:
    """Open provider a's breaker with consecutive failures of the current generation."""
    before = await health(store)
    await store.record(many("DDD", before.generation))
    after = await health(store)
    assert after.circuit is Circuit.OPEN
    return after


async def half_open(store: HealthStore, clock: Clock) -> ProviderHealth:
    opened = await health(store)
    if opened.circuit is Circuit.HALF_OPEN:
        return opened
    if opened.circuit is Circuit.CLOSED:
        opened = await trip(store, clock)
    assert opened.open_until is not None
    clock.now = opened.open_until
    now = await health(store)
    assert now.circuit is Circuit.HALF_OPEN
    return now


async def recover(store: HealthStore, clock: Clock) -> ProviderHealth:
    """From open or half-open to closed: two successful probes."""
    await half_open(store, clock)
    permits = (await store.acquire_permits({"a": 2}))["a"].permits
    await store.record([obs("S", p.generation, permit=p) for p in permits])
    closed = await health(store)
    assert closed.circuit is Circuit.CLOSED
    return closed


# --- windows ------------------------------------------------------------------------------------


async def test_window_counts_each_outcome_class(make: Make, clock: Clock) -> None:
    store = make()
    await store.record([*many("SRD"), obs("A", latency=2.0), obs("T"), obs("S", latency=1.5)])
    a = await health(store)
    assert (a.calls, a.successes, a.failures, a.throttled, a.slow) == (5, 3, 2, 1, 2)
    assert a.latency_sum_ms == 50 * 3 + 2000 + 1500
    assert sum(a.histogram) == 5
    assert (a.circuit, a.last_seen, a.at) == (Circuit.CLOSED, START, START)


async def test_window_forgets_buckets_as_time_passes(make: Make, clock: Clock) -> None:
    store = make()
    await store.record(many("SSS"))
    clock.now += 5
    await store.record(many("SD"))
    assert (await health(store)).calls == 5
    clock.now += 4.999  # the first bucket is still the oldest of the 10
    assert (await health(store)).calls == 5
    clock.now += 0.001
    assert ((await health(store)).calls, (await health(store)).failures) == (2, 1)
    clock.now += 5
    a = await health(store)
    assert (a.calls, a.successes, a.failures) == (0, 0, 0)
    assert a.last_seen == START + 5  # the newest data is old now: the strategy sees its age


async def test_p50_and_p95_come_from_the_histogram(make: Make, clock: Clock) -> None:
    store = make()
    await store.record(many("S" * 90, latency=0.020) + many("S" * 10, latency=2.0))
    a = await health(store)
    fast, slow = hist_bucket(20), hist_bucket(2000)
    assert a.histogram[fast] == 90
    assert a.histogram[slow] == 10
    assert a.p50_ms is not None
    assert a.p95_ms is not None
    assert HIST_BOUNDS_MS[fast - 1] < a.p50_ms <= HIST_BOUNDS_MS[fast]
    assert HIST_BOUNDS_MS[slow - 1] < a.p95_ms <= HIST_BOUNDS_MS[slow]


def test_histogram_buckets_are_log_spaced_from_5ms_to_30s() -> None:
    assert len(HIST_BOUNDS_MS) == 12
    assert HIST_BOUNDS_MS[0] == 5.0
    assert HIST_BOUNDS_MS[-1] == pytest.approx(30_000)
    assert [hist_bucket(ms) for ms in (0, 5, 5.1, 29_999, 30_000, 90_000)] == [0, 0, 1, 11, 11, 11]
    assert percentile([0] * 12, 0.5) is None


async def test_peak_ewma_takes_a_spike_at_once_then_decays(make: Make, clock: Clock) -> None:
    store = make()
    await store.record([obs("S", latency=0.1)])
    assert (await health(store)).ewma_ms == pytest.approx(100)
    clock.now += 1
    await store.record([obs("S", latency=2.0)])
    assert (await health(store)).ewma_ms == pytest.approx(2000)
    clock.now += 10  # one time constant
    await store.record([obs("S", latency=0.1)])
    decayed = 2000 * math.exp(-1) + 100 * (1 - math.exp(-1))
    assert (await health(store)).ewma_ms == pytest.approx(decayed, rel=1e-9)
    clock.now += 30
    await store.record([obs("S", latency=0.1)])
    assert (await health(store)).ewma_ms == pytest.approx(100 + (decayed - 100) * math.exp(-3))


# --- breaker transitions ------------------------------------------------------------------------


async def test_never_trips_on_one_failure_of_two(make: Make, clock: Clock) -> None:
    store = make(tuned(consecutive_failures=100))
    await store.record(many("SD"))
    assert (await health(store)).circuit is Circuit.CLOSED
    await store.record(many("D"))  # 2 of 3 failed, still under minimum_calls
    assert (await health(store)).circuit is Circuit.CLOSED


async def test_failure_rate_trips_after_minimum_calls(make: Make, clock: Clock) -> None:
    store = make(tuned(consecutive_failures=100))
    await store.record(many("SDS"))
    assert (await health(store)).circuit is Circuit.CLOSED
    await store.record(many("D"))  # 4 calls, 2 failed: 50 %
    a = await health(store)
    assert (a.circuit, a.trips, a.generation) == (Circuit.OPEN, 1, 1)


async def test_slow_call_rate_trips(make: Make, clock: Clock) -> None:
    store = make(tuned(consecutive_failures=100))
    await store.record(many("SSS", latency=2.0))
    assert (await health(store)).circuit is Circuit.CLOSED
    await store.record(many("S", latency=2.0))
    assert (await health(store)).circuit is Circuit.OPEN


async def test_consecutive_failures_trip_fast(make: Make, clock: Clock) -> None:
    store = make(tuned(minimum_calls=100))
    await store.record(many("DDSDDS"))
    assert (await health(store)).circuit is Circuit.CLOSED
    await store.record(many("DDD"))
    assert (await health(store)).circuit is Circuit.OPEN


async def test_misconfigured_opens_at_once_for_long(make: Make, clock: Clock) -> None:
    store = make()
    await store.record([obs("M")])
    a = await health(store)
    assert (a.circuit, a.open_until) == (Circuit.OPEN, START + 600)
    clock.now += 599.999
    assert (await health(store)).circuit is Circuit.OPEN
    clock.now += 0.001
    assert (await health(store)).circuit is Circuit.HALF_OPEN


async def test_misconfigured_while_open_makes_the_open_longer(make: Make, clock: Clock) -> None:
    store = make()
    opened = await trip(store, clock)
    await store.record([obs("M", opened.generation)])
    a = await health(store)
    assert (a.circuit, a.open_until, a.generation) == (Circuit.OPEN, START + 600, 1)


async def test_open_time_doubles_per_trip_with_jitter_up_to_the_cap(
    make: Make, clock: Clock
) -> None:
    store = make()
    ratios = []
    for trips in range(1, 7):
        if trips == 1:
            a = await trip(store, clock)
        else:
            probe = await half_open(store, clock)
            permit = (await store.acquire_permits({"a": 1}))["a"].permits[0]
            await store.record([obs("D", probe.generation, permit=permit)])
            a = await health(store)
        assert (a.circuit, a.trips) == (Circuit.OPEN, trips)
        assert a.open_until is not None
        base = min(40.0, 5.0 * 2 ** (trips - 1))
        ratio = (a.open_until - clock.now) / base
        assert 0.8 - 1e-3 <= ratio <= 1.2
        assert a.open_until - clock.now <= 40.0
        ratios.append(ratio)
    assert len(set(ratios[:3])) == 3  # jittered: no two trips alike


async def test_trip_count_resets_after_sustained_health(make: Make, clock: Clock) -> None:
    store = make()
    await trip(store, clock)
    closed = await recover(store, clock)
    clock.now += 30  # closed, but not for long enough
    again = await trip(store, clock)
    assert again.trips == 2
    assert again.open_until is not None
    assert again.open_until - clock.now >= 8.0
    await recover(store, clock)
    clock.now += 60
    assert (await health(store)).trips == 0
    fresh = await trip(store, clock)
    assert fresh.trips == 1
    assert fresh.open_until is not None
    assert fresh.open_until - clock.now <= 6.0
    assert closed.closed_at is not None


async def test_half_open_closes_after_enough_successes(make: Make, clock: Clock) -> None:
    store = make()
    await store.record(many("SSDSD"))
    probe = await half_open(store, clock)  # trips on 3 more failures
    [one, two] = (await store.acquire_permits({"a": 2}))["a"].permits
    await store.record([obs("S", probe.generation, permit=one)])
    assert (await health(store)).circuit is Circuit.HALF_OPEN
    await store.record([obs("R", probe.generation, permit=two)])  # a rejection: it worked
    a = await health(store)
    assert (a.circuit, a.generation, a.closed_at) == (
        Circuit.CLOSED,
        probe.generation + 1,
        clock.now,
    )
    assert (a.calls, a.failures, a.permits_in_use) == (0, 0, 0)  # old failures are forgotten
    clock.now += 5
    assert view(await health(store), PROVIDERS[0]).recovered_for == 5.0


@pytest.mark.parametrize(("kind", "latency"), [("D", 0.05), ("A", 15.0), ("S", 2.0)])
async def test_half_open_reopens_on_any_failure_or_slow_probe(
    make: Make, clock: Clock, kind: str, latency: float
) -> None:
    store = make()
    probe = await half_open(store, clock)
    [one, _] = (await store.acquire_permits({"a": 2}))["a"].permits
    await store.record(
        [obs("S", probe.generation), obs(kind, probe.generation, latency, permit=one)]
    )
    a = await health(store)
    assert (a.circuit, a.trips, a.permits_in_use) == (Circuit.OPEN, 2, 0)
    assert a.open_until is not None
    assert a.open_until - clock.now >= 8.0  # the second open is longer


# --- permits and fencing ------------------------------------------------------------------------


async def test_permits_are_bounded_and_expired_leases_reclaimed(make: Make, clock: Clock) -> None:
    store = make()
    closed = (await store.acquire_permits({"a": 1}))["a"]
    assert (closed.circuit, closed.permits) == (Circuit.CLOSED, ())
    await trip(store, clock)
    opened = (await store.acquire_permits({"a": 1}))["a"]
    assert (opened.circuit, opened.permits) == (Circuit.OPEN, ())
    await half_open(store, clock)
    grant = (await store.acquire_permits({"a": 3}))["a"]
    assert (grant.circuit, len(grant.permits)) == (Circuit.HALF_OPEN, 2)
    assert len({p.token for p in grant.permits}) == 2
    assert (await store.acquire_permits({"a": 1}))["a"].permits == ()
    assert (await health(store)).permits_in_use == 2
    await store.release(grant.permits[:1])
    clock.now += 5
    assert len((await store.acquire_permits({"a": 5}))["a"].permits) == 1
    clock.now += 4.999
    assert (await store.acquire_permits({"a": 1}))["a"].permits == ()
    clock.now += 0.001  # the unreleased lease expires: a crashed probe never wedges half-open
    assert (await health(store)).permits_in_use == 1
    clock.now += 5
    assert len((await store.acquire_permits({"a": 3}))["a"].permits) == 2


async def test_permits_can_be_opened_by_the_permit_call_itself(make: Make, clock: Clock) -> None:
    store = make()
    opened = await trip(store, clock)
    assert opened.open_until is not None
    clock.now = opened.open_until  # no snapshot in between
    grant = (await store.acquire_permits({"a": 1}))["a"]
    assert (grant.circuit, grant.generation, len(grant.permits)) == (Circuit.HALF_OPEN, 2, 1)


async def test_late_results_of_an_older_generation_change_nothing(make: Make, clock: Clock) -> None:
    store = make()
    probe = await half_open(store, clock)  # generation 0 -> 1 (open) -> 2 (half-open)
    await store.record(many("DDDDD", gen=0))  # routed before the trip
    assert (await health(store)).circuit is Circuit.HALF_OPEN
    await store.record(many("SSSSS", gen=1))
    a = await health(store)
    assert (a.circuit, a.generation) == (Circuit.HALF_OPEN, probe.generation)
    assert a.calls == 3 + 10  # but they still count in the window
    closed = await recover(store, clock)
    await store.record(many("DDDDDDD", gen=probe.generation))  # late probes after the close
    await store.record(many("DD", gen=closed.generation))
    a = await health(store)
    assert (a.circuit, a.generation, a.failures) == (Circuit.CLOSED, closed.generation, 9)


# --- throttling, rejections, rate limits --------------------------------------------------------


async def test_throttled_sets_throttle_until_and_never_trips(make: Make, clock: Clock) -> None:
    store = make()
    await store.record([obs("T", retry_after=30.0)] + [obs("T")] * 20)
    a = await health(store)
    assert (a.circuit, a.throttled, a.calls, a.throttled_until) == (
        Circuit.CLOSED,
        21,
        0,
        START + 30,
    )
    assert not view(a, PROVIDERS[0]).available
    await store.record([obs("T", retry_after=10**9)])  # an absurd reset is capped at open_max
    assert (await health(store)).throttled_until == START + 40
    clock.now += 40
    assert view(await health(store), PROVIDERS[0]).available


async def test_rejections_never_count_against_the_provider(make: Make, clock: Clock) -> None:
    store = make()
    await store.record(many("R" * 30))
    a = await health(store)
    assert (a.circuit, a.successes, a.failures) == (Circuit.CLOSED, 30, 0)


async def test_rate_limit_grants_rate_times_time_plus_burst(make: Make, clock: Clock) -> None:
    store = make()
    granted = 0
    for _ in range(1000):  # 10 s in 10 ms steps, asking for 3 at a time
        grant = (await store.take({"b": 3}))["b"]
        granted += grant.granted
        assert grant.granted == 3 or grant.wait > 0
        clock.now += 0.01
    assert abs(granted - (20 * 10 + 5)) <= 1


async def test_default_burst_is_one_token_so_sends_stay_an_interval_apart(
    make: Make, clock: Clock
) -> None:
    # Without a burst nothing is saved up: no one-second window sees more than the rate.
    store = make(tuple(replace(p, burst=0) for p in PROVIDERS))
    assert (await store.take({"b": 100}))["b"].granted == 1
    grant = (await store.take({"b": 1}))["b"]
    assert grant.granted == 0
    assert grant.wait == pytest.approx(0.05)
    b = await health(store, "b")
    assert b.tokens == pytest.approx(0)
    assert b.headroom == pytest.approx(0)
    assert not view(b, PROVIDERS[1]).available
    clock.now += 0.5  # a quiet half second saves up no more than the one token
    b = await health(store, "b")
    assert b.tokens == pytest.approx(1)
    assert b.headroom == pytest.approx(1)
    assert (await store.take({"b": 100}))["b"].granted == 1


async def test_unlimited_providers_always_grant(make: Make, clock: Clock) -> None:
    store = make()
    grants = await store.take({"a": 1000, "b": 0})
    assert (grants["a"].granted, grants["b"].granted) == (1000, 0)
    a = await health(store)
    assert (a.tokens, a.headroom) == (None, 1.0)


# --- what strategies see ------------------------------------------------------------------------


async def test_view_reports_availability_age_and_recovery(make: Make, clock: Clock) -> None:
    store = make()
    await store.record([obs("S", latency=0.2)])
    clock.now += 3
    report = await store.snapshot()
    a = view(report["a"], PROVIDERS[0], in_flight=4)
    assert (a.available, a.circuit, a.calls, a.in_flight, a.age) == (True, Circuit.CLOSED, 1, 4, 3)
    assert a.latency_ms == pytest.approx(200)
    assert a.recovered_for is None
    assert view(report["b"], PROVIDERS[1]).age is None
    await trip(store, clock)
    assert not view(await health(store), PROVIDERS[0]).available
    await half_open(store, clock)
    assert view(await health(store), PROVIDERS[0]).available  # a probe slot is free
    await store.acquire_permits({"a": 2})
    assert not view(await health(store), PROVIDERS[0]).available
    snap = routing_snapshot(await store.snapshot(), PROVIDERS, {"b": 2}, sequence=9)
    assert [(v.name, v.in_flight) for v in snap.providers] == [("a", 0), ("b", 2)]
    assert (snap.now, snap.sequence) == (clock.now, 9)


def test_observation_of_an_outcome_keeps_generation_and_permit() -> None:
    outcome = Outcome(Status.DOWN, "a", 0.25, misconfigured=True)
    o = Observation.of(outcome, 7, Permit("a", "7.1", 7))
    assert (o.kind, o.latency_ms, o.generation, o.permit) == ("M", 250, 7, "7.1")
    assert Observation.of(Outcome(Status.THROTTLED, "a", retry_after=2.0), 3).retry_after == 2.0


# --- Redis only ---------------------------------------------------------------------------------


def test_every_health_key_of_a_deployment_is_in_one_cluster_slot() -> None:
    names = [
        f(prefix, p)
        for prefix in ("dispatcher:",)
        for p in ("sendgrid", "mailgun", "ses-eu", "x{y}")
        for f in (keys.health_window, keys.health_state, keys.health_permits, keys.health_rate)
    ]
    assert names[0] == "{dispatcher:health}:win:sendgrid"
    assert len({key_slot(name.encode()) for name in names}) == 1
    assert key_slot(b"{other:health}:win:a") != key_slot(b"{dispatcher:health}:win:a")


def counting_client(url: str) -> tuple[Redis, list[list[str]]]:
    """A client that logs the commands of each write to the socket: one entry per round trip."""
    trips: list[list[str]] = []
    packed: list[str] = []

    class Counting(Connection):
        def pack_command(self, *args: Any) -> list[bytes]:
            packed.append(str(args[0]))
            return super().pack_command(*args)

        async def send_packed_command(
            self, command: bytes | str | Iterable[bytes], check_health: bool = True
        ) -> None:
            trips.append(packed[:])
            packed.clear()
            await super().send_packed_command(command, check_health)

    return Redis.from_url(url, connection_class=Counting), trips


@pytest.mark.redis_targets("single")  # counts the commands of one connection
async def test_each_call_is_one_round_trip_of_evalsha(redis_url: str, clock: Clock) -> None:
    client, trips = counting_client(redis_url)
    try:
        store = RedisHealth(client, "t:", PROVIDERS, ROUTING, clock, random.Random(1))
        await store.load_scripts()
        await client.ping()
        counts = {}
        for name, call in [
            ("record", store.record([obs("S"), obs("D", provider="b"), obs("T")])),
            ("snapshot", store.snapshot()),
            ("permits", store.acquire_permits({"a": 1, "b": 1})),
            ("take", store.take({"a": 5, "b": 5})),
        ]:
            trips.clear()
            await call
            counts[name] = trips[:]
        assert counts == {
            "record": [["EVALSHA", "EVALSHA"]],
            "snapshot": [["EVALSHA"]],
            "permits": [["EVALSHA"]],
            "take": [["EVALSHA"]],  # only b is rate limited
        }
    finally:
        await client.aclose()


async def test_scripts_are_reloaded_after_a_flush(redis: Redis, clock: Clock) -> None:
    store = RedisHealth(redis, "t:", PROVIDERS, ROUTING, clock)
    await store.load_scripts()
    await redis.script_flush()
    await store.record([obs("S")])
    assert (await health(store)).calls == 1
    assert all(await redis.script_exists(*[s.sha for s in SCRIPTS]))


async def field_names(redis: Redis, key: str) -> list[str]:
    return [f.decode() if isinstance(f, bytes) else f for f in await redis.hkeys(key)]


async def test_record_prunes_expired_buckets_and_sets_expiry(redis: Redis, clock: Clock) -> None:
    store = RedisHealth(redis, "t:", PROVIDERS, ROUTING, clock)
    await store.record(many("SD"))
    window = keys.health_window("t:", "a")
    assert any(f.startswith("1800000000:") for f in await field_names(redis, window))
    clock.now += 10
    await store.record(many("S"))
    assert not any(f.startswith("1800000000:") for f in await field_names(redis, window))
    assert 0 < await redis.pttl(window) <= 11_000
    assert await redis.ttl(keys.health_state("t:", "a")) > 86_400


async def test_two_replicas_share_one_rate_limit(redis: Redis, clock: Clock) -> None:
    replicas = [RedisHealth(redis, "t:", PROVIDERS, ROUTING, clock) for _ in range(2)]
    granted = 0
    for step in range(1000):
        granted += (await replicas[step % 2].take({"b": 2}))["b"].granted
        clock.now += 0.01
    assert abs(granted - (20 * 10 + 5)) <= 1


async def test_concurrent_replicas_never_hold_more_permits_than_allowed(
    redis: Redis, clock: Clock
) -> None:
    replicas = [RedisHealth(redis, "t:", PROVIDERS, ROUTING, clock) for _ in range(8)]
    await trip(replicas[0], clock)
    await half_open(replicas[0], clock)
    grants = await asyncio.gather(*(r.acquire_permits({"a": 2}) for r in replicas))
    assert sum(len(g["a"].permits) for g in grants) == 2


async def test_the_redis_clock_is_used_without_an_explicit_now(redis: Redis) -> None:
    store = RedisHealth(redis, "t:", PROVIDERS, ROUTING)
    await store.record([obs("S", latency=0.1), obs("T", retry_after=5)])
    a = await health(store)
    seconds, micros = await redis.time()
    assert abs(a.at - (seconds + micros / 1e6)) < 5
    assert a.throttled_until is not None
    assert a.throttled_until - a.at == pytest.approx(5, abs=0.1)
    assert (a.calls, a.last_seen is not None) == (1, True)


class Switch:
    """A `HealthStore` that forwards to a live or a dead (unreachable) Redis store."""

    def __init__(self, live: HealthStore, dead: HealthStore) -> None:
        self.live, self.dead, self.up = live, dead, False

    def _store(self) -> HealthStore:
        return self.live if self.up else self.dead

    async def record(self, observations: Sequence[Observation]) -> None:
        await self._store().record(observations)

    async def snapshot(self) -> dict[str, ProviderHealth]:
        return await self._store().snapshot()

    async def acquire_permits(self, wants: Mapping[str, int]) -> dict[str, ProbeGrant]:
        return await self._store().acquire_permits(wants)

    async def release(self, permits: Sequence[Permit]) -> None:
        await self._store().release(permits)

    async def take(self, wants: Mapping[str, int]) -> dict[str, RateGrant]:
        return await self._store().take(wants)

    async def reserve(
        self, firsts: Mapping[str, int], probes: Collection[str]
    ) -> dict[str, Booking]:
        return await self._store().reserve(firsts, probes)


async def test_resilient_health_falls_back_once_and_restores(redis: Redis, clock: Clock) -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    ticks = [0.0]
    switch = Switch(
        RedisHealth(redis, "t:", PROVIDERS, ROUTING, clock),
        RedisHealth(dead, "t:", PROVIDERS, ROUTING, clock),
    )
    store = ResilientHealth(switch, MemoryHealth(PROVIDERS, ROUTING, clock), 5.0, lambda: ticks[0])
    try:
        with capture_logs() as logs:
            await store.record(many("DDD"))
            assert store.degraded
            assert (await store.snapshot())["a"].circuit is Circuit.OPEN  # per process now
            ticks[0] += 6
            assert (await store.take({"b": 1}))["b"].granted == 1  # Redis tried again: still down
            switch.up = True
            assert (await store.snapshot())["a"].circuit is Circuit.OPEN  # not retried yet
            ticks[0] += 6
            assert (await store.snapshot())["a"].circuit is Circuit.CLOSED  # shared again
        assert [e["event"] for e in logs] == ["health.degraded", "health.restored"]
        assert not store.degraded
    finally:
        await dead.aclose()

"""Provider health shared by every replica, in Redis: sliding windows, peak-EWMA latency, the
circuit breakers, half-open probe permits and the shared rate limits.

    snapshot         health_snapshot.lua                   1 round trip per receive batch
    acquire_permits  breaker_permit.lua (half-open only)   1 round trip
    take             rate_take.lua (limited providers)     1 round trip
    record           health_record.lua + breaker_record.lua, pipelined: 1 round trip per flush

`ResilientHealth` falls back to the per-process `dispatcher.health_local.LocalHealth` while
Redis is unreachable or answers with errors (READONLY after a failover, OOM, MISCONF, ...).
The data types and the state machine are described in `dispatcher.health_model`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from dispatcher import keys
from dispatcher.config import BreakerSettings, ProviderSettings, RoutingSettings
from dispatcher.health_model import (
    HIST_BOUNDS_MS,
    HealthStore,
    Observation,
    Permit,
    ProbeGrant,
    ProviderHealth,
    RateGrant,
    batch_providers,
    hist_bucket,
    jitter_draws,
    rate_params,
)
from dispatcher.scripts import LuaScript, load, run_batch
from strategies.base import Circuit

RECORD, BREAKER = LuaScript("health_record"), LuaScript("breaker_record")
SNAPSHOT, PERMIT, RATE = (
    LuaScript("health_snapshot"),
    LuaScript("breaker_permit"),
    LuaScript("rate_take"),
)
SCRIPTS = (RECORD, BREAKER, SNAPSHOT, PERMIT, RATE)
STATE_TTL_SECONDS = 7 * 86_400  # breaker state outlives any open period; idle a week, forgotten
_SNAPSHOT_WIDTH = 10 + 6 + len(HIST_BOUNDS_MS)

log = structlog.get_logger("dispatcher.health")
T = TypeVar("T")


def _ms(seconds: float) -> str:
    return repr(seconds * 1000)


def _window_params(b: BreakerSettings) -> list[str | int]:
    """One provider's ARGV block of health_record.lua."""
    return [_ms(b.slow_call_seconds), round(b.open_max_seconds * 1000)]


def _breaker_params(b: BreakerSettings, draw: float) -> list[str | int]:
    """One provider's ARGV block of breaker_record.lua, in the order its header lists."""
    return [
        _ms(b.slow_call_seconds),
        b.minimum_calls,
        repr(b.error_rate_threshold),
        repr(b.slow_call_rate_threshold),
        b.consecutive_failures,
        _ms(b.open_seconds),
        _ms(b.open_max_seconds),
        _ms(b.misconfigured_open_seconds),
        b.half_open_successes,
        _ms(b.healthy_reset_seconds),
        repr(draw),
    ]


class Health:
    """`HealthStore` in Redis. `clock` (epoch seconds) defaults to Redis `TIME`; `rng` draws the
    open-time jitter. `ahead_seconds` lets `take` book rate tokens that many seconds ahead (see
    `booked_delays`); 0, the default, grants only tokens free now."""

    def __init__(
        self,
        client: Redis,
        prefix: str,
        providers: Sequence[ProviderSettings],
        routing: RoutingSettings,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        *,
        ahead_seconds: float = 0.0,
    ) -> None:
        self._redis = client
        self._ahead = _ms(ahead_seconds)
        self._prefix = prefix
        self._settings = {p.name: p for p in providers}
        self._bucket = str(routing.bucket_seconds * 1000)
        self._buckets = str(routing.window_seconds // routing.bucket_seconds)
        self._tau = _ms(routing.latency_decay_seconds)
        self._clock = clock
        self._rng = rng or random.Random()

    async def load_scripts(self) -> None:
        await load(self._redis, SCRIPTS)

    def _now(self) -> str:
        return str(int(self._clock() * 1000)) if self._clock else ""

    async def record(self, observations: Sequence[Observation]) -> None:
        """Count every outcome and move the breakers, in one round trip."""
        if not observations:
            return
        now, names = self._now(), batch_providers(observations)
        index = {name: str(i) for i, name in enumerate(names, 1)}
        win_keys: list[str] = []
        win_args: list[str | int] = [now, self._bucket, self._buckets, self._tau]
        win_args += [STATE_TTL_SECONDS, len(names)]
        brk_keys: list[str] = []
        brk_args: list[str | int] = [now, self._bucket, self._buckets, len(names)]
        for name, draw in zip(names, jitter_draws(names, self._rng), strict=True):
            window, state = (
                keys.health_window(self._prefix, name),
                keys.health_state(self._prefix, name),
            )
            win_keys += [window, state]
            brk_keys += [window, state, keys.health_permits(self._prefix, name)]
            win_args += _window_params(self._settings[name].breaker)
            brk_args += _breaker_params(self._settings[name].breaker, draw)
        for o in observations:
            latency = o.latency_ms
            retry = "" if o.retry_after is None else str(round(o.retry_after * 1000))
            win_args += [index[o.provider], o.kind, latency, hist_bucket(latency), retry]
            brk_args += [index[o.provider], o.kind, latency, o.generation, o.permit or ""]

        def build(pipe: Pipeline) -> None:
            RECORD.queue(pipe, win_keys, win_args)
            BREAKER.queue(pipe, brk_keys, brk_args)

        await run_batch(self._redis, SCRIPTS, build)

    async def snapshot(self) -> dict[str, ProviderHealth]:
        """Every provider's health, after the transitions time alone causes; one round trip."""
        names = list(self._settings)
        snap_keys: list[str] = []
        args: list[str | int] = [self._now(), self._bucket, self._buckets]
        for name in names:
            settings = self._settings[name]
            snap_keys += [
                keys.health_window(self._prefix, name),
                keys.health_state(self._prefix, name),
                keys.health_permits(self._prefix, name),
                keys.health_rate(self._prefix, name),
            ]
            interval, burst = rate_params(settings) or (0.0, 0.0)
            args += [_ms(settings.breaker.healthy_reset_seconds), repr(interval), repr(burst)]

        def build(pipe: Pipeline) -> None:
            SNAPSHOT.queue(pipe, snap_keys, args)

        [reply] = await run_batch(self._redis, SCRIPTS, build)
        at = int(reply[0]) / 1000
        width = _SNAPSHOT_WIDTH
        return {
            name: self._parse(name, at, reply[1 + i * width : 1 + (i + 1) * width])
            for i, name in enumerate(names)
        }

    def _parse(self, name: str, at: float, row: list[Any]) -> ProviderHealth:
        state, gen, trips, open_until, throttle, closed_at, seen, ewma, permits, tokens = row[:10]
        sums = [int(v) for v in row[10:]]
        circuit = Circuit(_text(state))
        rate = rate_params(self._settings[name])
        free = float(tokens) if rate is not None else None
        return ProviderHealth(
            name=name,
            at=at,
            circuit=circuit,
            generation=int(gen or 0),
            trips=int(trips or 0),
            calls=sums[0],
            successes=sums[1],
            failures=sums[2],
            throttled=sums[3],
            slow=sums[4],
            latency_sum_ms=sums[5],
            histogram=tuple(sums[6:]),
            ewma_ms=float(ewma) if ewma else None,
            open_until=_seconds(open_until) if circuit is Circuit.OPEN else None,
            throttled_until=_seconds(throttle),
            permits_in_use=int(permits),
            tokens=free,
            headroom=1.0 if rate is None or free is None else min(1.0, free / rate[1]),
            closed_at=_seconds(closed_at),
            last_seen=_seconds(seen),
        )

    async def acquire_permits(self, wants: Mapping[str, int]) -> dict[str, ProbeGrant]:
        """Half-open probe permits, up to `wants[provider]` each; one round trip."""
        names = [name for name, want in wants.items() if want > 0]
        if not names:
            return {}
        permit_keys: list[str] = []
        args: list[str | int] = [self._now()]
        for name in names:
            b = self._settings[name].breaker
            permit_keys += [
                keys.health_state(self._prefix, name),
                keys.health_permits(self._prefix, name),
            ]
            args += [wants[name], b.half_open_permits, _ms(b.permit_lease_seconds)]

        def build(pipe: Pipeline) -> None:
            PERMIT.queue(pipe, permit_keys, args)

        [reply] = await run_batch(self._redis, SCRIPTS, build)
        grants = {}
        for name, (state, gen, *tokens) in zip(names, reply, strict=True):
            generation = int(gen)
            permits = tuple(Permit(name, _text(t), generation) for t in tokens)
            grants[name] = ProbeGrant(Circuit(_text(state)), generation, permits)
        return grants

    async def release(self, permits: Sequence[Permit]) -> None:
        """Hand back permits whose probe was never sent (a sent one is released by `record`)."""
        if not permits:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for p in permits:
                pipe.zrem(keys.health_permits(self._prefix, p.provider), p.token)
            await pipe.execute()

    async def take(self, wants: Mapping[str, int]) -> dict[str, RateGrant]:
        """Up to `wants[provider]` rate tokens each, booked ahead up to `ahead_seconds`; one
        round trip (none if all unlimited)."""
        grants = {name: RateGrant(want) for name, want in wants.items()}
        limited = {
            name: rate
            for name, want in wants.items()
            if want > 0 and (rate := rate_params(self._settings[name])) is not None
        }
        if not limited:
            return grants
        rate_keys = [keys.health_rate(self._prefix, name) for name in limited]
        args: list[str | int] = [self._now()]
        for name, (interval, burst) in limited.items():
            args += [wants[name], repr(interval), repr(burst), self._ahead]

        def build(pipe: Pipeline) -> None:
            RATE.queue(pipe, rate_keys, args)

        [reply] = await run_batch(self._redis, SCRIPTS, build)
        for name, (granted, wait_ms) in zip(limited, reply, strict=True):
            grants[name] = RateGrant(int(granted), float(wait_ms) / 1000)
        return grants


class ResilientHealth:
    """`Health` while Redis answers; the per-process `LocalHealth` while it does not.

    The first shared call that fails (a connection error, an error reply such as READONLY
    after a failover, OOM, MISCONF or MOVED, or no answer within `timeout_seconds`) switches
    to local state. While degraded, every call is answered locally
    at once, except that one call at a time probes Redis, after a jittered delay that doubles
    from `retry_min_seconds` up to `retry_seconds`; the probe that succeeds switches back.

    Logs: `health.degraded` (a warning) at most once per `warn_seconds`, however many calls fail
    and however often Redis comes and goes (a flapping connection is counted, not logged each
    time); `health.restored` when an outage that was announced ends.
    """

    def __init__(
        self,
        shared: HealthStore,
        local: HealthStore,
        retry_seconds: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        retry_min_seconds: float = 0.5,
        timeout_seconds: float = 2.0,
        warn_seconds: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self._shared, self._local = shared, local
        self._retry_max, self._retry_min = retry_seconds, min(retry_min_seconds, retry_seconds)
        self._timeout, self._warn_seconds = timeout_seconds, warn_seconds
        self._monotonic, self._rng = monotonic, rng or random.Random()
        self._since: float | None = None  # when it degraded; None while shared
        self._retry_at = 0.0
        self._delay = self._retry_min
        self._probing = False
        self._warned_at: float | None = None
        self._announced = False  # the current outage was warned about
        self._failures = self._outages = 0  # since the last warning

    @property
    def degraded(self) -> bool:
        return self._since is not None

    async def _call(self, op: Callable[[HealthStore], Awaitable[T]]) -> T:
        probe = self._since is not None
        if probe and (self._probing or self._monotonic() < self._retry_at):
            return await op(self._local)
        self._probing = self._probing or probe
        try:
            async with asyncio.timeout(self._timeout):
                result = await op(self._shared)
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError
            self._failed(exc, probe)
            return await op(self._local)
        finally:
            if probe:
                self._probing = False
        if probe and self._since is not None:
            if self._announced:
                away = self._monotonic() - self._since
                log.info("health.restored", scope="shared", degraded_for_s=round(away, 1))
            self._since = None
        return result

    def _failed(self, exc: BaseException, probe: bool) -> None:
        """Count a failed shared call; schedule the next probe; warn at most once a period."""
        now = self._monotonic()
        self._failures += 1
        if self._since is None:  # Redis has just gone: probe again soon
            self._since, self._delay, self._announced = now, self._retry_min, False
            self._outages += 1
        elif probe:
            self._delay = min(self._retry_max, self._delay * 2)
        else:  # a call already under way when Redis went: the probe schedule stands
            return
        self._retry_at = now + self._delay * self._rng.uniform(0.5, 1.0)
        if self._warned_at is None or now - self._warned_at >= self._warn_seconds:
            log.warning(
                "health.degraded",
                scope="per-process",
                reason=repr(exc)[:200],
                failed_calls=self._failures,
                outages=self._outages,
                degraded_for_s=round(now - self._since, 1),
                next_probe_s=round(self._retry_at - now, 2),
            )
            self._warned_at, self._announced = now, True
            self._failures = self._outages = 0

    async def record(self, observations: Sequence[Observation]) -> None:
        await self._call(lambda store: store.record(observations))

    async def snapshot(self) -> dict[str, ProviderHealth]:
        return await self._call(lambda store: store.snapshot())

    async def acquire_permits(self, wants: Mapping[str, int]) -> dict[str, ProbeGrant]:
        return await self._call(lambda store: store.acquire_permits(wants))

    async def release(self, permits: Sequence[Permit]) -> None:
        await self._call(lambda store: store.release(permits))

    async def take(self, wants: Mapping[str, int]) -> dict[str, RateGrant]:
        return await self._call(lambda store: store.take(wants))


def booked_delays(grant: RateGrant, interval: float) -> list[float]:
    """Seconds from now until each token of `grant` may be used, earliest first. The last one is
    `grant.wait` less one emission interval (`interval`, in seconds) away, each earlier one an
    interval before it; a token free now has 0. Using a token later than that is always safe."""
    return [max(0.0, grant.wait - (grant.granted - k) * interval) for k in range(grant.granted)]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _seconds(millis: bytes | str) -> float | None:
    return float(millis) / 1000 if millis else None

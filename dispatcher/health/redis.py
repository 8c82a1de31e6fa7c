"""Provider health shared by every replica, in Redis: sliding windows, peak-EWMA latency, the
circuit breakers, half-open probe permits and the shared rate limits.

    snapshot         health_snapshot.lua (with overrides)  1 round trip per receive batch
    reserve          reserve.lua (half-open or limited)    1 round trip per receive batch
    acquire_permits  breaker_permit.lua (half-open only)   1 round trip
    take             rate_take.lua (limited providers)     1 round trip (a failover's token)
    record           health_record.lua + breaker_record.lua, pipelined: 1 round trip per flush

Rules several scripts share are preludes (`lua/_breaker.lua`, `lua/_gcra.lua`); the constants
the Python copy uses too (jitter, histogram buckets) are passed as ARGV. The data types and the
state machine are described in `dispatcher.health.base`; `dispatcher.health.resilient` falls
back to `MemoryHealth` while Redis is away.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from dispatcher import keys
from dispatcher.config import BreakerSettings, ProviderSettings, RoutingSettings
from dispatcher.health.base import (
    HIST_BOUNDS_MS,
    JITTER,
    Booking,
    Observation,
    Permit,
    ProbeGrant,
    ProviderHealth,
    RateGrant,
    jitter_draws,
    rate_params,
    with_override,
)
from dispatcher.health.tally import tally
from dispatcher.round_trips import RoundTrips
from dispatcher.scripts import LuaScript, RedisClient, load
from strategies.base import Circuit

RECORD, BREAKER = LuaScript("health_record"), LuaScript("breaker_record", "_breaker")
SNAPSHOT, RESERVE = (LuaScript(n, "_breaker", "_gcra") for n in ("health_snapshot", "reserve"))
PERMIT, RATE = LuaScript("breaker_permit", "_breaker"), LuaScript("rate_take", "_gcra")
SCRIPTS = (RECORD, BREAKER, SNAPSHOT, PERMIT, RATE, RESERVE)
STATE_TTL_SECONDS = 7 * 86_400  # breaker state outlives any open period; idle a week, forgotten
_SNAPSHOT_WIDTH = 12 + 6 + len(HIST_BOUNDS_MS)


def _ms(seconds: float) -> str:
    return repr(seconds * 1000)


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


class RedisHealth:
    """`HealthStore` in Redis. `clock` (epoch seconds) defaults to Redis `TIME`; `rng` draws the
    open-time jitter. `ahead_seconds` lets `take` book rate tokens that many seconds ahead (see
    `booked_delays`); 0, the default, grants only tokens free now."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        providers: Sequence[ProviderSettings],
        routing: RoutingSettings,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        *,
        ahead_seconds: float = 0.0,
        trips: RoundTrips | None = None,
    ) -> None:
        self._redis = client
        self._trips = trips or RoundTrips(client)  # shared with the ledger by the app
        self._ahead = _ms(ahead_seconds)
        self._prefix = prefix
        self._settings = {p.name: p for p in providers}
        self._slow_ms = {p.name: p.breaker.slow_call_seconds * 1000 for p in providers}
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
        """Count every outcome and move the breakers, in one round trip: the outcomes are
        folded per provider first (`dispatcher.health.tally`), so Redis applies counts."""
        if not observations:
            return
        tallies = tally(observations, self._slow_ms)
        now, hist = self._now(), len(HIST_BOUNDS_MS)
        win_keys: list[str] = []
        win_args: list[str | int] = [now, self._bucket, self._buckets, self._tau]
        win_args += [STATE_TTL_SECONDS, hist]
        brk_keys: list[str] = []
        brk_args: list[str | int] = [now, self._bucket, self._buckets, repr(JITTER)]
        for (name, t), draw in zip(
            tallies.items(), jitter_draws(list(tallies), self._rng), strict=True
        ):
            window, state = (
                keys.health_window(self._prefix, name),
                keys.health_state(self._prefix, name),
            )
            breaker = self._settings[name].breaker
            win_keys += [window, state]
            brk_keys += [window, state, keys.health_permits(self._prefix, name)]
            win_args += [round(breaker.open_max_seconds * 1000), *t.window.args()]
            brk_args += _breaker_params(breaker, draw)
            brk_args += [len(t.permits), *t.permits, len(t.runs)]
            brk_args += [part for run in t.runs for part in run]

        calls = [RECORD.call(win_keys, win_args), BREAKER.call(brk_keys, brk_args)]
        await self._trips.run(SCRIPTS, calls)

    async def snapshot(self) -> dict[str, ProviderHealth]:
        """Every provider's health, after the transitions time alone causes; one round trip."""
        names = list(self._settings)
        snap_keys: list[str] = []
        args: list[str | int] = [self._now(), self._bucket, self._buckets, len(HIST_BOUNDS_MS)]
        for name in names:
            settings = self._settings[name]
            snap_keys += [
                keys.health_window(self._prefix, name),
                keys.health_state(self._prefix, name),
                keys.health_permits(self._prefix, name),
                keys.health_rate(self._prefix, name),
                keys.health_override(self._prefix, name),
            ]
            interval, burst = rate_params(settings) or (0.0, 0.0)
            args += [_ms(settings.breaker.healthy_reset_seconds), repr(interval), repr(burst)]

        [reply] = await self._trips.run(SCRIPTS, [SNAPSHOT.call(snap_keys, args)])
        at, width = int(reply[0]) / 1000, _SNAPSHOT_WIDTH
        return {
            name: self._parse(name, at, reply[1 + i * width : 1 + (i + 1) * width])
            for i, name in enumerate(names)
        }

    def _parse(self, name: str, at: float, row: list[Any]) -> ProviderHealth:
        state, gen, trips, open_until, throttle, closed_at, seen, ewma, permits, tokens = row[:10]
        override, left_ms = _text(row[10]) or None, int(row[11])
        sums = [int(v) for v in row[12:]]
        circuit = Circuit(_text(state))
        rate = rate_params(self._settings[name])
        free = float(tokens) if rate is not None else None
        health = ProviderHealth(
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
        return with_override(health, override, at + left_ms / 1000 if left_ms >= 0 else None)

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

        [reply] = await self._trips.run(SCRIPTS, [PERMIT.call(permit_keys, args)])
        grants = {}
        for name, (state, gen, *tokens) in zip(names, reply, strict=True):
            grants[name] = ProbeGrant(Circuit(_text(state)), int(gen), _permits(name, gen, tokens))
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

        [reply] = await self._trips.run(SCRIPTS, [RATE.call(rate_keys, args)])
        for name, (granted, wait_ms) in zip(limited, reply, strict=True):
            grants[name] = RateGrant(int(granted), float(wait_ms) / 1000)
        return grants

    async def reserve(
        self, firsts: Mapping[str, int], probes: Collection[str]
    ) -> dict[str, Booking]:
        """Probe permits, then rate tokens (a probe's only with its permit), in one round trip
        (none when no first choice is half-open or rate limited)."""
        booked = {name: Booking(RateGrant(want)) for name, want in firsts.items()}
        rates = {name: rate_params(self._settings[name]) for name in firsts}
        names = [n for n, want in firsts.items() if want > 0 and (n in probes or rates[n])]
        if not names:
            return booked
        reserve_keys: list[str] = []
        args: list[str | int] = [self._now()]
        for name in names:
            b, (interval, burst) = self._settings[name].breaker, rates[name] or (0.0, 0.0)
            reserve_keys += [
                keys.health_state(self._prefix, name),
                keys.health_permits(self._prefix, name),
                keys.health_rate(self._prefix, name),
            ]
            args += [firsts[name], int(name in probes), b.half_open_permits]
            args += [_ms(b.permit_lease_seconds), repr(interval), repr(burst), self._ahead]

        [reply] = await self._trips.run(SCRIPTS, [RESERVE.call(reserve_keys, args)])
        for name, (granted, wait_ms, gen, *tokens) in zip(names, reply, strict=True):
            rate = RateGrant(int(granted), float(wait_ms) / 1000)
            booked[name] = Booking(rate, _permits(name, gen, tokens) if tokens else ())
        return booked


def _permits(name: str, gen: bytes | str, tokens: Sequence[bytes | str]) -> tuple[Permit, ...]:
    generation = int(gen)
    return tuple(Permit(name, _text(t), generation) for t in tokens)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _seconds(millis: bytes | str) -> float | None:
    return float(millis) / 1000 if millis else None

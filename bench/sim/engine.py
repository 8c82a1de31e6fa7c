"""One simulated run: a scenario, a strategy, the real router and the real Lua on a real Redis.

What runs for real: `strategies.build_strategy`, `dispatcher.router.Router` (snapshot refresh,
plan with half-open permits and rate tokens, failover admission, sends in flight and their age),
`dispatcher.delivery.attempt` and `decide` (failover on DOWN / THROTTLED only, AMBIGUOUS retried
later, backoff, max_attempts), `dispatcher.health.redis.RedisHealth` (every Lua script, on the
virtual clock, under `ResilientHealth` with its fast trip), and the worker's in-flight bound
(`Slots`, `AdaptiveLimit`). Settings are the production defaults. What is simulated: the
queue, the providers, the ledger (kept in memory) and the clock.

    tick   every batch / rate seconds: the arrivals so far and the retries now due become
           visible; while some provider is eligible, up to `pollers` receive batches of 10 are
           planned and sent within the in-flight limit (each send a task mirroring
           `Worker._send`); while none is, they are shed and the next tick waits
           `Router.wait_hint()`, as the worker's pollers do
    limit  every second: the adaptive in-flight limit (`dispatcher.concurrency`) moves
    flush  every `refresh_seconds`: the completed sends' observations go to `RedisHealth.record`
           in one round trip, as the settler batches them; then each message is settled
    sample right after each flush: the router reads a new snapshot; the circuits are logged
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from dataclasses import dataclass, field

from redis.asyncio import Redis

from bench.sim.clock import VirtualTime
from bench.sim.providers import SendLog, VirtualProvider
from bench.sim.scenarios import Scenario
from dispatcher.admission import Route
from dispatcher.app import tuning
from dispatcher.concurrency import LIMIT_INTERVAL_SECONDS, AdaptiveLimit
from dispatcher.config import Settings, parse
from dispatcher.delivery import Action, Decision, attempt
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.health.resilient import ResilientHealth
from dispatcher.ledger import RecordStatus
from dispatcher.message import Address, Email
from dispatcher.router import Router
from dispatcher.slots import Slots
from providers.base import Status
from strategies import Circuit, build_strategy

SENDER = Address("shop@example.com", "Shop")
RECIPIENTS = (Address("user@example.org"),)


@dataclass(frozen=True, slots=True)
class SimConfig:
    rate: float = 200.0  # arrivals per second
    batch: int = 10  # receive batch (the SQS maximum)
    pollers: int = 4  # receive batches per tick at most
    refresh_seconds: float = 0.1  # health snapshot refresh; outcomes are recorded just before
    drain_seconds: float = 120.0  # after the last arrival, time left for retries to settle
    epoch: float = 1_800_000_000.0  # the Health clock at virtual t = 0


@dataclass(slots=True)
class Message:
    email: Email
    arrived: float
    attempts: int = 0
    accepted_at: float | None = None
    failed: bool = False
    shed: bool = False


@dataclass(frozen=True, slots=True)
class Trace:
    """Everything a run produced, for the metrics and the plots."""

    providers: tuple[str, ...]
    sends: list[tuple[int, float, float, Status]]  # provider index, start, end, status
    arrived: list[float]
    accepted_at: list[float | None]
    failed: list[bool]
    shed: list[bool]
    samples: list[tuple[float, tuple[Circuit, ...]]]
    duplicates: int  # messages accepted more than once (must be 0)
    end: float


def sim_settings(scenario: Scenario, strategy: str) -> Settings:
    """Production defaults for everything but the providers and the strategy."""
    return parse(
        {
            "queue": {"url": "sim://queue"},
            "routing": {"strategy": strategy},
            "providers": [
                {"name": p.name, "type": "simulated", "weight": p.weight}
                for p in scenario.providers
            ],
        }
    )


@dataclass(slots=True)
class _Backlog:
    """The queue: messages visible now, and retries waiting for their delay."""

    visible: deque[Message] = field(default_factory=deque)
    delayed: list[tuple[float, int, Message]] = field(default_factory=list)
    order: itertools.count[int] = field(default_factory=itertools.count)


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        strategy: str,
        redis: Redis,
        prefix: str,
        seed: int,
        config: SimConfig = SimConfig(),
    ) -> None:
        self.scenario, self.config = scenario, config
        self.time = VirtualTime()
        settings = sim_settings(scenario, strategy)
        self.policy = settings.dispatch
        seeds = random.Random(seed)
        self.log = SendLog(scenario.names)
        providers = [
            VirtualProvider(p.name, p.profile, self.time, random.Random(seeds.random()), self.log)
            for p in scenario.providers
        ]

        def clock() -> float:
            return config.epoch + self.time.now

        self.health = RedisHealth(
            redis,
            prefix,
            settings.providers,
            settings.routing,
            clock=clock,
            rng=random.Random(seeds.random()),
        )
        local = MemoryHealth(settings.providers, settings.routing, clock)
        self.router = Router(
            build_strategy(strategy, tuning(settings.routing)),
            providers,
            settings.providers,
            ResilientHealth(self.health, local, monotonic=lambda: self.time.now),
            random.Random(seeds.random()),
            refresh_seconds=config.refresh_seconds,
            monotonic=lambda: self.time.now,
        )
        self._rng = random.Random(seeds.random())  # backoff jitter, as the worker's
        self._backlog = _Backlog()
        self._messages: list[Message] = []
        self._completions: list[tuple[Message, Decision, float]] = []
        self._limit = AdaptiveLimit(self.policy)
        self._slots = Slots(self._limit.limit)  # held from receive to settle, as the worker's
        self._unsettled = 0
        self._samples: list[tuple[float, tuple[Circuit, ...]]] = []
        # Recurring events as (period, phase): a tick, then the flush, then the snapshot read.
        # Each outcome is so visible to routing at the first refresh after it completes, as in
        # production, where the settler records it within milliseconds; and the ticks always
        # find the snapshot under refresh_seconds old, so the sampler alone reads it.
        self._tick_grid = (config.batch / config.rate, 0.0)
        self._flush_grid = (config.refresh_seconds, 0.0005)
        self._sample_grid = (config.refresh_seconds, 0.001)
        self._limit_grid = (LIMIT_INTERVAL_SECONDS, 0.0)

    async def run(self) -> Trace:
        await self.health.load_scripts()
        self.time.call_at(0.0, self._tick)
        self.time.call_at(self._next(self._sample_grid), self._sample)
        self.time.call_at(self._next(self._flush_grid), self._flush)
        if not self._limit.fixed:
            self.time.call_at(self._next(self._limit_grid), self._adjust_limit)
        try:
            await self.time.run(self.scenario.duration + self.config.drain_seconds, self._done)
        finally:
            await self.time.close()
        return self._trace()

    def _next(self, grid: tuple[float, float], after: float = 0.0) -> float:
        """The first point of `grid` (period, phase) after `after`, as k * period + phase: times
        are never accumulated sums, so recurring events do not drift."""
        period, phase = grid
        return (math.floor((after - phase) / period + 1e-6) + 1) * period + phase

    def _done(self) -> bool:
        return self.time.now >= self.scenario.duration and self._unsettled == 0

    # -- tick: arrivals, receive batches, shedding
    async def _tick(self) -> None:
        now = self.time.now
        self._arrive(now)
        backlog = self._backlog
        while backlog.delayed and backlog.delayed[0][0] <= now:
            backlog.visible.append(heapq.heappop(backlog.delayed)[2])
        wait = await self._receive() if backlog.visible else 0.0
        self.time.call_at(self._next(self._tick_grid, now + wait), self._tick)

    def _arrive(self, now: float) -> None:
        """Batches of `batch` messages every batch / rate seconds until the duration."""
        config, messages = self.config, self._messages
        interval = config.batch / config.rate
        while True:
            at = len(messages) // config.batch * interval
            if at > now + 1e-9 or at >= self.scenario.duration:
                return
            email = Email(
                f"sim-{len(messages):07d}", SENDER, RECIPIENTS, "sim", text="x", size=1_000
            )
            message = Message(email, at)
            messages.append(message)
            self._backlog.visible.append(message)
            self._unsettled += 1

    async def _receive(self) -> float:
        """Plan and start receive batches; the seconds until the next tick."""
        config, visible = self.config, self._backlog.visible
        if not (await self.router.refresh()).eligible():
            for message in visible:
                message.shed = True
            return self.router.wait_hint()  # the pollers sleep this long, as the worker's do
        slots = self._slots
        for _ in range(config.pollers):
            room = min(config.batch, slots.limit - slots.used, len(visible))
            if room <= 0:
                break
            await slots.acquire(room)  # free now: never waits
            batch = [visible.popleft() for _ in range(room)]
            await self.router.refresh()
            routes = await self.router.plan(len(batch))
            for message, route in zip(batch, routes, strict=True):
                self.time.spawn(self._send(message, route))
        return 0.0

    async def _send(self, message: Message, route: Route) -> None:
        """`Worker._send`: the first choice counts in flight (and its age) for the whole
        attempt; every answer feeds the in-flight limit."""
        router = self.router
        first = route.order[0].name if route.order else None
        started = router.begin(first) if first is not None else 0.0
        try:
            decision = await attempt(
                message.email, route, router.admission, message.attempts, self.policy, self._rng
            )
        finally:
            if first is not None:
                router.end(first, started)
        for outcome in decision.tried:
            self._limit.observe(outcome)
        self._completions.append((message, decision, self.time.now))

    # -- flush: record outcomes in one round trip, then settle
    async def _flush(self) -> None:
        completions, self._completions = self._completions, []
        if completions:
            await self.health.record([o for _, d, _ in completions for o in d.observations])
            for message, decision, done_at in completions:
                self._settle(message, decision, done_at)
        self.time.call_at(self._next(self._flush_grid, self.time.now), self._flush)

    def _settle(self, message: Message, decision: Decision, done_at: float) -> None:
        self._slots.release(1)
        message.attempts += 1 if decision.count_attempt else 0
        if decision.status is RecordStatus.SENT:
            message.accepted_at = done_at
        elif decision.action is Action.RETRY:
            message.shed |= not decision.tried  # routed with no provider left: shed
            due = self.time.now + decision.delay
            heapq.heappush(self._backlog.delayed, (due, next(self._backlog.order), message))
            return
        else:
            message.failed = True  # rejected, or dead-lettered after max_attempts
        self._unsettled -= 1

    async def _adjust_limit(self) -> None:
        """As `dispatcher.concurrency.adapt_limit`: the limit moves on the last interval."""
        self._slots.resize(self._limit.adjust(self._slots.take_peak()))
        self.time.call_at(self._next(self._limit_grid, self.time.now), self._adjust_limit)

    async def _sample(self) -> None:
        snapshot = await self.router.refresh(force=True)
        self._samples.append((self.time.now, tuple(v.circuit for v in snapshot.providers)))
        self.time.call_at(self._next(self._sample_grid, self.time.now), self._sample)

    def _trace(self) -> Trace:
        messages = self._messages
        return Trace(
            providers=self.scenario.names,
            sends=self.log.sends,
            arrived=[m.arrived for m in messages],
            accepted_at=[m.accepted_at for m in messages],
            failed=[m.failed for m in messages],
            shed=[m.shed for m in messages],
            samples=self._samples,
            duplicates=sum(1 for n in self.log.accepted.values() if n > 1),
            end=self.time.now,
        )

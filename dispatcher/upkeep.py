"""The worker's background upkeep, beside its pollers and send tasks:

keep_visible  every visibility_timeout / 3: long sends stay invisible, their claims leased
adapt_limit   every second: the adaptive in-flight limit moves (dispatcher.concurrency)
LedgerGate    while claims fail (Redis away or refusing writes) nobody receives; one probe
              writes to Redis until it takes writes again
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog
from redis.exceptions import RedisError

from dispatcher.ledger import Ledger

if TYPE_CHECKING:
    from dispatcher.worker import InFlight, Worker

log = structlog.get_logger("dispatcher.worker")
LIMIT_INTERVAL_SECONDS = 1.0


async def keep_visible(worker: Worker, lease: float) -> None:
    """Keep long sends invisible on the queue and their claims leased. The two run as separate
    loops on the same beat, each logging its own failures: SQS failing (or slow to time out)
    never holds back the lease, nor Redis failing the visibility."""
    queue = worker.queue
    period = max(1.0, queue.visibility_timeout / 3)

    async def hide(slow: list[InFlight]) -> object:
        return await queue.change_visibility(
            [(e.received.receipt, queue.visibility_timeout) for e in slow]
        )

    async def extend(slow: list[InFlight]) -> object:
        return await worker.ledger.extend([(e.email.id, e.owner) for e in slow], lease)

    async with asyncio.TaskGroup() as group:
        group.create_task(_every_beat(worker, period, "visibility", hide))
        group.create_task(_every_beat(worker, period, "lease", extend))


async def _every_beat(
    worker: Worker, period: float, part: str, renew: Callable[[list[InFlight]], Awaitable[object]]
) -> None:
    """Every `period`, `renew` the sends that have run for at least a period."""
    while True:
        await asyncio.sleep(period)
        cutoff = time.monotonic() - period
        slow = [e for e in worker.in_flight.values() if e.started <= cutoff]
        if not slow:
            continue
        try:
            await renew(slow)
        except Exception as exc:  # the next beat tries again; redelivery is still safe
            log.warning(
                "heartbeat_failed", part=part, error=type(exc).__name__, in_flight=len(slow)
            )


async def adapt_limit(worker: Worker) -> None:
    """Once a second, move the in-flight limit on the latency of the last second's sends."""
    if worker.limit.fixed:
        return
    while True:
        await asyncio.sleep(LIMIT_INTERVAL_SECONDS)
        before = worker.slots.limit
        after = worker.limit.adjust(worker.slots.take_peak())
        if after != before:
            worker.slots.resize(after)
            log.info("in_flight_limit", limit=after, was=before)


class LedgerGate:
    """Open while the ledger takes writes. A failed claim closes it: every receive counts
    towards the queue's maxReceiveCount, so pulling messages that cannot be claimed would wear
    them out. One probe then writes to the ledger (`Ledger.probe`; a PING would still answer from
    a replica after a failover, or from a Redis out of memory) with a growing, jittered delay,
    and reopens it once the write succeeds."""

    def __init__(self, ledger: Ledger, stopping: asyncio.Event, rng: random.Random) -> None:
        self._ledger, self._stopping, self._rng = ledger, stopping, rng
        self._open = asyncio.Event()
        self._open.set()
        self._probe: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    async def wait(self) -> None:
        await self._open.wait()

    def close(self) -> None:
        self._open.clear()
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._reopen(), name="ledger-probe")

    async def _reopen(self) -> None:
        delay = 0.25
        while not self._stopping.is_set():
            pause = delay * self._rng.uniform(0.5, 1.0)
            try:
                await asyncio.wait_for(self._stopping.wait(), pause)
                break  # stopping: the pollers are let go
            except TimeoutError:
                pass
            try:
                await self._ledger.probe()
            except RedisError:
                delay = min(10.0, delay * 2)
                continue
            log.info("ledger_reachable")
            break
        self._open.set()

"""The ledger gate: while claims fail (Redis away, or refusing writes), nobody receives.

Every receive counts towards the queue's maxReceiveCount, so pulling messages that cannot be
claimed would wear them out. A failed claim closes the gate; one probe then writes to Redis
(`Ledger.probe`) with a growing, jittered delay and reopens it once a write succeeds.
"""

from __future__ import annotations

import asyncio
import random

import structlog
from redis.exceptions import RedisError

from dispatcher.ledger import Ledger

log = structlog.get_logger("dispatcher.worker")


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

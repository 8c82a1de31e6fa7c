"""The heartbeat: every visibility_timeout / 3, long sends stay invisible on the queue and their
claims stay leased, as two loops on the same beat so that neither failing holds back the other;
a third loop on the same beat checks that the ledger has not lost its data
(`dispatcher.ledger_epoch`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from dispatcher.in_flight import InFlight
from dispatcher.ledger import Ledger
from dispatcher.ledger_epoch import LedgerEpoch
from dispatcher.queue import SqsQueue

log = structlog.get_logger("dispatcher.worker")


async def keep_visible(
    queue: SqsQueue,
    ledger: Ledger,
    in_flight: Mapping[str, InFlight],
    lease: float,
    epoch: LedgerEpoch | None = None,
) -> None:
    """Keep long sends invisible on the queue and their claims leased. The two run as separate
    loops on the same beat, each logging its own failures: SQS failing (or slow to time out)
    never holds back the lease, nor Redis failing the visibility. With an `epoch`, a third
    loop reads it at start and then on each beat."""
    period = max(1.0, queue.visibility_timeout / 3)

    async def hide(slow: list[InFlight]) -> object:
        return await queue.change_visibility(
            [(e.received.receipt, queue.visibility_timeout) for e in slow]
        )

    async def extend(slow: list[InFlight]) -> object:
        return await ledger.extend([(e.email.id, e.owner) for e in slow], lease)

    async with asyncio.TaskGroup() as group:
        group.create_task(_every_beat(in_flight, period, "visibility", hide))
        group.create_task(_every_beat(in_flight, period, "lease", extend))
        if epoch is not None:
            group.create_task(_watch_epoch(epoch, period))


async def _watch_epoch(epoch: LedgerEpoch, period: float) -> None:
    """Take the ledger's epoch now, then check it every `period` (it logs what it finds)."""
    await epoch.start()
    while True:
        await asyncio.sleep(period)
        await epoch.check()


async def _every_beat(
    in_flight: Mapping[str, InFlight],
    period: float,
    part: str,
    renew: Callable[[list[InFlight]], Awaitable[object]],
) -> None:
    """Every `period`, `renew` the sends that have run for at least a period."""
    while True:
        await asyncio.sleep(period)
        cutoff = time.monotonic() - period
        slow = [e for e in in_flight.values() if e.started <= cutoff]
        if not slow:
            continue
        try:
            await renew(slow)
        except Exception as exc:  # the next beat tries again; redelivery is still safe
            log.warning(
                "heartbeat_failed", part=part, error=type(exc).__name__, in_flight=len(slow)
            )

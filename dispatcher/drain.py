"""The drain at shutdown: let sends finish for `drain_seconds`, then cancel the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from dispatcher.in_flight import InFlight

log = structlog.get_logger("dispatcher.worker")


async def finish_sends(
    in_flight: Mapping[str, InFlight], pollers: asyncio.Future[list[None]], drain_seconds: float
) -> None:
    """Let in-flight sends finish for `drain_seconds`, then cancel the rest. A poller that
    was admitting a batch when the stop came may still start sends: those are waited for
    too, and the hand-back only begins once every poller has returned."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + drain_seconds
    log.info("draining", in_flight=len(in_flight), deadline_s=drain_seconds)
    while True:
        sends = {e.task for e in in_flight.values() if e.task and not e.task.done()}
        waiting = sends | ({pollers} if not pollers.done() else set())
        if not waiting:
            break
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
    await pollers  # a long poll is let end; what it brings is handed back
    late = [e.task for e in in_flight.values() if e.task and not e.task.done()]
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)

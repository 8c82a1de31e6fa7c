"""One message a worker has claimed and is sending (or has sent and not yet settled)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from dispatcher.message import Email
from dispatcher.queue import Received


@dataclass(slots=True, eq=False)
class InFlight:
    received: Received  # its newest receipt: a redelivery to this worker replaces it
    email: Email
    owner: str  # the claim's owner token, unique per delivery
    attempts_before: int  # attempts the ledger held when it was claimed
    started: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    calls: list[str] = field(default_factory=list)  # providers called so far, in order
    record_failures: int = 0  # flushes in which Redis refused this record

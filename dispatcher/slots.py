"""A counting limit that takes and gives back several slots at once (the in-flight bound).

`release` is synchronous, so any code path (a send finishing, a duplicate dropped) can give
slots back without awaiting. `resize` moves the limit (the adaptive in-flight limit); slots
already taken above a lowered limit are kept until released."""

from __future__ import annotations

import asyncio


class Slots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0  # the most slots in use at once since the last `take_peak`
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self, count: int) -> int:
        """Wait until `count` slots are free and take them; returns how many were taken."""
        while self.used + min(count, self.limit) > self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        count = min(count, self.limit)
        self.used += count
        self.peak = max(self.peak, self.used)
        return count

    def resize(self, limit: int) -> None:
        grew = limit > self.limit
        self.limit = limit
        if grew:
            self._wake()

    def take_peak(self) -> int:
        """The peak since the last call; the next period starts from the slots in use now."""
        peak, self.peak = self.peak, self.used
        return peak

    def release(self, count: int) -> None:
        if count <= 0:
            return
        self.used = max(0, self.used - count)
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

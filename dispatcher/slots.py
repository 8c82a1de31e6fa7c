"""A counting limit that takes and gives back several slots at once (the in-flight bound).

`release` is synchronous, so any code path (a send finishing, a duplicate dropped) can give
slots back without awaiting."""

from __future__ import annotations

import asyncio


class Slots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._waiters: list[asyncio.Future[None]] = []

    async def acquire(self, count: int) -> int:
        """Wait until `count` slots are free and take them; returns how many were taken."""
        count = min(count, self.limit)
        while self.used + count > self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.used += count
        return count

    def release(self, count: int) -> None:
        if count <= 0:
            return
        self.used = max(0, self.used - count)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

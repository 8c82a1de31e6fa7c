"""Virtual time for the simulator: a discrete-event heap that asyncio tasks can sleep on.

Two kinds of entries wait on the heap, keyed by (virtual time, insertion order):

    an event    an engine callback (`call_at`), awaited in the engine's own task
    a wake-up   a task's `sleep`: the future it waits on, resolved when time reaches it

`run` advances time only when every spawned task is parked on a `sleep` (or finished), so
whatever a task awaits in real time (a Redis round trip) completes before the clock moves on.
Equal times keep insertion order, and tasks resume one at a time, so a run is deterministic.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

Event = Callable[[], Awaitable[None]]


class VirtualTime:
    def __init__(self) -> None:
        self.now = 0.0  # virtual seconds since the run began
        self._heap: list[tuple[float, int, asyncio.Future[None] | Event]] = []
        self._order = itertools.count()
        self._busy = 0  # spawned tasks not parked on a sleep
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None

    def call_at(self, when: float, event: Event) -> None:
        """Run `event` (in the engine's task) once time reaches `when`."""
        heapq.heappush(self._heap, (max(when, self.now), next(self._order), event))

    async def sleep(self, seconds: float) -> None:
        """Park the calling task for `seconds` of virtual time."""
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.now + max(0.0, seconds), next(self._order), wake))
        self._park()
        await wake

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task; time waits for it whenever it is not sleeping."""
        self._busy += 1
        self._idle.clear()
        task = asyncio.create_task(self._guarded(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # surfaced by `run`, which stops the simulation
            self._failure = self._failure or exc
        finally:
            self._park()

    async def _settle(self) -> None:
        """Return once every task is parked. A woken task usually gets there within the one
        loop turn `sleep(0)` gives it; one awaiting real I/O is waited for on `_idle`."""
        if self._busy > 0:
            await asyncio.sleep(0)
        await self._idle.wait()

    async def run(self, until: float, finished: Callable[[], bool]) -> None:
        """Process the heap in time order up to `until`, or until `finished()` holds."""
        while True:
            await self._settle()
            if self._failure is not None:
                raise self._failure
            if not self._heap:
                return
            when = self._heap[0][0]
            if when > until or finished():
                return
            _, _, entry = heapq.heappop(self._heap)
            self.now = when
            if isinstance(entry, asyncio.Future):
                self._busy += 1
                self._idle.clear()
                entry.set_result(None)
            else:
                await entry()

    async def close(self) -> None:
        """Cancel the tasks still sleeping (messages in flight when the run ends)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _park(self) -> None:
        self._busy -= 1
        if self._busy <= 0:
            self._idle.set()

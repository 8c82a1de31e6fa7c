"""One Redis round trip for the script calls queued in one turn of the event loop.

The worker's ledger and health stores each send their calls as one pipeline (`scripts.run_batch`).
When they are sent at the same moment, as a flush does (the ledger's settle and the health
record are gathered), `RoundTrips` puts them on one pipeline: the first call of a loop turn
schedules the send for the end of the turn, and every call queued before then goes with it. Each
caller gets back its own replies, and its own error: an error reply raises for the caller whose
call it answers (unless it concerns one key and that caller isolates those), and a failed round
trip raises for every caller in it. A reply of NOSCRIPT reloads the scripts of every caller and
sends the whole pipeline again, once.

The pipeline is sent by a task of its own, so a caller that stops waiting (a timeout) does not
cancel the others' calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dispatcher.scripts import Command, LuaScript, RedisClient, checked, execute


@dataclass(slots=True)
class _Call:
    scripts: Sequence[LuaScript]
    commands: Sequence[Command]
    isolate: bool
    replies: asyncio.Future[list[Any]]


class RoundTrips:
    """Merges the commands sent through one Redis client in the same loop turn."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client
        self._waiting: list[_Call] = []
        self._sends: set[asyncio.Task[None]] = set()  # held until done (asyncio keeps weak refs)

    async def run(
        self,
        scripts: Sequence[LuaScript],
        commands: Sequence[Command],
        *,
        isolate: bool = False,
    ) -> list[Any]:
        """Queue `commands`; their replies once the shared round trip is back. With `isolate`,
        errors that concern one key are returned in place of their reply."""
        loop = asyncio.get_running_loop()
        call = _Call(scripts, commands, isolate, loop.create_future())
        if not self._waiting:
            loop.call_soon(self._send_waiting)
        self._waiting.append(call)
        return await call.replies

    def _send_waiting(self) -> None:
        calls, self._waiting = self._waiting, []
        task = asyncio.create_task(self._send(calls))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _send(self, calls: list[_Call]) -> None:
        scripts = list({script.sha: script for call in calls for script in call.scripts}.values())
        try:
            replies = await execute(self._client, scripts, [call.commands for call in calls])
        except asyncio.CancelledError:  # shutting down: nobody gets an answer
            for call in calls:
                call.replies.cancel()
            raise
        except Exception as exc:  # the round trip failed: every caller hears of it
            for call in calls:
                if not call.replies.done():
                    call.replies.set_exception(exc)
            return
        for call, mine in zip(calls, replies, strict=True):
            if call.replies.done():  # its caller stopped waiting
                continue
            try:
                call.replies.set_result(checked(mine, isolate=call.isolate))
            except Exception as exc:  # an error reply to this caller's own calls
                call.replies.set_exception(exc)

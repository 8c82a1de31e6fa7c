"""Record, enqueue, mark: the one path by which the API puts messages on the queue.

    accept (ledger: PENDING, or DUPLICATE: skipped) -> SendMessageBatch in tens
    -> retry the entries SQS refused, `attempts` times in all -> enqueued (QUEUED, or released)

Nothing is half-enqueued silently: the answer names the ids SQS never took, and the ledger
keeps them PENDING, released for the next intake of the same messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.api.compose import Outgoing
from dispatcher.intake import Accepted, IntakeLedger, Pending
from dispatcher.queue import SqsQueue


@dataclass(frozen=True, slots=True)
class Submitted:
    queued: list[str]  # on the queue now
    not_queued: list[str]  # SQS refused them: still PENDING
    duplicates: list[str]  # skipped: seen by this intake, queued already, or another intake's


class Enqueuer:
    def __init__(
        self,
        intake: IntakeLedger,
        queue: SqsQueue,
        *,
        attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        self._intake = intake
        self._queue = queue
        self._attempts = attempts
        self._backoff = backoff_seconds

    async def submit(self, messages: Sequence[Outgoing], token: str, created_by: str) -> Submitted:
        verdicts = await self._intake.accept(
            [Pending(m.id, m.batch_id) for m in messages], token, created_by
        )
        todo = [m for m, v in zip(messages, verdicts, strict=True) if v is not Accepted.DUPLICATE]
        duplicates = [
            m.id for m, v in zip(messages, verdicts, strict=True) if v is Accepted.DUPLICATE
        ]
        failed = await self._send(todo)
        queued = [m.id for m in todo if m.id not in failed]
        await self._intake.enqueued(queued, sorted(failed), token)
        return Submitted(queued, [m.id for m in todo if m.id in failed], duplicates)

    async def _send(self, messages: Sequence[Outgoing]) -> set[str]:
        """The ids SQS still refused after every attempt."""
        left = list(messages)
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))
            failed = set(await self._queue.send_batch([(m.id, m.body) for m in left]))
            left = [m for m in left if m.id in failed]
            if not left:
                break
        return {m.id for m in left}

"""Record, enqueue, mark: the one path by which the API puts messages on the queue.

    suppressed recipients (`dispatcher.suppression`) left out, unrecorded
    -> accept (ledger: PENDING, or DUPLICATE: skipped) -> SendMessageBatch in tens
    -> retry the entries SQS refused, `attempts` times in all -> enqueued (QUEUED, or released)

Nothing is half-enqueued silently: the answer names the ids SQS never took, and the ledger
keeps them PENDING, released for the next intake of the same messages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from dispatcher.api.compose import Outgoing
from dispatcher.intake import Accepted, IntakeLedger, Pending
from dispatcher.queue import SqsQueue
from dispatcher.suppression import Suppressions


@dataclass(frozen=True, slots=True)
class Submitted:
    queued: list[str]  # on the queue now
    not_queued: list[str]  # SQS refused them: still PENDING
    duplicates: list[str]  # skipped: seen by this intake, queued already, or another intake's
    suppressed: list[str] = field(default_factory=list)  # its recipient is suppressed: skipped


class Enqueuer:
    def __init__(
        self,
        intake: IntakeLedger,
        queue: SqsQueue,
        suppressions: Suppressions,
        *,
        attempts: int = 3,
        backoff_seconds: float = 0.2,
    ) -> None:
        self._intake = intake
        self._queue = queue
        self._suppressions = suppressions
        self._attempts = attempts
        self._backoff = backoff_seconds

    async def submit(self, messages: Sequence[Outgoing], token: str, created_by: str) -> Submitted:
        hasher = self._suppressions.hasher
        checked = await self._suppressions.check([hasher.digest(m.to) for m in messages])
        suppressed = [m.id for m, entry in zip(messages, checked, strict=True) if entry]
        messages = [m for m, entry in zip(messages, checked, strict=True) if entry is None]
        if not messages:
            return Submitted([], [], [], suppressed)
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
        return Submitted(queued, [m.id for m in todo if m.id in failed], duplicates, suppressed)

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

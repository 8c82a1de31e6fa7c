"""A provider whose answers a test scripts in advance (unit tests only: the end-to-end tests
use the fake SendGrid and Mailgun servers and moto's SES)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from dispatcher.message import Email
from providers.base import Outcome, Status


class ScriptedProvider:
    def __init__(
        self,
        name: str,
        answers: Iterable[Status | Outcome] = (),
        default: Status = Status.SENT,
        delay: float = 0.0,
        max_message_bytes: int = 10_000_000,
    ) -> None:
        self._name = name
        self._answers: deque[Status | Outcome] = deque(answers)
        self._default = default
        self.delay = delay
        self._max = max_message_bytes
        self.received: list[str] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_message_bytes(self) -> int:
        return self._max

    async def send(self, email: Email) -> Outcome:
        self.received.append(email.id)
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self._answers.popleft() if self._answers else self._default
        if isinstance(answer, Outcome):
            return answer
        message_id = f"{self._name}-{len(self.received)}" if answer is Status.SENT else None
        return Outcome(
            answer,
            self._name,
            0.001,
            message_id,
            error=None if answer is Status.SENT else f"scripted_{answer.value}",
        )

    async def aclose(self) -> None:
        return None

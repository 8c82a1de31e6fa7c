"""A dry-run provider: sleeps `latency_ms` (±10 % seeded jitter), fails at `error_rate`.

Failures are drawn from the same seeded `random.Random`, in these proportions::

    50 %  DOWN       "http_503"
    25 %  THROTTLED  retry_after 1 s
    25 %  AMBIGUOUS  "timeout"   (counted as not sent)

`set_fault` changes its behaviour at run time (the demo takes it down halfway; the bench
degrades it); `clear_fault` returns to the configured options. `sent` and `sent_ids` record
what it accepted, so tests and the demo can check that nothing was sent twice.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from dispatcher.message import Email
from providers.base import BaseProvider, Outcome, ProviderConfigError, Status
from providers.options import expect, read_options

MAX_MESSAGE_BYTES = 40 * 1024 * 1024
JITTER = 0.1
MAX_RECORDED_IDS = 1_000_000  # a long dry run keeps counting, but stops growing `sent_ids`


@dataclass(frozen=True, slots=True)
class SimulatedOptions:
    """The keys of a `type = "simulated"` entry."""

    latency_ms: float = 50.0  # mean latency of a send
    error_rate: float = 0.0  # share of sends that fail, 0..1
    seed: int | None = None  # of the random source; None: a different run each time

    def __post_init__(self) -> None:
        if not 0 <= self.error_rate <= 1:
            raise ProviderConfigError("error_rate", "must be 0..1")
        if self.latency_ms < 0:
            raise ProviderConfigError("latency_ms", "must be >= 0")


class Simulated(BaseProvider):
    """A provider that sends nothing; its answers are drawn from a seeded random source."""

    def __init__(self, name: str, timeout_seconds: float, options: SimulatedOptions) -> None:
        super().__init__(name, timeout_seconds, MAX_MESSAGE_BYTES)
        self._options = options
        self._random = random.Random(options.seed)
        self.error_rate = options.error_rate
        self.latency_ms = options.latency_ms
        self.down = False
        self.sent = 0
        self.sent_ids: Counter[str] = Counter()
        self.outcomes: Counter[Status] = Counter()

    @classmethod
    def parse_options(cls, raw: Mapping[str, object]) -> SimulatedOptions:
        return read_options(SimulatedOptions, raw)

    @classmethod
    async def open(
        cls, name: str, timeout_seconds: float, options: object, http: aiohttp.ClientSession
    ) -> Simulated:
        """`http` is not used: nothing leaves the process."""
        return cls(name, timeout_seconds, expect(options, SimulatedOptions))

    def set_fault(
        self, error_rate: float | None = None, down: bool = False, latency_ms: float | None = None
    ) -> None:
        """Change behaviour now: `down` answers DOWN "http_503" to every send until cleared;
        `error_rate` and `latency_ms` replace the current values when given."""
        if error_rate is not None:
            if not 0 <= error_rate <= 1:
                raise ValueError(f"error_rate {error_rate} is not in 0..1")
            self.error_rate = error_rate
        if latency_ms is not None:
            self.latency_ms = max(0.0, latency_ms)
        self.down = down

    def clear_fault(self) -> None:
        """Back to the configured latency and error rate, and up."""
        self.set_fault(self._options.error_rate, False, self._options.latency_ms)

    async def send(self, email: Email) -> Outcome:
        """An answer after the configured latency; `outcomes` counts each one given."""
        return await self.exchange(self._answer_later(email.id))

    async def _answer_later(self, message_id: str) -> Outcome:
        jitter = 1 + self._random.uniform(-JITTER, JITTER)
        await asyncio.sleep(self.latency_ms * jitter / 1000)
        outcome = self._answer(message_id)
        self.outcomes[outcome.status] += 1
        return outcome

    def _answer(self, message_id: str) -> Outcome:
        if self.down:
            return Outcome(Status.DOWN, self.name, error="http_503", detail="simulated outage")
        if self._random.random() < self.error_rate:
            return self._failure()
        self.sent += 1
        if len(self.sent_ids) < MAX_RECORDED_IDS or message_id in self.sent_ids:
            self.sent_ids[message_id] += 1
        return Outcome(Status.SENT, self.name, provider_message_id=f"sim-{secrets.token_hex(8)}")

    def _failure(self) -> Outcome:
        draw = self._random.random()
        if draw < 0.5:
            return Outcome(Status.DOWN, self.name, error="http_503", detail="simulated 503")
        if draw < 0.75:
            return Outcome(
                Status.THROTTLED,
                self.name,
                error="http_429",
                detail="simulated 429",
                retry_after=1.0,
            )
        return Outcome(Status.AMBIGUOUS, self.name, error="timeout", detail="simulated timeout")

"""Fault injection on command: the rules a fake provider (`dispatcher.dev.fakes.server`) follows.

A fake records every message it accepts as a `Receipt`. Its `Faults` change what the provider
routes answer, at run time, from Python or over HTTP (`POST /_control`); the control routes are
never faulted.

One rule is active at a time; `latency` adds to every request besides::

    fail(status, count=None, fraction=1.0, message=None, code=None)  the provider's error shape
    throttle(reset_in=1.0, count=None, fraction=1.0)  429 with the fake's rate-limit headers
    hang(count=None, fraction=1.0)   read the request, answer nothing until release() or clear()
    abort(count=None, fraction=1.0)  read the request, then drop the connection (nothing kept)
    reset(count=None, fraction=1.0)  accept the message (a receipt), then drop the connection
                                     before the answer: the ambiguous case, a real duplicate
    latency(ms)                      delay every request by `ms`
    release()                        let hung requests go on to be handled (and accepted)
    clear()                          no latency, no rule, hung requests released

`count` limits a rule to the next N requests; `fraction` faults that share of requests, drawn
from a `random.Random(seed)`. Over HTTP: `POST /_control {"op": "fail", "status": 503}`, and
`GET /_control/receipts?offset=N`, `GET /_control/stats` to read what the fake received.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

ThrottleStyle = Literal["ratelimit", "retry-after", "none"]
Kind = Literal["fail", "throttle", "hang", "abort", "reset"]
RATE_LIMIT = 600
_OPS = frozenset({"fail", "throttle", "hang", "abort", "reset", "latency", "release", "clear"})


@dataclass(frozen=True, slots=True)
class Receipt:
    """One accepted message: what the fake parsed, the id it answered, when it arrived."""

    provider_id: str
    dispatcher_id: str | None
    payload: Any  # the JSON body (SendGrid, SES) or form fields as {name: [values]} (Mailgun)
    received_at: float  # time.time()
    monotonic: float  # time.monotonic(), to measure gaps within one process


@dataclass(slots=True)
class Rule:
    kind: Kind
    count: int | None = None
    fraction: float = 1.0
    status: int = 0
    message: str | None = None
    code: str | None = None
    reset_in: float = 1.0


class Faults:
    """The fault state of one fake; safe to drive from the fake's own event loop."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)
        self._rule: Rule | None = None
        self._released = asyncio.Event()
        self._holding = asyncio.Event()
        self.latency_ms = 0.0
        self.closing = False
        self.injected: Counter[str] = Counter()

    def fail(
        self,
        status: int,
        count: int | None = None,
        fraction: float = 1.0,
        message: str | None = None,
        code: str | None = None,
    ) -> None:
        self._set(Rule("fail", count, fraction, status=status, message=message, code=code))

    def throttle(
        self, reset_in: float = 1.0, count: int | None = None, fraction: float = 1.0
    ) -> None:
        self._set(Rule("throttle", count, fraction, status=429, reset_in=reset_in))

    def hang(self, count: int | None = None, fraction: float = 1.0) -> None:
        self._set(Rule("hang", count, fraction))

    def abort(self, count: int | None = None, fraction: float = 1.0) -> None:
        self._set(Rule("abort", count, fraction))

    def reset(self, count: int | None = None, fraction: float = 1.0) -> None:
        self._set(Rule("reset", count, fraction))

    def latency(self, ms: float) -> None:
        self.latency_ms = max(0.0, float(ms))

    def release(self) -> None:
        self._released.set()
        self._released = asyncio.Event()

    def clear(self) -> None:
        self._rule = None
        self.latency_ms = 0.0
        self.release()

    def take(self) -> Rule | None:
        """The rule that applies to the request now arriving, if any."""
        rule = self._rule
        if rule is None or (rule.fraction < 1 and self._random.random() >= rule.fraction):
            return None
        if rule.count is not None:
            rule.count -= 1
            if rule.count <= 0:
                self._rule = None
        self.injected[rule.kind] += 1
        return rule

    async def hold(self) -> None:
        """Hold one request until `release`."""
        self._holding.set()
        await self._released.wait()

    async def wait_holding(self) -> None:
        """Wait until a request is being held by `hang`."""
        await self._holding.wait()

    def apply(self, op: str, args: dict[str, Any]) -> None:
        """Run one control operation by name (the `POST /_control` body)."""
        if op not in _OPS:
            raise ValueError(f"unknown op {op!r}; valid: {', '.join(sorted(_OPS))}")
        method: Callable[..., None] = getattr(self, op)
        method(**args)

    def _set(self, rule: Rule) -> None:
        if not 0 <= rule.fraction <= 1 or (rule.count is not None and rule.count < 1):
            raise ValueError("fraction must be 0..1 and count at least 1")
        self._rule = rule

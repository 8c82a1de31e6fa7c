"""Virtual providers: answers scripted as functions of virtual time, in the outcome vocabulary.

A `Profile` says how one provider behaves at virtual time `t`::

    latency      lognormal around median_ms * slowdown(t) (sigma `sigma`); past the timeout the
                 answer is AMBIGUOUS "timeout", as `providers.base.timed` makes it
    failures     a share error_rate(t) of calls answer `failure` (DOWN, AMBIGUOUS, REJECTED)
                 after about failure_ms
    quota(t)     sends allowed per `quota_seconds` window (None: unlimited); past it, THROTTLED
                 with retry_after = the seconds until the window resets (the reset header)

`VirtualProvider.send` draws its answer when the send starts, sleeps the latency on the
`VirtualTime`, logs the send and returns the `Outcome`.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.sim.clock import VirtualTime
from dispatcher.message import Email
from providers.base import Outcome, Status

Curve = Callable[[float], float]


def constant(value: float) -> Curve:
    return lambda t: value


def during(start: float, end: float, inside: float, outside: float = 0.0) -> Curve:
    """`inside` while start <= t < end, else `outside`."""
    return lambda t: inside if start <= t < end else outside


def flapping(start: float, end: float, period: float, bad: float = 0.5) -> Curve:
    """1 during the first `bad` share of every `period` from `start` until `end`, else 0."""
    return lambda t: 1.0 if start <= t < end and (t - start) % period < bad * period else 0.0


def decaying(start: float, full_until: float, clear_at: float) -> Curve:
    """1 from `start` to `full_until`, then falling linearly to 0 at `clear_at`."""

    def curve(t: float) -> float:
        if t < start or t >= clear_at:
            return 0.0
        if t < full_until:
            return 1.0
        return (clear_at - t) / (clear_at - full_until)

    return curve


def no_quota(t: float) -> int | None:
    return None


@dataclass(frozen=True, slots=True)
class Profile:
    median_ms: float = 80.0
    sigma: float = 0.3
    slowdown: Curve = field(default=constant(1.0))
    error_rate: Curve = field(default=constant(0.0))
    failure: Status = Status.DOWN
    failure_ms: float = 20.0
    quota: Callable[[float], int | None] = no_quota
    quota_seconds: float = 10.0
    timeout_seconds: float = 15.0


@dataclass(slots=True)
class SendLog:
    """Every send of a run: provider index, start, end (virtual s) and outcome status."""

    providers: tuple[str, ...]
    sends: list[tuple[int, float, float, Status]] = field(default_factory=list)
    accepted: Counter[str] = field(default_factory=Counter)  # message id -> times accepted


class VirtualProvider:
    def __init__(
        self,
        name: str,
        profile: Profile,
        clock: VirtualTime,
        rng: random.Random,
        log: SendLog,
    ) -> None:
        self._name = name
        self._profile = profile
        self._clock = clock
        self._rng = rng
        self._log = log
        self._index = log.providers.index(name)
        self._window = -1
        self._used = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def max_message_bytes(self) -> int:
        return 10_000_000

    async def send(self, email: Email) -> Outcome:
        start = self._clock.now
        outcome = self._answer(start)
        await self._clock.sleep(outcome.latency)
        self._log.sends.append((self._index, start, self._clock.now, outcome.status))
        if outcome.status is Status.SENT:
            self._log.accepted[email.id] += 1
        return outcome

    async def aclose(self) -> None:
        return None

    def _answer(self, t: float) -> Outcome:
        p, rng = self._profile, self._rng
        reset = self._over_quota(t)
        if reset is not None:
            latency = self._latency(p.failure_ms)
            return Outcome(
                Status.THROTTLED, self._name, latency, error="http_429", retry_after=reset
            )
        if rng.random() < p.error_rate(t):
            latency = self._latency(p.failure_ms)
            return Outcome(p.failure, self._name, latency, error=f"sim_{p.failure.value}")
        latency = self._latency(p.median_ms * p.slowdown(t))
        if latency > p.timeout_seconds:
            return Outcome(Status.AMBIGUOUS, self._name, p.timeout_seconds, error="timeout")
        return Outcome(Status.SENT, self._name, latency, provider_message_id=f"{self._name}-id")

    def _latency(self, median_ms: float) -> float:
        return median_ms / 1000 * math.exp(self._rng.gauss(0.0, self._profile.sigma))

    def _over_quota(self, t: float) -> float | None:
        """Seconds until the quota window resets (whole, as a header says) when this send is
        over the quota; None when it fits."""
        quota = self._profile.quota(t)
        if quota is None:
            return None
        window = int(t // self._profile.quota_seconds)
        if window != self._window:
            self._window, self._used = window, 0
        if self._used < quota:
            self._used += 1
            return None
        return float(math.ceil((window + 1) * self._profile.quota_seconds - t))

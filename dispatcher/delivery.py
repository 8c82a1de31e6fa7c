"""One delivery attempt of one email: try providers in the strategy's order, classify, decide.

The decision table (see providers/base.py for the outcome vocabulary)::

    SENT                    -> record SENT, delete
    REJECTED                -> record ERROR, delete; never failed over (it would fail anywhere)
    THROTTLED / DOWN        -> try the next provider; when none is left, retry later
    AMBIGUOUS               -> stop here (another provider could double-send); then, by
                               dispatch.on_ambiguous: retry later (retry_same: on that provider
                               only, see `keep_to`; fail_over: on any), or ERROR to the DLQ
    retry with attempts >= max_attempts -> ERROR to the DLQ with the reason
    retry of a message received max_receives times -> ERROR to the DLQ with the reason

Misconfigured providers (bad key, unverified sender) and throttling (429) do not use up a
message's attempts.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from dispatcher.admission import Route
from dispatcher.config import DispatchSettings
from dispatcher.health.base import Observation, Permit
from dispatcher.ledger import RecordStatus
from dispatcher.message import Email
from providers.base import Outcome, Provider, Status


class Action(enum.StrEnum):
    DELETE = "delete"
    RETRY = "retry"  # back on the queue after `delay` seconds
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class Decision:
    status: RecordStatus
    action: Action
    tried: tuple[Outcome, ...]
    reason: str = ""
    delay: int = 0
    count_attempt: bool = True
    observations: tuple[Observation, ...] = ()  # for the health windows

    @property
    def last(self) -> Outcome | None:
        return self.tried[-1] if self.tried else None

    @property
    def ambiguous_via(self) -> str | None:
        names = [o.provider for o in self.tried if o.status is Status.AMBIGUOUS]
        return ",".join(names) or None


class Gate(Protocol):
    """Who may be tried (a failover needs a closed circuit and a rate token), the observation
    that goes to the health windows for each send (stamped with the breaker `generation` its
    route was planned under, or its probe permit's), and where an unused permit goes back."""

    async def admit(self, provider: str) -> bool: ...

    def observe(self, outcome: Outcome, permit: Permit | None, generation: int) -> Observation: ...

    async def release(self, permit: Permit) -> None: ...


async def attempt(
    email: Email,
    route: Route,
    gate: Gate,
    attempts_before: int,
    policy: DispatchSettings,
    rng: random.Random,
    calls: list[str] | None = None,
) -> Decision:
    """Send along `route` until an answer settles it; `attempts_before` were recorded. Each
    provider's name is appended to `calls` before it is called, so that an attempt cancelled
    mid-call shows which provider may have accepted the message. A probe permit reserved for a
    first choice that is not sent to is released."""
    tried: list[Outcome] = []
    observed: list[Observation] = []
    for position, provider in enumerate(route.order):
        reserved = position == 0 and route.first_admitted
        if provider.max_message_bytes < email.size:
            if reserved and route.permit is not None:
                await gate.release(route.permit)
            continue
        if not reserved and not await gate.admit(provider.name):
            continue
        if calls is not None:
            calls.append(provider.name)
        outcome = await provider.send(email)
        tried.append(outcome)
        permit = route.permit if reserved else None
        observed.append(gate.observe(outcome, permit, route.generation(provider.name)))
        if not outcome.failover:
            break
    decision = decide(tuple(tried), attempts_before, policy, rng)
    return replace(decision, observations=tuple(observed))


def decide(
    tried: tuple[Outcome, ...], attempts_before: int, policy: DispatchSettings, rng: random.Random
) -> Decision:
    """The decision table above, applied to the answers of one attempt."""
    last = tried[-1] if tried else None
    if last is not None and last.status is Status.SENT:
        return Decision(RecordStatus.SENT, Action.DELETE, tried)
    if last is not None and last.status is Status.REJECTED:
        reason = f"rejected by {last.provider}: {last.error}"
        return Decision(RecordStatus.ERROR, Action.DELETE, tried, reason=reason)
    if last is not None and last.status is Status.AMBIGUOUS and policy.on_ambiguous == "error":
        reason = f"ambiguous via {last.provider}: {last.error}"
        return Decision(RecordStatus.ERROR, Action.DEAD_LETTER, tried, reason=reason)
    return _retry(tried, attempts_before, policy, rng)


def bound_receives(decision: Decision, receives: int, policy: DispatchSettings) -> Decision:
    """A retry of a message SQS has delivered `max_receives` times goes to the DLQ instead.

    Attempts bound the retries that reach a provider; this bounds the rest (no provider
    available, only throttled or misconfigured ones, an internal error), which never use up an
    attempt and would otherwise cycle for ever on a queue without a redrive policy."""
    if decision.action is not Action.RETRY or receives < policy.max_receives:
        return decision
    return replace(
        decision,
        status=RecordStatus.ERROR,
        action=Action.DEAD_LETTER,
        reason=f"max_receives {policy.max_receives} reached; last {decision.reason}",
        delay=0,
    )


def keep_to(route: Route, provider: str, configured: Sequence[Provider]) -> Permit | None:
    """Under `retry_same`, after an ambiguous outcome via `provider` (the claim said so): the
    route goes to that provider only, admitted as a failover is (a closed circuit and a rate
    token), or to none while it cannot take the send (retried later). The probe permit booked
    for the planned first choice is returned, for the caller to hand back. A route stays as
    planned when `provider` is "" or no longer configured."""
    if not provider or all(p.name != provider for p in configured):
        return None
    if route.order and route.order[0].name == provider:  # planned so: keep what it booked
        route.order = route.order[:1]
        return None
    dropped = route.permit
    route.order = [p for p in route.order if p.name == provider]
    route.first_admitted, route.permit, route.delay = False, None, 0.0
    return dropped


def _retry(
    tried: tuple[Outcome, ...], attempts_before: int, policy: DispatchSettings, rng: random.Random
) -> Decision:
    # Only a real try counts: not a misconfigured provider, not a 429 (a storm of them would
    # otherwise dead-letter mail that was never refused).
    counted = any(not o.misconfigured and o.status is not Status.THROTTLED for o in tried)
    attempts = attempts_before + (1 if counted else 0)
    last = tried[-1] if tried else None
    cause = f"{last.provider}: {last.error or last.status}" if last else "no provider available"
    if counted and attempts >= policy.max_attempts:
        return Decision(
            RecordStatus.ERROR,
            Action.DEAD_LETTER,
            tried,
            count_attempt=True,
            reason=f"max_attempts {policy.max_attempts} reached; last {cause}",
        )
    retry_after = max((o.retry_after or 0.0 for o in tried), default=0.0)
    delay = max(backoff(attempts, policy, rng), int(retry_after + 0.999))
    return Decision(
        RecordStatus.QUEUED, Action.RETRY, tried, reason=cause, delay=delay, count_attempt=counted
    )


def backoff(attempts: int, policy: DispatchSettings, rng: random.Random) -> int:
    """Growing, jittered delay in whole seconds: base * 2^(n-1), capped, scaled by [0.5, 1]."""
    ceiling = min(
        policy.backoff_max_seconds, policy.backoff_base_seconds * 2 ** max(0, attempts - 1)
    )
    return max(1, int(ceiling * rng.uniform(0.5, 1.0) + 0.5))

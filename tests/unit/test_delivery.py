"""The decision table of one delivery attempt, with scripted providers."""

from __future__ import annotations

import asyncio
import random

import pytest

from dispatcher.admission import Route
from dispatcher.config import DispatchSettings
from dispatcher.config_sections import AmbiguousPolicy
from dispatcher.delivery import Action, attempt, backoff, keep_to
from dispatcher.health.base import Observation, Permit
from dispatcher.ledger import RecordStatus
from dispatcher.message import Address, Email
from dispatcher.slots import Slots
from providers.base import Outcome, Provider, Status
from tests.support.scripted import ScriptedProvider

EMAIL = Email(
    id="d-1",
    sender=Address("s@example.com"),
    to=(Address("r@example.org"),),
    subject="s",
    text="t",
    size=1000,
)


class OpenGate:
    """Admits every provider; observations at their route's generation; keeps what is
    released."""

    def __init__(self) -> None:
        self.released: list[Permit] = []

    async def admit(self, provider: str) -> bool:
        return True

    def observe(self, outcome: Outcome, permit: Permit | None, generation: int) -> Observation:
        return Observation.of(outcome, generation, permit)

    async def release(self, permit: Permit) -> None:
        self.released.append(permit)


GATE = OpenGate()


def route(*providers: Provider) -> Route:
    return Route(list(providers))


POLICY = DispatchSettings(max_attempts=3, backoff_base_seconds=2, backoff_max_seconds=60)


async def test_sent_stops_the_chain() -> None:
    a, b = ScriptedProvider("a"), ScriptedProvider("b")
    decision = await attempt(EMAIL, route(a, b), GATE, 0, POLICY, random.Random(1))
    assert (decision.status, decision.action) == (RecordStatus.SENT, Action.DELETE)
    assert (a.received, b.received) == (["d-1"], [])


async def test_rejected_is_final_and_never_failed_over() -> None:
    a, b = ScriptedProvider("a", [Status.REJECTED]), ScriptedProvider("b")
    decision = await attempt(EMAIL, route(a, b), GATE, 0, POLICY, random.Random(1))
    assert (decision.status, decision.action) == (RecordStatus.ERROR, Action.DELETE)
    assert b.received == []
    assert "rejected by a" in decision.reason


@pytest.mark.parametrize("failure", [Status.THROTTLED, Status.DOWN])
async def test_throttled_and_down_fail_over(failure: Status) -> None:
    a, b = ScriptedProvider("a", [failure]), ScriptedProvider("b")
    decision = await attempt(EMAIL, route(a, b), GATE, 0, POLICY, random.Random(1))
    assert decision.status is RecordStatus.SENT
    assert [o.provider for o in decision.tried] == ["a", "b"]
    assert [(o.provider, o.status) for o in decision.observations] == [
        ("a", failure),
        ("b", Status.SENT),
    ]


async def test_a_failover_needs_admission_and_a_reserved_first_choice_does_not() -> None:
    class ClosedToB(OpenGate):
        async def admit(self, provider: str) -> bool:
            return provider != "b"

    a, b, c = ScriptedProvider("a", [Status.DOWN]), ScriptedProvider("b"), ScriptedProvider("c")
    reserved = Route([a, b, c], first_admitted=True)
    decision = await attempt(EMAIL, reserved, ClosedToB(), 0, POLICY, random.Random(1))
    assert [o.provider for o in decision.tried] == ["a", "c"]
    assert b.received == []


async def test_ambiguous_stops_failover_and_retries_later() -> None:
    a, b = ScriptedProvider("a", [Status.AMBIGUOUS]), ScriptedProvider("b")
    decision = await attempt(EMAIL, route(a, b), GATE, 0, POLICY, random.Random(1))
    assert (decision.status, decision.action) == (RecordStatus.QUEUED, Action.RETRY)
    assert b.received == []
    assert decision.ambiguous_via == "a"
    strict = DispatchSettings(on_ambiguous="error")
    only = route(ScriptedProvider("a", [Status.AMBIGUOUS]))
    decision = await attempt(EMAIL, only, GATE, 0, strict, random.Random(1))
    assert (decision.status, decision.action) == (RecordStatus.ERROR, Action.DEAD_LETTER)


@pytest.mark.parametrize("policy", ["retry_same", "fail_over"])
async def test_an_ambiguous_answer_is_retried_after_a_delay_under_both_retry_policies(
    policy: AmbiguousPolicy,
) -> None:
    only = route(ScriptedProvider("a", [Status.AMBIGUOUS]))
    settings = DispatchSettings(on_ambiguous=policy, backoff_base_seconds=2)
    decision = await attempt(EMAIL, only, GATE, 0, settings, random.Random(1))
    assert (decision.action, decision.ambiguous_via) == (Action.RETRY, "a")
    assert decision.delay >= 1


def test_keep_to_sends_to_the_ambiguous_provider_only_or_to_none() -> None:
    a, b, c = (ScriptedProvider(n) for n in "abc")
    planned_b = Route([b, a, c], first_admitted=True, delay=0.5)
    assert keep_to(planned_b, "a", [a, b, c]) is None
    assert ([p.name for p in planned_b.order], planned_b.first_admitted) == (["a"], False)
    assert planned_b.delay == 0.0
    planned_a = Route([a, b], first_admitted=True)
    keep_to(planned_a, "a", [a, b, c])
    assert ([p.name for p in planned_a.order], planned_a.first_admitted) == (["a"], True)
    a_is_open = Route([b, c], first_admitted=True)
    keep_to(a_is_open, "a", [a, b, c])
    assert a_is_open.order == []  # no other provider: retried later
    gone = Route([b, c], first_admitted=True)
    keep_to(gone, "x", [a, b, c])  # no longer configured: as planned
    assert [p.name for p in gone.order] == ["b", "c"]


async def test_exhausted_retries_then_dead_letter_at_max_attempts() -> None:
    down = ScriptedProvider("a", default=Status.DOWN)
    retry = await attempt(EMAIL, route(down), GATE, 1, POLICY, random.Random(1))
    assert (retry.action, retry.count_attempt) == (Action.RETRY, True)
    assert 2 <= retry.delay <= 4  # attempt 2: base 2 * 2^1 = 4, jittered to [2, 4]
    dead = await attempt(EMAIL, route(down), GATE, 2, POLICY, random.Random(1))
    assert (dead.status, dead.action) == (RecordStatus.ERROR, Action.DEAD_LETTER)
    assert "max_attempts 3" in dead.reason


async def test_misconfigured_providers_do_not_use_up_attempts() -> None:
    bad_key = Outcome(Status.DOWN, "a", error="http_401", misconfigured=True)
    only = route(ScriptedProvider("a", [bad_key]))
    decision = await attempt(EMAIL, only, GATE, 2, POLICY, random.Random(1))
    assert (decision.action, decision.count_attempt) == (Action.RETRY, False)


async def test_throttle_reset_sets_the_minimum_delay() -> None:
    slow_down = Outcome(Status.THROTTLED, "a", error="http_429", retry_after=42.2)
    only = route(ScriptedProvider("a", [slow_down]))
    decision = await attempt(EMAIL, only, GATE, 2, POLICY, random.Random(1))
    assert decision.delay == 43
    # A 429 is not a try: at attempt 2 of 3 it goes back to the queue, not to the DLQ.
    assert (decision.action, decision.count_attempt) == (Action.RETRY, False)


async def test_providers_too_small_for_the_message_are_skipped() -> None:
    small, big = ScriptedProvider("small", max_message_bytes=10), ScriptedProvider("big")
    decision = await attempt(EMAIL, route(small, big), GATE, 0, POLICY, random.Random(1))
    assert decision.status is RecordStatus.SENT
    assert small.received == []


def test_backoff_grows_is_jittered_and_capped() -> None:
    rng = random.Random(3)
    delays = [[backoff(n, POLICY, rng) for _ in range(200)] for n in range(1, 8)]
    assert all(1 <= d <= 2 for d in delays[0])
    assert max(delays[2]) <= 8
    assert min(delays[2]) >= 4
    assert max(delays[6]) <= 60
    assert len(set(delays[5])) > 10  # jitter spreads retries


async def test_slots_never_hand_out_more_than_the_limit() -> None:
    slots = Slots(5)
    assert await slots.acquire(10) == 5  # capped at the limit, not the batch size
    waiter = asyncio.create_task(slots.acquire(2))
    await asyncio.sleep(0)
    assert not waiter.done()
    slots.release(1)
    await asyncio.sleep(0)
    assert not waiter.done()
    slots.release(1)
    assert await waiter == 2
    assert slots.used == 5

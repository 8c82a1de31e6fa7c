"""The adaptive in-flight limit (AIMD on latency), the resizable slots, and the pending-age
latency floor the router gives strategies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dispatcher.concurrency import AdaptiveLimit
from dispatcher.config import ConfigError, DispatchSettings
from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair
from dispatcher.health.base import ProviderHealth
from dispatcher.health.view import routing_snapshot
from dispatcher.slots import Slots
from providers.base import Outcome, Status
from tests.support.configs import adaptive_pair
from tests.support.harness import enqueue, eventually, running, settings


def limiter(ceiling: int = 512, floor: int = 0, tolerance: float = 2.0) -> AdaptiveLimit:
    return AdaptiveLimit(
        DispatchSettings(max_in_flight=ceiling, min_in_flight=floor, latency_tolerance=tolerance)
    )


def answers(limit: AdaptiveLimit, provider: str, latency: float, count: int = 20) -> None:
    for _ in range(count):
        limit.observe(Outcome(Status.SENT, provider, latency=latency))


def test_the_floor_defaults_to_32_and_never_exceeds_the_ceiling() -> None:
    assert (limiter(512).floor, limiter(512).limit) == (32, 512)
    assert limiter(8).floor == 8
    assert limiter(8).fixed
    assert limiter(512, floor=100).floor == 100


def test_slower_answers_cut_the_limit_multiplicatively_down_to_the_floor() -> None:
    limit = limiter(512)
    answers(limit, "a", 0.050)
    assert limit.adjust(peak_in_flight=512) == 512  # starts at the ceiling, cannot grow
    history = []
    for _ in range(12):
        answers(limit, "a", 0.500)  # 10x the baseline
        history.append(limit.adjust(peak_in_flight=512))
    assert history[:3] == [384, 288, 216]
    assert history[-1] == 32  # never below the floor


def test_healthy_busy_intervals_grow_the_limit_additively_and_idle_ones_do_not() -> None:
    limit = limiter(512)
    answers(limit, "a", 0.050)
    limit.adjust(512)
    for _ in range(3):
        answers(limit, "a", 0.500)
        limit.adjust(512)
    assert limit.limit == 216
    answers(limit, "a", 0.050)
    assert limit.adjust(peak_in_flight=50) == 216  # not using it: no evidence it can grow
    answers(limit, "a", 0.055)
    assert limit.adjust(peak_in_flight=216) == 232  # + ceiling / 32


def test_each_provider_is_judged_against_its_own_baseline() -> None:
    limit = limiter(512)
    answers(limit, "fast", 0.020)
    answers(limit, "slow", 0.800)  # slow by nature, not congested
    limit.adjust(512)
    answers(limit, "fast", 0.022)
    answers(limit, "slow", 0.790)
    assert limit.adjust(512) == 512
    # A brownout of one provider the strategy routes around barely moves the median.
    answers(limit, "fast", 0.021, count=40)
    answers(limit, "slow", 16.0, count=2)
    assert limit.adjust(512) == 512


def test_throttling_counts_as_congestion_and_few_answers_give_no_verdict() -> None:
    limit = limiter(512)
    answers(limit, "a", 0.05)
    limit.adjust(512)
    answers(limit, "a", 0.05, count=10)
    for _ in range(10):
        limit.observe(Outcome(Status.THROTTLED, "a", latency=0.01))
    assert limit.adjust(512) == 384
    answers(limit, "a", 5.0, count=3)
    assert limit.adjust(512) == 384  # 3 answers: no verdict


def test_a_lasting_slowdown_becomes_the_new_baseline() -> None:
    limit = limiter(512)
    answers(limit, "a", 0.05)
    limit.adjust(512)
    for _ in range(60):
        answers(limit, "a", 0.15)  # 3x, for a minute
        limit.adjust(limit.limit)
    assert limit.limit > 256  # cut at first, then accepted and grown back


def test_the_config_rejects_a_floor_above_the_ceiling() -> None:
    one = [{"name": "a", "type": "simulated"}]
    with pytest.raises(ConfigError, match=r"dispatch\.min_in_flight"):
        settings("http://q", "http://e", "redis://r", one, max_in_flight=8, min_in_flight=9)
    with pytest.raises(ConfigError, match=r"dispatch\.latency_tolerance"):
        settings("http://q", "http://e", "redis://r", one, latency_tolerance=0.5)


async def test_slots_resize_wakes_waiters_and_keeps_slots_taken_above_a_lower_limit() -> None:
    slots = Slots(10)
    assert await slots.acquire(10) == 10
    waiter = asyncio.create_task(slots.acquire(5))
    await asyncio.sleep(0)
    slots.resize(4)  # lower: the 10 taken stay taken
    assert slots.used == 10
    slots.release(8)
    await asyncio.sleep(0)
    assert not waiter.done()  # 2 used + min(5, 4) > 4
    slots.release(2)
    assert await asyncio.wait_for(waiter, 1) == 4  # capped at the new limit
    slots.resize(20)
    assert await asyncio.wait_for(slots.acquire(10), 1) == 10
    assert slots.take_peak() == 14
    assert slots.take_peak() == 14  # the next period starts from what is in use


def test_pending_age_floors_a_known_latency_but_never_invents_one() -> None:
    config = settings(
        "http://q",
        "http://e",
        "redis://r",
        [{"name": "a", "type": "simulated"}, {"name": "b", "type": "simulated"}],
    )
    report = {
        "a": ProviderHealth("a", at=100.0, ewma_ms=20.0, last_seen=100.0),
        "b": ProviderHealth("b", at=100.0),  # no data yet
    }
    views = routing_snapshot(
        report, config.providers, {"a": 5, "b": 5}, pending_ms={"a": 300.0, "b": 300.0}
    ).providers
    assert views[0].latency_ms == 300.0  # its sends are late: they count before they answer
    assert views[1].latency_ms is None
    calm = routing_snapshot(report, config.providers, {"a": 5}, pending_ms={"a": 8.0})
    assert calm.providers[0].latency_ms == 20.0


@pytest.mark.parametrize("sqs_endpoint", ["fauxqs"], indirect=True)
async def test_the_worker_cuts_its_limit_when_every_provider_slows_and_regrows_it(
    sqs: Any, queues: QueuePair, redis_url: str, sqs_endpoint: str
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        for fake in (sg, mg):
            fake.faults.latency(10)
        config = adaptive_pair(
            queues, sqs_endpoint, redis_url, sg, mg, max_in_flight=64, min_in_flight=8
        )
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(6000)])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent >= 300, 60, "300 sent at full speed")
            assert worker.slots.limit == 64
            for fake in (sg, mg):
                fake.faults.latency(200)  # both 20x slower: the providers are saturated
            await eventually(lambda: worker.slots.limit <= 16, 30, "the limit cut to <= 16")
            low = worker.slots.limit
            for fake in (sg, mg):
                fake.faults.latency(10)
            await eventually(lambda: worker.slots.limit >= low + 6, 30, "the limit grown back")
    delivered = [r.dispatcher_id for r in sg.receipts + mg.receipts]
    assert len(delivered) == len(set(delivered))  # nothing twice
    assert len(delivered) == worker.stats.sent


def test_a_small_limit_counts_as_used_when_no_receive_batch_fits() -> None:
    limit = limiter(64, floor=8)
    answers(limit, "a", 0.010)
    limit.adjust(64)
    for _ in range(4):
        answers(limit, "a", 0.200)
        limit.adjust(64)
    assert limit.limit == 20
    answers(limit, "a", 0.010)
    # One poller holds 10 slots and the next batch of 10 does not fit: the limit binds.
    assert limit.adjust(peak_in_flight=11) == 22

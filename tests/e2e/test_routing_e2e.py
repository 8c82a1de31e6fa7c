"""Health-driven routing end to end: moto SQS, real Redis (Lua windows and breakers), fakes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeMailgun, FakeSendGrid
from dispatcher.dev.fakes.faults import Receipt
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair
from dispatcher.health.base import Observation
from dispatcher.health.redis import RedisHealth
from dispatcher.ledger import Ledger
from dispatcher.status import read_status, render
from providers.base import Status
from strategies.base import Circuit
from tests.support.configs import BREAKER, adaptive_pair, mailgun, sendgrid
from tests.support.harness import enqueue, eventually, running, settings, statuses


async def all_sent(redis: Redis, ids: list[str]) -> dict[str, int]:
    book = Ledger(redis, "t:", 3600)
    return statuses([await book.get(i) for i in ids])


async def test_outage_opens_the_breaker_moves_traffic_and_probes_bring_it_back(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.fail(503)
        providers = [sendgrid(sg, **BREAKER), mailgun(mg, **BREAKER)]
        config = settings(
            queues.url, sqs_endpoint, redis_url, providers, strategy="adaptive", max_in_flight=8
        )
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(200)])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent == 200, 60, "200 sent during the outage")
            failed_during_outage = sg.answered[503]
            report = await worker.router.health.snapshot()
            assert report["sendgrid"].circuit is not Circuit.CLOSED
            sg.faults.clear()
            # Enough after the recovery for slow start to bring traffic back within the run.
            await enqueue(sqs, queues.url, [email_doc(i) for i in range(200, 1000)])
            await eventually(lambda: worker.stats.sent == 1000, 60, "1000 sent after recovery")
            recovered = await worker.router.health.snapshot()
    ids = [f"msg-{i:05d}" for i in range(1000)]
    delivered = sorted(r.dispatcher_id or "" for r in sg.receipts + mg.receipts)
    assert delivered == ids  # nothing lost, nothing twice
    assert await all_sent(redis, ids) == {"SENT": 1000}
    # The breaker opened after the fast trip (5 in a row) plus sends already in flight, and
    # probes (one permit at a time) found the provider healthy again.
    assert failed_during_outage <= 5 + 8 + 3
    assert recovered["sendgrid"].circuit is Circuit.CLOSED
    assert len(sg.receipts) >= 20  # traffic came back to it


SHIFT_SECONDS = 3.0  # the brownout target: the slow provider's share under 5 % by then
LATE = 300  # sends measured after the shift
# Latencies large enough that a loaded machine's event-loop lag, which both providers' measured
# latencies carry, does not blur the 20x ratio much (at 20 ms it blurred it to about 5x).
HEALTHY_MS = 50


# A wall-clock race (the share 3 s after the change): on a machine busy with other work it
# failed 3 times in this session's full runs, and never alone (11 runs). Timed tests stay out of
# `make test`; `SLOW=1 make test` runs it, and the simulator measures brownouts in virtual time.
@pytest.mark.slow
@pytest.mark.parametrize("sqs_endpoint", ["fauxqs"], indirect=True)
async def test_brownout_cuts_the_slow_providers_share_within_seconds(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.latency(HEALTHY_MS)
        mg.faults.latency(HEALTHY_MS)
        config = adaptive_pair(queues, sqs_endpoint, redis_url, sg, mg, max_in_flight=16)
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(3000)])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent >= 200, 60, "200 sent while healthy")
            healthy_share = len(sg.receipts) / (len(sg.receipts) + len(mg.receipts))
            sg.faults.latency(20 * HEALTHY_MS)  # a brownout: 20x slower
            # An answer arrives 1 s after its send started: count sends started after the
            # shift time by the answers that arrived 1 s later.
            after = time.time() + SHIFT_SECONDS + 20 * HEALTHY_MS / 1000

            def late(receipts: list[Receipt]) -> list[Receipt]:
                return [r for r in receipts if r.received_at > after]

            await eventually(
                lambda: len(late(sg.receipts)) + len(late(mg.receipts)) >= LATE,
                60,
                f"{LATE} sends after the shift",
            )
    slow, fast = len(late(sg.receipts)), len(late(mg.receipts))
    assert 0.3 < healthy_share < 0.7  # equal peers share evenly
    assert slow / (slow + fast) < 0.05, (slow, fast)
    delivered = [r.dispatcher_id for r in sg.receipts + mg.receipts]
    assert len(delivered) == len(set(delivered))  # nothing twice


async def test_priority_keeps_all_traffic_on_the_first_healthy_provider(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    async with FakeSendGrid() as sg, FakeMailgun() as mg:
        sg.faults.latency(100)
        mg.faults.latency(5)  # faster, but second in priority
        config = settings(
            queues.url, sqs_endpoint, redis_url, [sendgrid(sg), mailgun(mg)], strategy="priority"
        )
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(100)])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent == 100, 60, "100 sent")
    assert len(sg.receipts) == 100
    assert mg.receipts == []


async def test_status_shows_breakers_rates_and_weights(redis: Redis, redis_url: str) -> None:
    config = settings(
        "http://127.0.0.1:1/q",
        "http://127.0.0.1:1",
        redis_url,
        [{"name": "a", "type": "simulated"}, {"name": "b", "type": "simulated"}],
    )
    health = RedisHealth(redis, "t:", config.providers, config.routing)
    await health.record(
        [Observation("a", Status.DOWN, 0.01)] * 6 + [Observation("b", Status.SENT, 0.05)] * 10
    )
    rows = {row["provider"]: row for row in await read_status(config)}
    assert rows["a"]["circuit"] == "open"  # five failures in a row trip it
    assert rows["a"]["error_rate"] == 1.0
    assert rows["a"]["open_for_s"] > 0
    assert (rows["b"]["circuit"], rows["b"]["error_rate"], rows["b"]["weight"]) == (
        "closed",
        0.0,
        1.0,
    )
    assert rows["b"]["p50_ms"] is not None
    table = render(list(rows.values()), as_json=False)
    assert table.splitlines()[0].startswith("provider")
    assert "open" in table

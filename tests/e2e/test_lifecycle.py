"""`dispatcher run` as a real process: SIGTERM under load exits 0 and loses nothing; its logs
are JSON with one canonical line per send and no personal data; bad config exits 2."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, queue_depth
from dispatcher.ledger import Ledger
from tests.support.configs import CONFIG, sendgrid
from tests.support.harness import (
    enqueue,
    eventually,
    records,
    running,
    settings,
    start_dispatcher,
    statuses,
)


async def assert_sent_once(
    sqs: Any, queue_url: str, redis: Redis, fake: FakeSendGrid, ids: list[str]
) -> None:
    """Every id recorded SENT, accepted by `fake` exactly once, and off the queue."""
    assert await records(redis, ids) == {"SENT": len(ids)}
    assert await queue_depth(sqs, queue_url) == 0
    assert sorted(r.dispatcher_id or "" for r in fake.receipts) == ids


async def test_sigterm_under_load_drains_exits_zero_and_loses_nothing(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    sqs_endpoint: str,
    tmp_path: Path,
) -> None:
    count = 200
    ids = [f"msg-{i:05d}" for i in range(count)]
    await enqueue(sqs, queues.url, [email_doc(i) for i in range(count)])
    async with FakeSendGrid() as sg:
        sg.faults.latency(300)
        config = tmp_path / "dispatcher.toml"
        config.write_text(
            CONFIG.format(
                url=queues.url, endpoint=sqs_endpoint, redis=redis_url, sendgrid=sg.base_url
            )
        )
        process = await start_dispatcher(config, sg.api_key)
        await eventually(lambda: len(sg.receipts) >= 40, 60, "sends under way")
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()[-2000:]
        lines = [orjson.loads(line) for line in stdout.splitlines()]
        sent_before = len(sg.receipts)
        assert 40 <= sent_before < count  # stopped part-way, under load

        # Nothing was lost: a fresh worker sends the rest, and nothing goes out twice.
        sg.faults.clear()
        async with running(
            settings(
                queues.url,
                sqs_endpoint,
                redis_url,
                [
                    {
                        "name": "sendgrid",
                        "type": "sendgrid",
                        "api_key": sg.api_key,
                        "base_url": sg.base_url,
                    }
                ],
            )
        ) as worker:
            await eventually(lambda: len(sg.receipts) >= count, 60, "the rest sent")
            await eventually(lambda: worker.stats.settled >= count - sent_before, 30, "settled")
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == ids
    book = Ledger(redis, "t:", 3600)
    assert statuses([await book.get(i) for i in ids]) == {"SENT": count}
    assert await queue_depth(sqs, queues.url) == 0

    events = [line["event"] for line in lines]
    assert events.count("send") == sent_before  # one canonical line per send
    assert "draining" in events
    assert events[-1] == "worker_stopped"
    canonical = next(line for line in lines if line["event"] == "send")
    assert {"id", "provider", "outcome", "latency_ms", "attempt", "status"} <= set(canonical)
    text = stdout.decode()
    assert "@example.org" not in text  # no recipient address
    assert "Order " not in text  # no subject
    assert "Thanks for your order" not in text  # no body


async def test_run_with_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        CONFIG.format(
            url="http://q", endpoint="http://e", redis="redis://r", sendgrid="http://s"
        ).replace("max_in_flight = 40", "max_in_flight = 'lots'")
    )
    process = await start_dispatcher(config, "k")
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate()
    assert process.returncode == 2
    assert "dispatch.max_in_flight" in stderr.decode()
    assert stdout == b""


async def test_a_stop_during_a_slow_record_waits_for_it_and_hands_back_nothing_sent(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    sqs_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [f"msg-{i:05d}" for i in range(20)]
    async with FakeSendGrid() as sg:
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], max_in_flight=40)
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(20)])
        async with running(config) as worker:
            settle = worker.ledger.settle

            async def slow_settle(*args: Any, **kwargs: Any) -> Any:
                await asyncio.sleep(1.0)  # Redis is slow: the flush is still recording at stop
                return await settle(*args, **kwargs)

            monkeypatch.setattr(worker.ledger, "settle", slow_settle)
            await eventually(lambda: len(sg.receipts) == 20, 30, "20 accepted")
            await asyncio.sleep(0.1)  # the settler has taken them into its flush
        assert worker.stats.released == 0  # nothing sent was handed back to be sent again
        assert worker.stats.sent == 20
    await assert_sent_once(sqs, queues.url, redis, sg, ids)


async def test_a_stop_during_a_claim_waits_for_the_sends_it_starts(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    sqs_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = [f"msg-{i:05d}" for i in range(10)]
    async with FakeSendGrid() as sg:
        sg.faults.latency(300)
        config = settings(
            queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], max_in_flight=40, pollers=1
        )
        claiming = asyncio.Event()
        async with running(config) as worker:
            claim = worker.ledger.claim

            async def slow_claim(*args: Any, **kwargs: Any) -> Any:
                claiming.set()
                await asyncio.sleep(0.5)  # the stop comes while the batch is being claimed
                return await claim(*args, **kwargs)

            monkeypatch.setattr(worker.ledger, "claim", slow_claim)
            await enqueue(sqs, queues.url, [email_doc(i) for i in range(10)])
            await asyncio.wait_for(claiming.wait(), 30)
        # The sends the claim started were waited for, recorded and deleted, not handed back
        # while still running (which would let another worker send them again).
        assert (worker.stats.released, worker.stats.sent) == (0, 10)
    await assert_sent_once(sqs, queues.url, redis, sg, ids)

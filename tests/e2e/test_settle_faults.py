"""Faults on the way from a provider's answer to the queue: nothing lost, nothing sent twice
without being counted (issue 8, items 3, 4, 5, 11 and 12).

Each test runs on a real Redis; the end-to-end ones on the SQS emulator with a fake provider.
"""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher import keys
from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, RedisServer, queue_depth
from dispatcher.journal import Journal
from dispatcher.ledger import (
    Ledger,
    RecordStatus,
)
from dispatcher.queue import REASON_ATTRIBUTE, Received, SqsQueue
from tests.support.configs import CONFIG, sendgrid
from tests.support.harness import (
    drain_queue,
    enqueue,
    eventually,
    records,
    running,
    settings,
    start_dispatcher,
)
from tests.support.tcp_proxy import TcpProxy


async def visible_and_hidden(sqs: Any, url: str) -> tuple[int, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    reply = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
    visible, hidden = (int(reply["Attributes"].get(name, 0)) for name in names)
    return visible, hidden


# Item 12: an error about one record fails that message alone (the ledger side: test_ledger).


@pytest.mark.parametrize("queues", [{"max_receive_count": 1000}], indirect=True)
async def test_a_message_whose_record_redis_refuses_goes_to_the_dlq_and_the_rest_are_sent(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    ids = [f"msg-{i:05d}" for i in range(6)]
    await redis.set(keys.message("t:", "msg-00003"), "not a hash")
    await enqueue(sqs, queues.url, [email_doc(i) for i in range(6)])
    async with FakeSendGrid() as sg:
        config = settings(
            queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], max_attempts=1, max_receives=2
        )
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent == 5, 30, "the other five sent")
            dead = await _wait_for_dead_letters(sqs, queues.dlq_url, 1)
            assert not worker.stopping
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == [i for i in ids if i != ids[3]]
    assert orjson.loads(dead[0]["Body"])["id"] == ids[3]
    reason = dead[0]["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert "max_receives 2" in reason
    assert "WRONGTYPE" in reason
    assert await queue_depth(sqs, queues.url) == 0


async def _wait_for_dead_letters(sqs: Any, url: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def arrived() -> bool:
        found.extend(await drain_queue(sqs, url))
        return len(found) >= count

    await eventually(arrived, 40, f"{count} dead-lettered")
    return found


# Item 4: an ERROR whose dead-letter copy failed is copied when it comes back.


async def test_an_error_whose_dlq_copy_failed_is_dead_lettered_when_it_comes_back(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    late_name = queues.dlq_url.rsplit("/", 1)[1] + "-late"
    late_url = queues.dlq_url.rsplit("/", 1)[0] + "/" + late_name
    await enqueue(sqs, queues.url, [email_doc(0)])
    async with FakeSendGrid() as sg:
        sg.faults.fail(503)
        config = settings(
            queues.url,
            sqs_endpoint,
            redis_url,
            [sendgrid(sg)],
            visibility_timeout=10,
            max_attempts=1,
        )
        # The DLQ it names does not exist yet: the first copy fails.
        config = replace(config, queue=replace(config.queue, dead_letter_url=late_url))
        async with running(config) as worker:
            await eventually(lambda: worker.stats.dead_lettered == 1, 30, "out of attempts")
            created = await sqs.create_queue(QueueName=late_name)
            assert created["QueueUrl"] == late_url
            dead = await _wait_for_dead_letters(sqs, late_url, 1)
    assert await records(redis, ["msg-00000"]) == {"ERROR": 1}
    assert orjson.loads(dead[0]["Body"])["id"] == "msg-00000"
    assert "max_attempts 1" in dead[0]["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert await queue_depth(sqs, queues.url) == 0
    assert len(sg.receipts) == 0
    assert sg.faults.injected["fail"] == 1  # tried once, not again


# Item 4: a dead-letter batch respects SQS's total size limit.


async def test_dead_letter_batches_respect_the_total_size_limit(
    sqs: Any, queues: QueuePair
) -> None:
    big = [email_doc(i, text="x" * 200_000) for i in range(10)]  # 2 MB in all
    await enqueue(sqs, queues.url, [orjson.dumps(b) for b in big[:5]])
    await enqueue(sqs, queues.url, [orjson.dumps(b) for b in big[5:]])
    queue = SqsQueue(sqs, queues.url, queues.dlq_url, wait_seconds=0, visibility_timeout=60)
    received: list[Received] = []
    while len(received) < 10:
        received += await queue.receive(10)
    assert await queue.dead_letter([(m, "too big to send " * 200) for m in received]) == []
    dead = await _wait_for_dead_letters(sqs, queues.dlq_url, 10)
    assert sorted(orjson.loads(m["Body"])["id"] for m in dead) == [d["id"] for d in big]
    assert await queue_depth(sqs, queues.url) == 0


# Item 3: a stop during a Redis outage never hands back mail a provider accepted.


async def test_a_stop_while_redis_is_away_keeps_accepted_sends_and_records_them_next_start(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_server: RedisServer,
    sqs_endpoint: str,
    tmp_path: Path,
) -> None:
    ids = [f"msg-{i:05d}" for i in range(5)]
    journal = tmp_path / "journal.jsonl"
    async with TcpProxy("127.0.0.1", redis_server.port) as proxy, FakeSendGrid() as sg:
        config = settings(
            queues.url,
            sqs_endpoint,
            f"redis://127.0.0.1:{proxy.port}/0",
            [sendgrid(sg, timeout_seconds=30)],
            journal_path=str(journal),
            drain_seconds=2,
        )
        sg.faults.hang()
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(5)])
        async with running(config) as worker:
            await eventually(lambda: sg.faults.injected["hang"] == 5, 30, "five held")
            await proxy.cut("refuse")
            sg.faults.clear()  # the provider accepts all five while Redis is away
            await eventually(lambda: len(sg.receipts) == 5, 30, "five accepted")
            await eventually(
                lambda: all(e.task and e.task.done() for e in worker.in_flight.values()),
                30,
                "sends finished",
            )
        assert worker.stats.released == 0
        # Not handed back: nobody can receive them (and send them again) now.
        assert await visible_and_hidden(sqs, queues.url) == (0, 5)
        assert sorted(s.message_id for s, _ in Journal(journal).read()) == ids

        await proxy.restore()
        async with running(config) as second:
            await eventually(lambda: not journal.exists(), 30, "journal replayed")
            assert second.stats.received == 0
    assert await records(redis, ids) == {"SENT": 5}
    assert await queue_depth(sqs, queues.url) == 0  # deleted with the journalled receipts
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == ids


# Item 5: a lapsed claim is recorded as ambiguous (the drain deadline: test_worker; the
# script: test_ledger).


async def test_a_claim_taken_over_from_a_killed_worker_is_recorded_as_ambiguous(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    sqs_endpoint: str,
    tmp_path: Path,
) -> None:
    async with FakeSendGrid() as sg:
        sg.faults.hang()
        path = tmp_path / "dispatcher.toml"
        path.write_text(
            CONFIG.format(
                url=queues.url, endpoint=sqs_endpoint, redis=redis_url, sendgrid=sg.base_url
            ).replace("visibility_timeout = 30", "visibility_timeout = 10")
        )
        process = await start_dispatcher(path, sg.api_key, tmp_path / "killed.log")
        await enqueue(sqs, queues.url, [email_doc(0)])
        await eventually(lambda: sg.faults.injected["hang"] == 1, 30, "the send under way")
        os.kill(process.pid, signal.SIGKILL)  # dies mid-send: the provider may have it
        await process.wait()
        sg.faults.clear()
        config = settings(queues.url, sqs_endpoint, redis_url, [sendgrid(sg)])
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent == 1, 60, "taken over after the lease")
    record = await Ledger(redis, "t:", 3600).get("msg-00000")
    assert record is not None
    # The claim recorded the provider before the call: the takeover names it.
    assert (record.status, record.ambiguous_via) == (RecordStatus.SENT, ("sendgrid",))
    # The killed worker's request, released late, may count at the fake as well: the duplicate
    # that `ambiguous_via` accounts for.
    assert {r.dispatcher_id for r in sg.receipts} == {"msg-00000"}


# Item 11: a message that never uses an attempt does not cycle for ever.


@pytest.mark.parametrize("queues", [{"max_receive_count": 1000}], indirect=True)
async def test_a_message_only_ever_throttled_goes_to_the_dlq_after_max_receives(
    sqs: Any, queues: QueuePair, redis: Redis, redis_url: str, sqs_endpoint: str
) -> None:
    await enqueue(sqs, queues.url, [email_doc(0)])
    async with FakeSendGrid() as sg:
        sg.faults.throttle(reset_in=0.5)
        config = settings(
            queues.url, sqs_endpoint, redis_url, [sendgrid(sg)], max_attempts=2, max_receives=3
        )
        async with running(config):
            dead = await _wait_for_dead_letters(sqs, queues.dlq_url, 1)
    reason = dead[0]["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]
    assert reason.startswith("max_receives 3 reached")
    assert sg.faults.injected["throttle"] == 3
    assert sg.receipts == []
    assert await records(redis, ["msg-00000"]) == {"ERROR": 1}

"""`dispatcher dlq stats|show|redrive` on the SQS emulator: messages dead-lettered during an
outage go back to the source queue once it is over and are sent exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher import cli, keys
from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, queue_depth
from dispatcher.ledger import Ledger
from tests.support.configs import config_file, sendgrid
from tests.support.harness import enqueue, eventually, running, settings, statuses

NO_TRIP = {"consecutive_failures": 1000, "minimum_calls": 1000}  # every message gets its try
COUNT = 30


async def dlq(path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["dlq", *args, "--config", str(path)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("sqs_endpoint", ["fauxqs"], indirect=True)
async def test_redrive_sends_dead_lettered_messages_exactly_once(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_url: str,
    sqs_endpoint: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with FakeSendGrid() as sg:
        sg.faults.fail(503)
        config = settings(
            queues.url, sqs_endpoint, redis_url, [sendgrid(sg, **NO_TRIP)], max_attempts=1
        )
        path = config_file(tmp_path, config)
        await enqueue(sqs, queues.url, [email_doc(i) for i in range(COUNT)])
        await enqueue(sqs, queues.url, [b"not json"])
        ids = [f"msg-{i:05d}" for i in range(COUNT)]
        ledger = Ledger(redis, "t:", 3600)
        async with running(config) as worker:
            await eventually(
                lambda: worker.stats.dead_lettered + worker.stats.poison >= COUNT + 1,
                60,
                "all dead-lettered",
            )
        assert statuses([await ledger.get(i) for i in ids]) == {"ERROR": COUNT}
        stats = await dlq(path, capsys, "stats")
        assert stats.splitlines()[0] == f"{COUNT + 1} messages"
        assert f"{COUNT:>7}  max_attempts 1 reached" in stats
        shown = await dlq(path, capsys, "show")
        assert sorted(line.split("\t")[0] for line in shown.splitlines()) == ["-", *ids]
        assert "@" not in shown
        assert "Order" not in shown
        sg.faults.clear()
        moved = await dlq(path, capsys, "redrive", "--rate", "50/s")
        assert moved.strip() == f"redriven {COUNT + 1}; kept in the DLQ: none"
        assert statuses([await ledger.get(i) for i in ids]) == {"QUEUED": COUNT}
        for message_id in ids:  # the status indexes moved with the records
            shard = keys.shard_of(message_id)
            assert await redis.zscore(keys.index_status("t:", shard, "ERROR"), message_id) is None
            queued = keys.index_status("t:", shard, "QUEUED")
            assert await redis.zscore(queued, message_id) is not None
        async with running(config) as worker:
            await eventually(lambda: worker.stats.sent == COUNT, 60, "the redriven sent")
            await eventually(lambda: worker.stats.poison == 1, 60, "the poison one again")
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == ids  # each exactly once
    assert statuses([await ledger.get(i) for i in ids]) == {"SENT": COUNT}
    assert await redis.hget(keys.message("t:", ids[0]), "redriven") == b"1"
    assert await queue_depth(sqs, queues.url) == 0
    assert await queue_depth(sqs, queues.dlq_url) == 1  # the poison one is back there

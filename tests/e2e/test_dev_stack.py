"""The local stack: real redis-server, and the SQS calls the worker makes, on moto and fauxqs."""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from dispatcher.dev.stack import (
    DevStackError,
    Fauxqs,
    QueuePair,
    RedisServer,
    create_queue_pair,
    queue_depth,
    sqs_client,
)

RECEIVE = {
    "MaxNumberOfMessages": 10,
    "WaitTimeSeconds": 1,
    "MessageSystemAttributeNames": ["ApproximateReceiveCount"],
    "MessageAttributeNames": ["All"],
}


@pytest.fixture(params=["moto", "fauxqs"])
async def backend_sqs(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """An SQS client on each emulator in turn (the fauxqs one skips when it is not installed)."""
    server = request.getfixturevalue(request.param)
    async with sqs_client(server.endpoint_url) as client:
        yield client


async def receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    reply = await sqs.receive_message(QueueUrl=url, **RECEIVE)
    messages: list[dict[str, Any]] = reply.get("Messages", [])
    return messages


def entries(messages: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    return [
        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], **extra} for i, m in enumerate(messages)
    ]


async def test_redis_answers_ping_and_lua_without_persistence(redis: Redis) -> None:
    assert await redis.ping()
    assert await redis.eval("return {KEYS[1], ARGV[1]}", 1, "k", "v") == [b"k", b"v"]
    assert await redis.config_get("save") == {"save": ""}
    assert await redis.config_get("appendonly") == {"appendonly": "no"}


async def test_redis_server_stops_and_cleans_up() -> None:
    async with RedisServer() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = Redis.from_url(server.url)
        assert await client.ping()
        await client.aclose()
        temp_dir = server.temp_dir
        assert server.log_path.is_file()
    assert not server.running
    assert not temp_dir.exists()


def test_a_failed_start_reports_the_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "redis-server"
    broken.write_text("#!/bin/sh\necho 'cannot bind: the sky is falling' >&2\nexit 3\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("DEVSTACK_REDIS_SERVER", str(broken))
    server = RedisServer()
    with pytest.raises(DevStackError, match=r"(?s)exited with status 3.*the sky is falling"):
        server.start()
    assert not server.running
    log = server.log_path
    assert log.is_file()  # kept for the user to read, until stop()
    server.stop()
    assert not log.parent.exists()


def test_missing_fauxqs_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVSTACK_FAUXQS_CLI", str(tmp_path / "cli.js"))
    assert not Fauxqs.installed()
    with pytest.raises(DevStackError, match="make fauxqs"):
        Fauxqs().start()


async def test_sqs_calls_the_worker_makes(backend_sqs: Any) -> None:
    sqs = backend_sqs
    pair = await create_queue_pair(sqs, f"calls-{uuid.uuid4().hex[:12]}")
    attributes = {"reason": {"DataType": "String", "StringValue": "first"}}
    await sqs.send_message(QueueUrl=pair.url, MessageBody="one", MessageAttributes=attributes)
    sent = await sqs.send_message_batch(
        QueueUrl=pair.url, Entries=[{"Id": str(i), "MessageBody": f"b{i}"} for i in range(9)]
    )
    assert len(sent["Successful"]) == 9
    assert not sent.get("Failed")
    assert await queue_depth(sqs, pair.url) == 10

    first = await receive(sqs, pair.url)
    assert sorted(m["Body"] for m in first) == [
        "b0",
        "b1",
        "b2",
        "b3",
        "b4",
        "b5",
        "b6",
        "b7",
        "b8",
        "one",
    ]
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in first} == {"1"}
    [one] = [m for m in first if m["Body"] == "one"]
    assert one["MessageAttributes"] == {"reason": {"DataType": "String", "StringValue": "first"}}
    assert await receive(sqs, pair.url) == []  # all in flight
    assert await queue_depth(sqs, pair.url) == 10

    changed = await sqs.change_message_visibility_batch(
        QueueUrl=pair.url, Entries=entries(first, VisibilityTimeout=0)
    )
    assert len(changed["Successful"]) == 10
    again = await receive(sqs, pair.url)
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in again} == {"2"}
    deleted = await sqs.delete_message_batch(QueueUrl=pair.url, Entries=entries(again))
    assert len(deleted["Successful"]) == 10
    assert not deleted.get("Failed")
    assert await queue_depth(sqs, pair.url) == 0
    assert await queue_depth(sqs, pair.dlq_url) == 0


async def test_a_message_received_too_often_moves_to_the_dlq(backend_sqs: Any) -> None:
    sqs = backend_sqs
    pair = await create_queue_pair(sqs, f"redrive-{uuid.uuid4().hex[:12]}", max_receive_count=2)
    await sqs.send_message(QueueUrl=pair.url, MessageBody="poison")
    receives = 0
    while messages := await receive(sqs, pair.url):
        receives += 1
        assert receives <= 2, "received more often than maxReceiveCount"
        await sqs.change_message_visibility_batch(
            QueueUrl=pair.url, Entries=entries(messages, VisibilityTimeout=0)
        )
    assert receives == 2
    assert await queue_depth(sqs, pair.url) == 0
    [dead] = await receive(sqs, pair.dlq_url)
    assert dead["Body"] == "poison"


@pytest.mark.parametrize(
    "queues", [{"max_receive_count": 1, "visibility_timeout": 5}], indirect=True
)
async def test_queues_fixture_makes_a_fresh_pair(sqs: Any, queues: QueuePair) -> None:
    reply = await sqs.get_queue_attributes(QueueUrl=queues.url, AttributeNames=["All"])
    assert reply["Attributes"]["VisibilityTimeout"] == "5"
    assert int(json.loads(reply["Attributes"]["RedrivePolicy"])["maxReceiveCount"]) == 1
    assert await queue_depth(sqs, queues.url) == await queue_depth(sqs, queues.dlq_url) == 0
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"

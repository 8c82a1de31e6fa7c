"""One provider rate limit shared by two `dispatcher run` processes (GCRA in Redis), on one
Redis and on a three-primary cluster.

Two real worker processes consume one fauxqs queue through one Redis and send to one fake
SendGrid limited to `RATE` sends per second with a burst of `BURST`. The fake's accept times
show the rate both processes kept together; their canonical log lines show that each sent its
share. Booking tokens ahead (`ahead_seconds`) is checked first, on both stores.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import QueuePair, queue_depth
from dispatcher.health.base import HealthStore
from dispatcher.health.memory import MemoryHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.health.rules import booked_delays
from tests.support.clock import Clock
from tests.support.configs import CONFIG
from tests.support.harness import drain_queue, enqueue, eventually, records, start_dispatcher
from tests.support.health import PROVIDERS, ROUTING
from tests.support.redis_targets import RedisTarget

RATE = 40  # sends per second, across both processes
BURST = 5
COUNT = 360  # ~9 s at RATE

pytestmark = pytest.mark.redis_targets("single", "cluster")


@pytest.mark.parametrize("kind", ["redis", "local"])
async def test_tokens_booked_ahead_are_spaced_one_interval_apart(
    kind: str, redis: Redis, clock: Clock
) -> None:
    # Provider b: 20/s (an interval of 50 ms), burst 5; tokens may be booked 1 s ahead.
    store: HealthStore = (
        RedisHealth(redis, "t:", PROVIDERS, ROUTING, clock, ahead_seconds=1.0)
        if kind == "redis"
        else MemoryHealth(PROVIDERS, ROUTING, clock, ahead_seconds=1.0)
    )
    first = (await store.take({"b": 30}))["b"]
    assert first.granted == 5 + 20  # the burst now, then one second's worth
    delays = booked_delays(first, 0.05)
    assert delays[:5] == [0.0] * 5
    assert delays[5:] == pytest.approx([0.05 * k for k in range(1, 21)])
    assert (await store.take({"b": 1}))["b"].granted == 0  # booked up to the horizon
    clock.now += 0.5
    later = (await store.take({"b": 5}))["b"]
    assert later.granted == 5
    # They follow the first booking's last token (1.0 s after the start, 0.5 s from now).
    assert booked_delays(later, 0.05) == pytest.approx([0.55, 0.6, 0.65, 0.7, 0.75])


@pytest.fixture
def clock() -> Clock:
    return Clock()


def events(log: Path) -> list[dict[str, Any]]:
    lines = log.read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.startswith(b"{")]


def started(log: Path) -> bool:
    return any(e["event"] == "worker_started" for e in events(log))


async def stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(30):
            return await process.wait()
    except TimeoutError:
        process.kill()
        return await process.wait()


@pytest.mark.parametrize("sqs_endpoint", ["fauxqs"], indirect=True)
async def test_two_processes_share_one_rate_limit(
    sqs: Any,
    queues: QueuePair,
    redis: Redis,
    redis_target: RedisTarget,
    sqs_endpoint: str,
    tmp_path: Path,
) -> None:
    ids = [f"msg-{i:05d}" for i in range(COUNT)]
    async with FakeSendGrid() as sg:
        config = tmp_path / "dispatcher.toml"
        toml = CONFIG.format(
            url=queues.url, endpoint=sqs_endpoint, redis=redis_target.url, sendgrid=sg.base_url
        )
        if redis_target.cluster:
            toml = toml.replace("[redis]\n", "[redis]\ncluster = true\n")
        # the limit goes on the one provider, last in CONFIG
        config.write_text(toml + f"rate_limit = {RATE}\nburst = {BURST}\n")
        logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
        workers = [await start_dispatcher(config, sg.api_key, log) for log in logs]
        try:
            await eventually(lambda: all(started(log) for log in logs), 60, "both started")
            enqueued_at = time.monotonic()
            await enqueue(sqs, queues.url, [email_doc(i) for i in range(COUNT)])
            # 9 s at the limit; far slower means messages bounce instead of waiting their turn.
            await eventually(lambda: len(sg.receipts) >= COUNT, 20, f"{COUNT} sent")

            async def all_recorded() -> bool:
                return await records(redis, ids) == {"SENT": COUNT}

            await eventually(all_recorded, 30, "every message recorded SENT")
        finally:
            codes = [await stop(w) for w in workers]
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    lines = [events(log) for log in logs]

    # Every message exactly once, none dead-lettered, the queue empty.
    assert sorted(r.dispatcher_id or "" for r in sg.receipts) == ids
    assert await queue_depth(sqs, queues.url) == 0
    assert await drain_queue(sqs, queues.dlq_url) == []

    # The rate, from the fake's accept times. Over the whole run it may never exceed the limit:
    # no token is used before its time (GCRA: at most BURST + RATE * t in any span t), and none
    # can be used before the messages exist, whatever the load. The steady rate (leaving out
    # the first second, with the burst and the first connections, and the last, with the queue
    # running dry) may not fall short of it either: 40/s is little enough to keep up with.
    times = sorted(r.monotonic for r in sg.receipts)
    overall = (len(times) - BURST - 1) / (times[-1] - enqueued_at)
    steady = [t for t in times if times[0] + 1.0 <= t <= times[-1] - 1.0]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    bounced = sum(1 for ls in lines for e in ls if e["event"] == "send" and e["status"] != "SENT")
    print(
        f"steady rate {rate:.2f}/s over {steady[-1] - steady[0]:.2f} s, {overall:.2f}/s since "
        f"the enqueue (limit {RATE}/s, burst {BURST}); {bounced} sent back for lack of a token"
    )
    assert overall <= RATE * 1.1, overall
    assert RATE * 0.9 <= rate <= RATE * 1.1, rate

    # Both processes sent, each a fair share, and their canonical lines cover every message:
    # a message pulled without a token waits for one instead of going back to the queue.
    sent_by = [
        {e["id"] for e in ls if e["event"] == "send" and e["status"] == "SENT"} for ls in lines
    ]
    print("sent per process:", [len(s) for s in sent_by])
    assert not sent_by[0] & sent_by[1]
    assert sorted(sent_by[0] | sent_by[1]) == ids
    assert min(len(s) for s in sent_by) >= COUNT // 10
    assert bounced <= COUNT // 10

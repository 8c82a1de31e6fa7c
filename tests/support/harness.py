"""Helpers for end-to-end tests: settings, enqueueing, a running worker, and waiting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from redis.asyncio import Redis

from dispatcher.app import open_worker
from dispatcher.config import BreakerSettings, Settings, parse
from dispatcher.dev.fakes import FakeSendGrid
from dispatcher.dev.stack import queue_depth
from dispatcher.ledger import Ledger, Record
from dispatcher.stats import Stats
from dispatcher.worker import Worker
from providers.base import Provider


def settings(
    queue_url: str,
    endpoint_url: str,
    redis_url: str,
    providers: Sequence[dict[str, Any]],
    *,
    strategy: str = "priority",
    visibility_timeout: int = 30,
    cluster: bool = False,
    **dispatch: Any,
) -> Settings:
    return parse(
        {
            "queue": {
                "url": queue_url,
                "endpoint_url": endpoint_url,
                "wait_time_seconds": 1,
                "visibility_timeout": visibility_timeout,
            },
            "redis": {"url": redis_url, "key_prefix": "t:", "cluster": cluster},
            "dispatch": {
                "drain_seconds": 10,
                "backoff_base_seconds": 1,
                "pollers": 2,
                "journal_path": str(_scratch() / f"journal-{uuid.uuid4().hex}.jsonl"),
                **dispatch,
            },
            "routing": {"strategy": strategy},
            "providers": list(providers),
        }
    )


def _scratch() -> Path:
    """A folder for journals of test workers, outside the work tree."""
    return Path(tempfile.gettempdir()) / "dispatcher-tests"


async def enqueue(sqs: Any, url: str, bodies: Sequence[dict[str, Any] | bytes]) -> None:
    """Send bodies in batches of 10, a few batches at a time."""
    raw = [b if isinstance(b, bytes) else orjson.dumps(b) for b in bodies]
    batches = [raw[i : i + 10] for i in range(0, len(raw), 10)]
    for start in range(0, len(batches), 8):
        await asyncio.gather(
            *(
                sqs.send_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "MessageBody": body.decode()} for i, body in enumerate(batch)
                    ],
                )
                for batch in batches[start : start + 8]
            )
        )


@contextlib.asynccontextmanager
async def running(
    config: Settings,
    providers: Sequence[Provider] | None = None,
) -> AsyncIterator[Worker]:
    """A worker running in a task; stopped and drained on exit, its errors re-raised."""
    async with open_worker(config, providers=providers, stats=Stats()) as worker:
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            async with asyncio.timeout(60):
                await task


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], seconds: float = 60, what: str = "condition"
) -> None:
    """Poll `check` until it holds; fail the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


async def drain_queue(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Receive everything visible on `url` (for reading a DLQ), with message attributes."""
    found: list[dict[str, Any]] = []
    while True:
        reply = await sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]
        )
        messages = reply.get("Messages", [])
        if not messages:
            return found
        found.extend(messages)


def statuses(records: Sequence[Record | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        key = record.status.value if record else "missing"
        counts[key] = counts.get(key, 0) + 1
    return counts


def run_machine_on_redis(
    machine: type[RuleBasedStateMachine], redis_url: str, examples: int
) -> None:
    """Run a hypothesis state machine whose class attributes `runner` (an event loop) and
    `client` (a Redis client on `redis_url`) are set here, shared by every example."""
    with asyncio.Runner() as loop:
        redis = Redis.from_url(redis_url)
        shared: dict[str, Any] = {"runner": loop, "client": redis}
        bound = type(f"OnTheTestRedis{machine.__name__}", (machine,), shared)
        try:
            run_state_machine_as_test(
                bound,
                settings=hypothesis_settings(
                    max_examples=examples,
                    stateful_step_count=40,
                    deadline=None,
                    suppress_health_check=[HealthCheck.too_slow],
                ),
            )
        finally:
            loop.run(redis.aclose())


# A quick breaker for the state-machine tests: small thresholds and short open times.
BREAKER = BreakerSettings(
    error_rate_threshold=0.5,
    slow_call_rate_threshold=0.5,
    slow_call_seconds=1.0,
    minimum_calls=4,
    consecutive_failures=3,
    open_seconds=1.0,
    open_max_seconds=8.0,
    misconfigured_open_seconds=12.0,
    half_open_permits=2,
    half_open_successes=2,
    permit_lease_seconds=3.0,
    healthy_reset_seconds=20.0,
)


async def start_dispatcher(
    config: Path, api_key: str, log: Path | None = None
) -> asyncio.subprocess.Process:
    """`python -m dispatcher run`; its output piped, or written to `log` (stderr included)."""
    env = {**os.environ, "DISPATCHER_PROVIDERS__SENDGRID__API_KEY": api_key}
    args = [sys.executable, "-m", "dispatcher", "run", "--config", str(config)]
    if log is None:
        pipe = asyncio.subprocess.PIPE
        return await asyncio.create_subprocess_exec(*args, env=env, stdout=pipe, stderr=pipe)
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            *args, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )


def empty(sqs: Any, url: str) -> Callable[[], Any]:
    """A check for `eventually`: the queue at `url` is empty."""

    async def check() -> bool:
        return await queue_depth(sqs, url) == 0

    return check


def ledger(redis: Redis) -> Ledger:
    return Ledger(redis, "t:", 3600)


async def records(redis: Redis, ids: list[str]) -> dict[str, int]:
    """How many of `ids` the ledger (prefix `t:`) holds in each status."""
    book = ledger(redis)
    return statuses([await book.get(i) for i in ids])


@contextlib.asynccontextmanager
async def running_task(
    config: Settings, prepare: Callable[[Worker], None] | None = None
) -> AsyncIterator[tuple[Worker, asyncio.Task[None]]]:
    """Like `running`, but `prepare` may swap a part in before the run starts, and the run's
    task is yielded, so a test can see that it is still running."""
    async with open_worker(config, stats=Stats()) as worker:
        if prepare is not None:
            prepare(worker)
        task = asyncio.create_task(worker.run())
        try:
            yield worker, task
        finally:
            worker.stop()
            async with asyncio.timeout(60):
                await task


def alive_and(task: asyncio.Task[None], check: Callable[[], bool]) -> Callable[[], bool]:
    """`check`, failing at once (with the worker's error) if the worker has ended."""

    def probe() -> bool:
        if task.done():
            raise AssertionError(f"the worker ended: {task.exception()!r}")
        return check()

    return probe


def sent_ids(fake: FakeSendGrid) -> list[str]:
    return sorted(r.dispatcher_id or "" for r in fake.receipts)

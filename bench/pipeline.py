"""One measured dispatcher run on a `Stack`: enqueue a backlog, start `python -m dispatcher run`,
wait for every accept and an empty queue, optionally hold sends open for an RSS reading, then
SIGTERM; everything read from outside the dispatcher process (/proc, Redis INFO, the fakes).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from redis import Redis

from bench.stack import (
    KEY_PREFIX,
    DispatcherProcess,
    RedisCounters,
    Stack,
    enqueue,
    machine_busy,
    message_bodies,
    redis_counters,
)
from dispatcher import keys
from dispatcher.dev.stack import create_queue_pair, queue_depth, sqs_client


@dataclass(frozen=True, slots=True)
class DispatcherRun:
    messages: int
    accepted: int  # receipts of this run's ids at the fakes
    distinct: int
    doubles: int
    logged_sent: int  # canonical `send` lines with status SENT
    wall_s: float  # worker_started -> last accept
    cpu_s: float  # worker_started -> queue empty
    cpu_wall_s: float
    redis: RedisCounters
    created_p50: float
    created_p99: float
    claim_p50: float
    claim_p99: float
    mean_send_ms: float
    peak_rss_mb: float
    exit_code: int
    others: dict[str, float]  # cores busy in each other server process during the window
    machine: tuple[float, float]  # (cores busy, cores) of the whole machine during the window
    held: int = 0
    rss_hold_mb: float = math.nan
    peak_hold_mb: float = math.nan

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.messages

    @property
    def per_core(self) -> float:
        """msg/s ÷ CPU-seconds per second used = messages per CPU-second."""
        return self.messages / self.cpu_s

    @property
    def cores(self) -> float:
        return self.cpu_s / self.cpu_wall_s

    @property
    def reads_per_msg(self) -> float:
        return self.redis.reads / self.messages


async def until(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:g}s waiting for {what}")
        await asyncio.sleep(0.1)


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


@dataclass(frozen=True, slots=True)
class Reading:
    """What the bench reads from outside the dispatcher at one instant."""

    at: float
    cpu: float
    redis: RedisCounters
    others: dict[str, float]
    machine: tuple[float, float]

    @classmethod
    def take(cls, stack: Stack, dispatcher: DispatcherProcess) -> Reading:
        return cls(
            time.time(),
            dispatcher.cpu_seconds(),
            redis_counters(stack.redis.url),
            stack.cpu_seconds(),
            machine_busy(),
        )


async def measure_dispatcher(
    stack: Stack,
    prefix: str,
    messages: int,
    *,
    hold: int,
    max_in_flight: int,
    pollers: int,
    launcher: Sequence[str],
) -> DispatcherRun:
    """Drain `messages` pre-enqueued messages with one dispatcher process and measure it."""
    async with sqs_client(stack.sqs.endpoint_url) as sqs:
        pair = await create_queue_pair(sqs, f"bench-{prefix}", max_receive_count=30)
        bodies = message_bodies(prefix, messages)
        created = {d["id"]: float(d["created_at"]) for d in map(orjson.loads, bodies)}
        await enqueue(sqs, pair.url, bodies)
        offsets = [fake.received() for fake in stack.fakes]
        config = stack.write_config(pair, max_in_flight=max_in_flight, pollers=pollers)
        dispatcher = DispatcherProcess(config, launcher)
        await asyncio.to_thread(dispatcher.start)
        try:
            first = Reading.take(stack, dispatcher)

            async def accepted() -> bool:
                if not dispatcher.running:
                    tail = dispatcher.log_path.read_text(errors="replace").splitlines()[-20:]
                    raise RuntimeError("the dispatcher exited:\n" + "\n".join(tail))
                return stack.received() - sum(offsets) >= messages

            async def drained() -> bool:
                return await queue_depth(sqs, pair.url) == 0

            await until(accepted, 60 + messages / 50, f"{messages} accepts")
            await until(drained, 60, "an empty queue")
            last = Reading.take(stack, dispatcher)
            peak = dispatcher.memory_mb()["VmHWM"]
            held = await hold_open(stack, dispatcher, sqs, pair.url, prefix, hold) if hold else {}
            exit_code = await asyncio.to_thread(dispatcher.terminate)
            events = list(dispatcher.log_events())
        finally:
            await asyncio.to_thread(dispatcher.stop)
        for url in pair:
            await sqs.delete_queue(QueueUrl=url)
    receipts = [
        r
        for fake, offset in zip(stack.fakes, offsets, strict=True)
        for r in fake.receipts(offset)
        if r.get("dispatcher_id") in created
    ]
    return _figures(stack, created, receipts, events, (first, last), peak, exit_code, held)


def _figures(
    stack: Stack,
    created: dict[str, float],
    receipts: list[dict[str, Any]],
    events: list[dict[str, Any]],
    window: tuple[Reading, Reading],
    peak: float,
    exit_code: int,
    held: dict[str, float],
) -> DispatcherRun:
    first, last = window
    span = last.at - first.at
    accept = {r["dispatcher_id"]: float(r["received_at"]) for r in receipts}
    claimed = claim_times(stack.redis.url, list(accept))
    sends = [e for e in events if e.get("event") == "send" and e.get("id") in created]
    created_lat = [accept[i] - created[i] for i in accept]
    claim_lat = [accept[i] - claimed[i] for i in accept if i in claimed]
    return DispatcherRun(
        messages=len(created),
        accepted=len(receipts),
        distinct=len(accept),
        doubles=len(receipts) - len(accept),
        logged_sent=sum(1 for e in sends if e.get("status") == "SENT"),
        wall_s=max(accept.values(), default=last.at) - (_worker_started(events) or first.at),
        cpu_s=last.cpu - first.cpu,
        cpu_wall_s=span,
        redis=last.redis - first.redis,
        created_p50=percentile(created_lat, 0.5),
        created_p99=percentile(created_lat, 0.99),
        claim_p50=percentile(claim_lat, 0.5),
        claim_p99=percentile(claim_lat, 0.99),
        mean_send_ms=sum(float(e.get("latency_ms") or 0) for e in sends) / max(1, len(sends)),
        peak_rss_mb=peak,
        exit_code=exit_code,
        others={k: (v - first.others[k]) / span for k, v in last.others.items()},
        machine=(
            (last.machine[0] - first.machine[0]) / span,
            (last.machine[1] - first.machine[1]) / span,
        ),
        held=int(held.get("held", 0)),
        rss_hold_mb=held.get("VmRSS", math.nan),
        peak_hold_mb=held.get("VmHWM", math.nan),
    )


async def hold_open(
    stack: Stack, dispatcher: DispatcherProcess, sqs: Any, url: str, prefix: str, count: int
) -> dict[str, float]:
    """Hang every send at the fakes, enqueue `count` more and read the memory once they are all
    held; then release them and wait until they are accepted and deleted."""
    hung0 = _hung(stack)
    before = stack.received()
    stack.control("hang")
    await enqueue(sqs, url, message_bodies(f"{prefix}-hold", count))

    try:
        held = await _settled_count(lambda: _hung(stack) - hung0, count)
        await asyncio.sleep(0.5)  # let the allocations of the last admissions settle
        memory = dispatcher.memory_mb()
        memory["held"] = held
    finally:
        stack.reset_faults()

    async def finished() -> bool:
        return stack.received() - before >= count and await queue_depth(sqs, url) == 0

    await until(finished, 120, "the held sends to finish")
    return memory


async def _settled_count(read: Callable[[], int], target: int, quiet: float = 3.0) -> int:
    """Wait until `read()` reaches `target`, or stops growing for `quiet` seconds (the
    dispatcher's adaptive in-flight limit may be below `target`); returns the last value."""
    last, since = read(), time.monotonic()
    while last < target and time.monotonic() - since < quiet:
        await asyncio.sleep(0.1)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


def _hung(stack: Stack) -> int:
    return sum(int(fake.stats()["injected"].get("hang", 0)) for fake in stack.fakes)


def claim_times(redis_url: str, ids: Sequence[str]) -> dict[str, float]:
    """Each message's first claim (`received_at` in the ledger), in epoch seconds."""
    with Redis.from_url(redis_url) as client:
        pipe = client.pipeline(transaction=False)
        for message_id in ids:
            pipe.hget(keys.message(KEY_PREFIX, message_id), "received_at")
        replies = pipe.execute()
    return {i: int(r) / 1000 for i, r in zip(ids, replies, strict=True) if r is not None}


def _worker_started(events: Sequence[dict[str, Any]]) -> float | None:
    for event in events:
        if event.get("event") == "worker_started" and "timestamp" in event:
            return datetime.fromisoformat(
                str(event["timestamp"]).replace("Z", "+00:00")
            ).timestamp()
    return None

"""Follow one message from receive to delete and count the first-party calls it makes.

    python -m bench.trace_path [--calls]

A real `dispatcher run` worker (one poller, a fixed in-flight limit, a simulated provider) runs
on a local Redis and fauxqs. After one warm-up message, a profiler records every call into
`dispatcher/`, `providers/` and `strategies/` while a second message goes from the receive that
brings it to the delete that ends it. It prints the distinct functions called, the modules they
live in and the Lua scripts run (Redis `INFO commandstats` is not needed: the scripts are named
by the Python calls that queue them). The figures describe the code, not the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from dispatcher.app import open_worker
from dispatcher.config import parse
from dispatcher.dev.stack import (
    AWS_CREDENTIALS,
    Fauxqs,
    RedisServer,
    create_queue_pair,
    sqs_client,
)

ROOT = Path(__file__).resolve().parent.parent
OURS = tuple(str(ROOT / name) for name in ("dispatcher", "providers", "strategies"))


def message(index: int) -> bytes:
    return orjson.dumps(
        {
            "v": 1,
            "id": f"trace-{index}",
            "from": {"email": "shop@example.com"},
            "to": [{"email": "ann@example.org"}],
            "subject": "Receipt",
            "text": "Thanks",
        }
    )


class Recorder:
    """A `sys.setprofile` hook counting calls into first-party code."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        path = frame.f_code.co_filename
        if path.startswith(OURS):
            module = str(Path(path).relative_to(ROOT).with_suffix("")).replace("/", ".")
            self.calls[(module, frame.f_code.co_qualname)] += 1


async def trace(endpoint: str, redis_url: str) -> Recorder:
    async with sqs_client(endpoint) as sqs:
        pair = await create_queue_pair(sqs, f"trace-{int(time.time())}")
        settings = parse(
            {
                "queue": {"url": pair.url, "endpoint_url": endpoint, "wait_time_seconds": 20},
                "redis": {"url": redis_url, "key_prefix": "trace:"},
                "dispatch": {"pollers": 1, "max_in_flight": 16, "min_in_flight": 16},
                "routing": {"strategy": "adaptive"},
                "providers": [{"name": "sim", "type": "simulated", "latency_ms": 1}],
            }
        )
        recorder = Recorder()
        async with open_worker(settings) as worker:
            running = asyncio.create_task(worker.run())
            for index in (1, 2):
                if index == 2:
                    sys.setprofile(recorder)
                await sqs.send_message(QueueUrl=pair.url, MessageBody=message(index).decode())
                for _ in range(3000):  # until sent and deleted, 30 s at most
                    if worker.stats.sent >= index and not await _depth(sqs, pair.url):
                        break
                    await asyncio.sleep(0.01)
                sys.setprofile(None)
            worker.stop()
            await running
        return recorder


async def _depth(sqs: Any, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    reply = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
    return sum(int(reply["Attributes"].get(n, 0)) for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", action="store_true", help="list every function called")
    parser.add_argument("--quick", action="store_true", help="the same run (it is small)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "trace_path.md")
    args = parser.parse_args()
    os.environ.update(AWS_CREDENTIALS)  # the local SQS endpoint's test credentials
    with RedisServer() as redis, Fauxqs() as fauxqs:
        recorder = asyncio.run(trace(str(fauxqs.endpoint_url), redis.url))
    functions = sorted(recorder.calls)
    modules = sorted({module for module, _ in functions})
    named = [f for f in functions if "<" not in f[1]]  # no comprehensions, lambdas, genexprs
    lines = [
        "`python -m bench.trace_path` (one message, receive to delete, a real worker on fauxqs",
        "and Redis with a simulated provider; first-party code only)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| distinct functions called | {len(functions)} ({len(named)} named) |",
        f"| calls | {sum(recorder.calls.values())} |",
        f"| modules | {len(modules)}: {', '.join(modules)} |",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.calls:
        for (module, name), count in sorted(recorder.calls.items()):
            print(f"  {count:4d}  {module}.{name}")


if __name__ == "__main__":
    main()

"""Follow one message from receive to delete: its way between modules, and every call it makes.

    python -m bench.trace_path [--calls]

A real worker (one poller, a fixed in-flight limit, a simulated provider) runs on a local Redis
and fauxqs. After one warm-up message, a profiler records every call into `dispatcher/`,
`providers/` and `strategies/` while a second message goes from the receive that brings it to
the delete that ends it. It prints three measures (see `bench.message_way`):

- the message's way: the calls from one module into another that carry the message;
- the path's calls: the distinct calls from the path's own modules (`PATH_MODULES`) into other
  modules, carrying the message or not, and how many of them go into the router; this is how
  issue 9 counted ("about 38 calls ... the router is consulted 7 times");
- the deep count: every first-party function that ran in the window, and the modules they live
  in (helpers, key names, field checks and the background loops included; issue 9's "21
  modules").

The figures describe the code, not the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.message_way import ORIGIN_DEPTH, MessageWay
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
# The modules whose code carries a message from receive to delete (the rest serve them).
PATH_MODULES = (
    "dispatcher.worker",
    "dispatcher.claims",
    "dispatcher.admission",
    "dispatcher.router",
    "dispatcher.delivery",
    "dispatcher.settler",
)


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


async def trace(endpoint: str, redis_url: str) -> MessageWay:
    async with sqs_client(endpoint) as sqs:
        pair = await create_queue_pair(sqs, f"trace-{int(time.time())}")
        settings = parse(
            {
                "queue": {"url": pair.url, "endpoint_url": endpoint, "wait_time_seconds": 1},
                "redis": {"url": redis_url, "key_prefix": "trace:"},
                "dispatch": {"pollers": 1, "max_in_flight": 16, "min_in_flight": 16},
                "routing": {"strategy": "adaptive"},
                "providers": [{"name": "sim", "type": "simulated", "latency_ms": 1}],
            }
        )
        recorder = MessageWay(ROOT, "trace-2")
        async with open_worker(settings) as worker:
            running = asyncio.create_task(worker.run())
            for index in (1, 2):
                if index == 2:
                    sys.set_coroutine_origin_tracking_depth(ORIGIN_DEPTH)
                    sys.setprofile(recorder)
                await sqs.send_message(QueueUrl=pair.url, MessageBody=message(index).decode())
                for _ in range(3000):  # until sent and deleted, 30 s at most
                    if worker.stats.sent >= index and not await _depth(sqs, pair.url):
                        break
                    await asyncio.sleep(0.01)
                sys.setprofile(None)
                sys.set_coroutine_origin_tracking_depth(0)
            worker.stop()
            await running
        return recorder


def path_edges(recorder: MessageWay) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The distinct calls from a `PATH_MODULES` function into another module (comprehensions,
    lambdas and generator expressions left out: their enclosing function makes the call)."""
    return sorted(
        (caller, callee)
        for caller, callee in recorder.edges
        if caller[0] in PATH_MODULES and "<" not in caller[1] + callee[1]
    )


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
    way = sorted(recorder.way)
    way_modules = sorted({site[0] for call in way for site in call})
    path_calls = path_edges(recorder)
    into_router = [c for c in path_calls if c[1][0] == "dispatcher.router"]
    lines = [
        "`python -m bench.trace_path` (one message, receive to delete, a real worker on fauxqs",
        "and Redis with a simulated provider; first-party code only)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| the message's way: calls between modules carrying it | {len(way)} |",
        f"| the message's way: modules | {len(way_modules)}: {', '.join(way_modules)} |",
        f"| the path's calls into other modules (from {len(PATH_MODULES)} path modules) | "
        f"{len(path_calls)} |",
        f"| of those, calls into the router | {len(into_router)} |",
        f"| deep: distinct functions called | {len(functions)} ({len(named)} named) |",
        f"| deep: calls | {sum(recorder.calls.values())} |",
        f"| deep: modules | {len(modules)}: {', '.join(modules)} |",
        "",
        "The way, call by call (caller -> callee):",
        "",
        *(f"- `{a[0]}.{a[1]}` -> `{b[0]}.{b[1]}`" for a, b in way),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.calls:
        for (module, name), count in sorted(recorder.calls.items()):
            print(f"  {count:4d}  {module}.{name}")


if __name__ == "__main__":
    main()

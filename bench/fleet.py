"""The fleet: 1, 2 and 3 worker processes on one queue, on one Redis and on a three-primary
Redis Cluster, measured together.

    python -m bench.fleet [--messages N] [--quick]

Each run pre-enqueues N messages on fauxqs and starts the workers (adaptive routing over the fake
SendGrid and Mailgun at 50 ms). It reports aggregate msg/s, dispatcher CPU per message, Redis
commands (inside scripts included) and Redis CPU per message, and from the last the messages per
second one Redis core (or the cluster's three) could carry with nothing else limiting. Every
message must be accepted exactly once by the fakes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis

from bench.stack import (
    DispatcherProcess,
    Stack,
    dispatcher_toml,
    enqueue,
    message_bodies,
    open_stack,
)
from dispatcher.dev.stack import QueuePair, RedisCluster, create_queue_pair, sqs_client

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True, slots=True)
class RedisUse:
    commands: int
    cpu: float  # seconds, user + sys
    calls: Counter[str]  # INFO commandstats: calls per command (inside scripts included)
    usec: Counter[str]  # and the µs spent in them (a script's include its inner commands')

    def __sub__(self, other: RedisUse) -> RedisUse:
        calls, usec = Counter(self.calls), Counter(self.usec)
        calls.subtract(other.calls)
        usec.subtract(other.usec)
        for mine in (calls, usec):
            mine.pop("info", None)  # our own readings
        return RedisUse(self.commands - other.commands, self.cpu - other.cpu, +calls, +usec)


def redis_use(urls: Sequence[str]) -> RedisUse:
    """Commands processed, calls per command and CPU used so far, summed over the servers."""
    commands, cpu, calls, usec = 0, 0.0, Counter[str](), Counter[str]()
    for url in urls:
        with Redis.from_url(url) as client:
            info: dict[str, Any] = client.info("all")
        commands += int(info["total_commands_processed"])
        cpu += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        for field, stat in info.items():
            if field.startswith("cmdstat_"):
                calls[field.removeprefix("cmdstat_")] += int(stat["calls"])
                usec[field.removeprefix("cmdstat_")] += int(stat["usec"])
    return RedisUse(commands, cpu, calls, usec)


def breakdown(use: RedisUse, count: int) -> list[str]:
    """Markdown rows: each command's calls and µs per message, most calls first (the INFO
    commandstats diff over the run), so the figure says which commands remain and where. The
    rest of the Redis CPU is outside commands: reading, parsing and answering the clients."""
    rows = [
        f"| {name.upper()} | {calls / count:.2f} | {use.usec[name] / count:.1f} |"
        for name, calls in use.calls.most_common()
    ]
    inside = sum(v for k, v in use.usec.items() if k not in ("evalsha", "eval")) / count
    scripts = (use.usec["evalsha"] + use.usec["eval"]) / count
    return [
        "| command | calls per message | µs per message |",
        "|---|---|---|",
        *rows,
        f"| (Redis CPU in no command: INFO cpu less commandstats; noisy) | | "
        f"{1e6 * use.cpu / count - max(inside, scripts):.1f} |",
    ]


async def fill(stack: Stack, name: str, count: int) -> QueuePair:
    async with sqs_client(str(stack.sqs.endpoint_url)) as sqs:
        pair = await create_queue_pair(sqs, f"{name}-{int(time.time() * 1000)}")
        if count:
            await enqueue(sqs, pair.url, message_bodies(name, count))
    return pair


def one_run(
    stack: Stack, workers: int, count: int, redis_urls: Sequence[str], cluster: bool
) -> tuple[dict[str, float], RedisUse]:
    """Start the workers on an empty queue, then enqueue and time until all are accepted."""
    name = f"f{workers}{'c' if cluster else ''}"
    pair = asyncio.run(fill(stack, name, 0))
    config = stack.workdir / f"{name}.toml"
    config.write_text(fleet_toml(stack, pair, redis_urls[0], cluster))
    before_received = stack.received()
    with contextlib.ExitStack() as running:
        processes = [running.enter_context(DispatcherProcess(config)) for _ in range(workers)]
        cpu_before = sum(p.cpu_seconds() for p in processes)
        redis_before, started = redis_use(redis_urls), time.monotonic()
        asyncio.run(refill(stack, pair, name, count))
        deadline = started + 300
        while stack.received() - before_received < count and time.monotonic() < deadline:
            time.sleep(0.05)
        wall = time.monotonic() - started
        redis = redis_use(redis_urls) - redis_before
        cpu = sum(p.cpu_seconds() for p in processes) - cpu_before
    ids = [r["dispatcher_id"] for fake in stack.fakes for r in fake.receipts()]
    mine = [i for i in ids if str(i).startswith(f"{name}-")]
    return {
        "accepted": len(mine),
        "doubles": len(mine) - len(set(mine)),
        "msg_s": count / wall,
        "cpu_ms": 1000 * cpu / count,
        "commands": redis.commands / count,
        "redis_us": 1e6 * redis.cpu / count,
    }, redis


def fleet_toml(stack: Stack, pair: QueuePair, redis_url: str, cluster: bool) -> str:
    toml = dispatcher_toml(stack, pair, max_in_flight=500, pollers=4)
    toml = toml.replace(f"url = {json.dumps(stack.redis.url)}", f"url = {json.dumps(redis_url)}")
    return toml.replace("[redis]\n", "[redis]\ncluster = true\n") if cluster else toml


async def refill(stack: Stack, pair: QueuePair, name: str, count: int) -> None:
    async with sqs_client(str(stack.sqs.endpoint_url)) as sqs:
        await enqueue(sqs, pair.url, message_bodies(name, count))


@contextlib.contextmanager
def cluster_urls() -> Iterator[list[str]]:
    with RedisCluster() as cluster:
        yield [f"redis://127.0.0.1:{node.port}/0" for node in cluster.nodes]


def run_all(count: int, workers: Sequence[int], kinds: Sequence[bool]) -> list[str]:
    """The fleet table for each Redis kind (False one, True the cluster) and worker count, then
    the per-command breakdown of each kind's first run."""
    lines = [
        "| Redis | workers | msg/s | accepted (doubles) | CPU ms/msg | Redis cmds/msg | "
        "Redis CPU µs/msg | msg/s one Redis core carries |",
        "|---|---|---|---|---|---|---|---|",
    ]
    details: list[str] = []
    with tempfile.TemporaryDirectory() as work, open_stack(Path(work)) as stack:
        for cluster in kinds:
            label = "cluster of 3" if cluster else "one"
            with contextlib.ExitStack() as scope:
                urls = scope.enter_context(cluster_urls()) if cluster else [stack.redis.url]
                for n in workers:
                    r, use = one_run(stack, n, count, urls, cluster)
                    ceiling = 1e6 / r["redis_us"] if r["redis_us"] > 0 else float("inf")
                    lines.append(
                        f"| {label} | {n} | {r['msg_s']:,.0f} | {r['accepted']:.0f} "
                        f"({r['doubles']:.0f}) | {r['cpu_ms']:.3f} | {r['commands']:.1f} | "
                        f"{r['redis_us']:.1f} | {ceiling:,.0f} per core"
                        f"{f' (x{len(urls)} primaries)' if cluster else ''} |"
                    )
                    print(lines[-1], flush=True)
                    if n == workers[0]:
                        details += [
                            "",
                            f"Redis commands per message, {label} Redis, {n} "
                            f"worker(s) (INFO commandstats diff):",
                            "",
                            *breakdown(use, count),
                        ]
    return lines + details


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=None, help="default 6000 (quick 1500)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", default="1,2,3", help="worker counts, comma separated")
    parser.add_argument("--no-cluster", action="store_true", help="one Redis only")
    parser.add_argument("--out", type=Path, default=RESULTS / "fleet.md")
    args = parser.parse_args()
    count = args.messages or (1500 if args.quick else 6000)
    workers = [int(n) for n in args.workers.split(",")]
    kinds = (False,) if args.no_cluster else (False, True)
    flags = f" --workers {args.workers}" if args.workers != "1,2,3" else ""
    flags += " --no-cluster" if args.no_cluster else ""
    lines = [
        f"`python -m bench.fleet --messages {count}{flags}` (fauxqs, fakes at 50 ms, adaptive, "
        "max_in_flight 500 per worker)",
        "",
        *run_all(count, workers, kinds),
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

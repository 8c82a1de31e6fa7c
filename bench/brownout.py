"""Brownout end to end (issue 11, item 3): a real worker while one of three providers slows down.

    python -m bench.brownout [--quick] [--strategy NAME ...] [--out bench/results/brownout.md]

One redis-server, fauxqs and three fake SendGrid processes (`a`, `b`, `c`, each answering in
20 ms) serve every strategy in turn; each strategy gets a new queue pair, a new Redis key prefix
and its own `dispatcher run` process. Messages are enqueued at 200 msg/s, in SendMessageBatch
tens on a fixed schedule, for the healthy phase and then the fault phase; the fault begins when
`a` is told to answer in 1,000 ms (its `latency` control). Each message's enqueue time is kept
here (it is also its `created_at`); its acceptance time is the fake's receipt time.

Figures per strategy, by enqueue time: the share of the messages enqueued from `settle` seconds
after the change (10 s; 2 s with `--quick`) to the end of the fault that `a` accepted; the p99
from enqueue to acceptance of the messages enqueued in the healthy phase (its first 5 s left
out, 1 s with `--quick`: the worker warming up) and in the fault phase, and their ratio; and
the accounting: accepted (exactly once), lost (never accepted), duplicated (accepted more than
once), per provider. Targets (issue 11): slow share <= 0.1 % and p99 <= 1.2x healthy. The table
is printed and written to `--out`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.stack import API_KEY, DispatcherProcess, FakeProvider
from dispatcher.dev.messages import email_doc
from dispatcher.dev.stack import Fauxqs, QueuePair, RedisServer, create_queue_pair, sqs_client
from strategies import STRATEGIES as REGISTRY

RESULTS = Path(__file__).resolve().parent / "results"
STRATEGIES = ("adaptive", "p2c", "round_robin", "priority")
QUICK_STRATEGIES = ("adaptive", "p2c")
PROVIDERS = ("a", "b", "c")  # `a` is the one that slows down
SHARE_TARGET, RATIO_TARGET = 0.001, 1.2


@dataclass(frozen=True, slots=True)
class Phases:
    healthy: float  # seconds of enqueueing before the change
    fault: float  # seconds of enqueueing after it
    settle: float  # the slow share counts from this long after the change
    warm_up: float  # the healthy p99 leaves out the messages of the first `warm_up` seconds
    rate: float = 200.0  # messages per second
    fast_ms: float = 20.0
    slow_ms: float = 1000.0


FULL = Phases(healthy=15.0, fault=30.0, settle=10.0, warm_up=5.0)
QUICK = Phases(healthy=3.0, fault=4.0, settle=2.0, warm_up=1.0)


@dataclass(frozen=True, slots=True)
class Stack:
    redis: RedisServer
    sqs: Fauxqs
    fakes: tuple[FakeProvider, ...]  # in PROVIDERS order
    workdir: Path


@contextlib.contextmanager
def open_stack(workdir: Path) -> Iterator[Stack]:
    """redis-server, fauxqs and three fake SendGrid processes named a, b, c."""
    if not Fauxqs.installed():
        raise RuntimeError(f"fauxqs is not installed at {Fauxqs.cli_path()}: run `make fauxqs`")
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        sqs = stack.enter_context(Fauxqs())
        fakes = []
        for name in PROVIDERS:
            fake = FakeProvider("sendgrid")
            fake.name = name
            fakes.append(stack.enter_context(fake))
        yield Stack(redis, sqs, tuple(fakes), workdir)


def worker_toml(stack: Stack, pair: QueuePair, strategy: str, prefix: str) -> str:
    """A dispatcher TOML: production defaults, `strategy` over the three fakes."""
    q = json.dumps  # a JSON string is a valid TOML basic string
    providers = "".join(
        f'\n[[providers]]\nname = "{fake.name}"\ntype = "sendgrid"\n'
        f"api_key = {q(API_KEY)}\nbase_url = {q(fake.base_url)}\n"
        for fake in stack.fakes
    )
    return (
        f"[queue]\nurl = {q(pair.url)}\nendpoint_url = {q(stack.sqs.endpoint_url)}\n"
        f'dead_letter_url = {q(pair.dlq_url)}\nregion = "us-east-1"\nwait_time_seconds = 2\n'
        f"\n[redis]\nurl = {q(stack.redis.url)}\nkey_prefix = {q(prefix)}\n"
        f"\n[routing]\nstrategy = {q(strategy)}\n\n[metrics]\nport = 0\n{providers}"
    )


@dataclass(frozen=True, slots=True)
class Figures:
    strategy: str
    enqueued: int
    accepted: int  # distinct messages accepted
    lost: int
    duplicated: int
    per_provider: dict[str, int]  # receipts per fake
    slow_share: float
    healthy_p99_ms: float
    fault_p99_ms: float

    @property
    def ratio(self) -> float:
        return self.fault_p99_ms / self.healthy_p99_ms if self.healthy_p99_ms else float("nan")


async def enqueue_paced(
    stack: Stack, url: str, phases: Phases, tag: str
) -> tuple[dict[str, float], float]:
    """Batches of 10 at `phases.rate` through both phases; `a` turns slow between them.

    Returns each message's enqueue time (`time.time()`) and the time of the change."""
    interval, total = 10 / phases.rate, round((phases.healthy + phases.fault) * phases.rate / 10)
    slow_from = round(phases.healthy * phases.rate / 10)
    enqueued: dict[str, float] = {}
    changed = 0.0
    async with sqs_client(str(stack.sqs.endpoint_url)) as sqs:
        start = time.monotonic()
        for n in range(total):
            await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
            if n == slow_from:
                changed = time.time()
                await asyncio.to_thread(stack.fakes[0].control, "latency", ms=phases.slow_ms)
            now = time.time()
            ids = [f"{tag}-{10 * n + i:06d}" for i in range(10)]
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": orjson.dumps(email_doc(0, id=m, created_at=now)).decode(),
                }
                for i, m in enumerate(ids)
            ]
            reply = await sqs.send_message_batch(QueueUrl=url, Entries=entries)
            if reply.get("Failed"):
                raise RuntimeError(f"enqueue failed: {reply['Failed'][:3]}")
            enqueued.update(dict.fromkeys(ids, now))
    return enqueued, changed


async def new_queue(stack: Stack, name: str) -> QueuePair:
    async with sqs_client(str(stack.sqs.endpoint_url)) as sqs:
        return await create_queue_pair(sqs, name)


def run_strategy(stack: Stack, strategy: str, phases: Phases) -> Figures:
    """One strategy on a new queue and key prefix, in its own `dispatcher run` process."""
    tag = f"{strategy}-{uuid.uuid4().hex[:6]}"
    pair = asyncio.run(new_queue(stack, tag))
    config = stack.workdir / f"{tag}.toml"
    config.write_text(worker_toml(stack, pair, strategy, f"brownout:{tag}:"))
    for fake in stack.fakes:
        fake.control("clear")
        fake.control("latency", ms=phases.fast_ms)
    offsets = [fake.received() for fake in stack.fakes]
    with DispatcherProcess(config) as worker:
        enqueued, changed = asyncio.run(enqueue_paced(stack, pair.url, phases, tag))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(f.received() for f in stack.fakes) - sum(offsets) >= len(enqueued):
                break
            time.sleep(0.2)
        time.sleep(0.5)  # a duplicate would arrive late
        worker.terminate()
    receipts = {
        fake.name: [r for r in fake.receipts(offset) if str(r["dispatcher_id"]).startswith(tag)]
        for fake, offset in zip(stack.fakes, offsets, strict=True)
    }
    return measure(strategy, enqueued, receipts, changed, phases)


def measure(
    strategy: str,
    enqueued: dict[str, float],
    receipts: dict[str, list[dict[str, Any]]],
    changed: float,
    phases: Phases,
) -> Figures:
    """The figures of one run from the enqueue times and each fake's receipts."""
    accepted_at: dict[str, float] = {}
    owner: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for name, found in receipts.items():
        for receipt in found:
            message = str(receipt["dispatcher_id"])
            counts[message] += 1
            accepted_at.setdefault(message, float(receipt["received_at"]))
            owner.setdefault(message, name)
    start = min(enqueued.values())
    healthy = [m for m, t in enqueued.items() if start + phases.warm_up <= t < changed]
    fault = [m for m, t in enqueued.items() if t >= changed]
    settled = [m for m in fault if enqueued[m] >= changed + phases.settle and m in owner]
    return Figures(
        strategy=strategy,
        enqueued=len(enqueued),
        accepted=len([m for m in enqueued if counts[m] >= 1]),
        lost=len([m for m in enqueued if counts[m] == 0]),
        duplicated=len([m for m in enqueued if counts[m] > 1]),
        per_provider={name: len(found) for name, found in receipts.items()},
        slow_share=len([m for m in settled if owner[m] == PROVIDERS[0]]) / max(len(settled), 1),
        healthy_p99_ms=_p99_ms(healthy, enqueued, accepted_at),
        fault_p99_ms=_p99_ms(fault, enqueued, accepted_at),
    )


def _p99_ms(ids: Sequence[str], enqueued: dict[str, float], accepted: dict[str, float]) -> float:
    """p99 from enqueue to acceptance of the accepted ones among `ids` (nan when none)."""
    waits = [accepted[m] - enqueued[m] for m in ids if m in accepted]
    return float(np.percentile(waits, 99)) * 1000 if waits else float("nan")


def render(command: str, phases: Phases, found: Sequence[Figures]) -> str:
    """The markdown: the command, the workload, one row per strategy."""
    lines = [
        f"`{command}`",
        "",
        f"Three fake SendGrid processes (a, b, c) at {phases.fast_ms:g} ms; `a` answers in "
        f"{phases.slow_ms:g} ms from {phases.healthy:g} s on; {phases.rate:g} msg/s for "
        f"{phases.healthy + phases.fault:g} s; one `dispatcher run` per strategy on fauxqs and "
        f"a local redis-server. Slow share: of the messages enqueued from {phases.settle:g} s "
        "after the change, those `a` accepted. p99: enqueue to the fake's receipt. Targets: "
        f"slow share <= {SHARE_TARGET:.1%}, fault p99 <= {RATIO_TARGET:g}x healthy.",
        "",
        "| strategy | slow share | healthy p99 ms | fault p99 ms | ratio | accepted | lost "
        "| duplicated | a / b / c | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in found:
        met = f.slow_share <= SHARE_TARGET and f.ratio <= RATIO_TARGET
        split = " / ".join(str(f.per_provider.get(name, 0)) for name in PROVIDERS)
        lines.append(
            f"| {f.strategy} | {f.slow_share:.2%} | {f.healthy_p99_ms:.0f} | "
            f"{f.fault_p99_ms:.0f} | {f.ratio:.2f}x | {f.accepted} of {f.enqueued} | {f.lost} "
            f"| {f.duplicated} | {split} | {'met' if met else 'NOT met'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.brownout", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short phases, adaptive and p2c")
    parser.add_argument("--strategy", action="append", choices=sorted(REGISTRY), default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "brownout.md")
    args = parser.parse_args(args_list)
    phases = QUICK if args.quick else FULL
    strategies = args.strategy or (QUICK_STRATEGIES if args.quick else STRATEGIES)
    with tempfile.TemporaryDirectory() as work, open_stack(Path(work)) as stack:
        found = [run_strategy(stack, strategy, phases) for strategy in strategies]
    text = render(shlex.join(["python", "-m", "bench.brownout", *args_list]), phases, found)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

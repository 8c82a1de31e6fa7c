"""A shared rate limit held by 2 and 3 worker processes, measured where it matters: at the provider.

    python -m bench.rate_limit [--rate 50] [--seconds 8] [--quick]

For 2 and then 3 `dispatcher run` processes on one fauxqs queue and one Redis, the fake SendGrid
(20 ms answers) is the only provider, with `rate_limit = RATE` and no `burst`. From the fake's
accept times it reports the average rate over the run and the most accepts in any one-second
window (sliding, accept to accept), each against the limit. Targets: average within 5 %, no
window above 110 %.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import tempfile
import time
from pathlib import Path

from bench.stack import (
    DispatcherProcess,
    Stack,
    dispatcher_toml,
    enqueue,
    message_bodies,
    open_stack,
)
from dispatcher.dev.stack import QueuePair, create_queue_pair, sqs_client

RESULTS = Path(__file__).resolve().parent / "results"


def limited_toml(stack: Stack, pair: QueuePair, rate: int) -> str:
    """The stack's TOML with SendGrid alone, limited to `rate` sends per second."""
    full = dispatcher_toml(stack, pair, max_in_flight=256, pollers=2)
    sendgrid_only = full[: full.index("[[providers]]", full.index("[[providers]]") + 1)]
    return sendgrid_only.rstrip() + f"\nrate_limit = {rate}\n"


def window_peak(times: list[float]) -> int:
    """The most accepts in any one-second window."""
    return max((bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


async def fill_queue(stack: Stack, name: str, count: int) -> QueuePair:
    """A new queue pair holding `count` messages."""
    async with sqs_client(str(stack.sqs.endpoint_url)) as sqs:
        pair = await create_queue_pair(sqs, f"{name}-{int(time.time())}")
        await enqueue(sqs, pair.url, message_bodies(name, count))
    return pair


def run(stack: Stack, workers: int, rate: int, seconds: float) -> dict[str, float]:
    count = int(rate * seconds)
    before = stack.sendgrid.received()
    pair = asyncio.run(fill_queue(stack, f"r{workers}", count))
    config = stack.workdir / f"rate-{workers}.toml"
    config.write_text(limited_toml(stack, pair, rate))
    with contextlib.ExitStack() as running:
        for _ in range(workers):
            running.enter_context(DispatcherProcess(config))
        deadline = time.monotonic() + seconds * 3 + 30
        while stack.sendgrid.received() - before < count and time.monotonic() < deadline:
            time.sleep(0.2)
    times = sorted(float(r["received_at"]) for r in stack.sendgrid.receipts(before))
    steady = times[rate:]  # the first second's worth lets the workers start up
    average = (len(steady) - 1) / (steady[-1] - steady[0]) if len(steady) > 1 else 0.0
    return {"accepted": len(times), "average": average, "peak": window_peak(steady)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=None, help="default 8 (quick 4)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "rate_limit.md")
    args = parser.parse_args()
    seconds = args.seconds or (4.0 if args.quick else 8.0)
    lines = [
        f"`python -m bench.rate_limit --rate {args.rate} --seconds {seconds:g}` (fake SendGrid",
        "at 20 ms, `rate_limit` with no `burst`; times are the fake's accept times)",
        "",
        "| workers | accepted | average /s | vs limit | most in any 1 s | vs limit | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as work, open_stack(Path(work), latency_ms=20) as stack:
        for workers in (2, 3):
            found = run(stack, workers, args.rate, seconds)
            average, peak = found["average"] / args.rate, found["peak"] / args.rate
            ok = abs(average - 1) <= 0.05 and peak <= 1.10
            lines.append(
                f"| {workers} | {found['accepted']:.0f} | {found['average']:.1f} | "
                f"{average:.1%} | {found['peak']:.0f} | {peak:.0%} | "
                f"{'met' if ok else 'NOT met'} |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

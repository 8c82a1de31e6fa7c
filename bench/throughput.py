"""The full pipeline under load: fauxqs, Redis, the fake SendGrid and Mailgun (50 ms each, their
own processes) and ONE dispatcher subprocess draining a pre-enqueued backlog, measured from
outside; then the baselines on the same stack. Prints and writes bench/results/throughput.md.

    python -m bench.throughput                  # 20,000 messages (about 2 minutes)
    python -m bench.throughput --quick          # 4,000 messages, shorter baselines
    python -m bench.throughput --messages 500 --hold 100

Window: from the dispatcher's `worker_started` line to the last accept (msg/s), and from then to
the queue being empty (CPU, Redis), so the CPU covers every receive, send, record and delete.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.pipeline import DispatcherRun, measure_dispatcher
from bench.stack import Stack, child_environment, open_stack

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = (  # name, how to read it, limit, True when lower is better
    ("overhead", "dispatcher CPU/msg ÷ (POST + SQS CPU/msg)", 1.25, True),
    ("per_core", "msg/s per dispatcher core", 2500.0, False),
    ("redis_commands", "Redis commands per message (inside scripts included)", 8.0, True),
    ("redis_us", "Redis CPU µs per message (the redis-server process)", 15.0, True),
    ("round_trips", "Redis round trips per message", 0.16, True),
    ("rss_hold", "RSS at {held} in flight (MB; asked for {hold})", 150.0, True),
)
TARGETS_JSON = RESULTS / "throughput.targets.json"  # read by `python -m bench` (bench/__main__)


@dataclass(frozen=True, slots=True)
class Options:
    messages: int = 20_000
    hold: int = 2000  # sends held open at the fakes for the RSS reading (0: skip)
    max_in_flight: int = 2000
    pollers: int = 4
    latency_ms: float = 50.0
    baseline_count: int = 10_000
    seed_seconds: float = 10.0
    baselines: bool = True
    launcher: tuple[str, ...] = ("-m", "dispatcher")


@dataclass(frozen=True, slots=True)
class Baseline:
    count: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.count

    @property
    def rate(self) -> float:
        return self.count / self.wall_s


@dataclass(frozen=True, slots=True)
class Result:
    options: Options
    run: DispatcherRun
    post: Baseline | None = None
    sqs: Baseline | None = None
    sqs_lean: Baseline | None = None
    seed: Baseline | None = None
    concurrency: int = 0  # of the POST baseline: the dispatcher's mean sends in flight

    def figures(self) -> dict[str, float]:
        run = self.run
        found = {
            "per_core": run.per_core,
            "round_trips": run.reads_per_msg,
            "redis_commands": run.redis.commands / run.messages,
            "redis_us": 1e6 * run.others.get("redis", math.nan) * run.cpu_wall_s / run.messages,
            "rss_hold": run.rss_hold_mb if self.options.hold else float("nan"),
        }
        if self.post and self.sqs:
            found["overhead"] = run.cpu_ms / (self.post.cpu_ms + self.sqs.cpu_ms)
        return found


async def baseline(module: str, *args: object) -> Baseline:
    """Run `python -m bench.baselines.<module> ARGS` and read its JSON line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"bench.baselines.{module}",
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        env=child_environment(),
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"baseline {module} exited with {process.returncode}")
    doc = json.loads(out.decode().strip().splitlines()[-1])
    return Baseline(int(doc["count"]), float(doc["cpu_s"]), float(doc["wall_s"]))


async def run_baselines(stack: Stack, options: Options, result: Result) -> Result:
    concurrency = max(1, round(result.run.rate * result.run.mean_send_ms / 1000))
    count = options.baseline_count
    post = await baseline(
        "post_loop",
        *("--sendgrid", stack.sendgrid.base_url, "--mailgun", stack.mailgun.base_url),
        *("--count", count, "--concurrency", concurrency),
    )
    sqs_args = ("--endpoint", stack.sqs.endpoint_url, "--count", count, "--pollers", 4)
    sqs = await baseline("sqs_loop", *sqs_args)
    sqs_lean = await baseline("sqs_loop", *sqs_args, "--client", "lean")
    seed = await baseline(
        "seed_worker",
        *("--endpoint", stack.sqs.endpoint_url, "--redis-url", stack.redis.url),
        *("--sendgrid", stack.sendgrid.base_url, "--mailgun", stack.mailgun.base_url),
        *("--seconds", options.seed_seconds, "--count", 2000),
    )
    return replace(
        result, post=post, sqs=sqs, sqs_lean=sqs_lean, seed=seed, concurrency=concurrency
    )


async def run(options: Options, workdir: Path) -> Result:
    with open_stack(workdir, options.latency_ms) as stack:
        measured = await measure_dispatcher(
            stack,
            f"tp-{uuid.uuid4().hex[:6]}",
            options.messages,
            hold=options.hold,
            max_in_flight=options.max_in_flight,
            pollers=options.pollers,
            launcher=options.launcher,
        )
        result = Result(options, measured)
        if options.baselines:
            result = await run_baselines(stack, options, result)
    return result


def _verdict(value: float, limit: float, lower: bool) -> str:
    if math.isnan(value):
        return "not measured"
    met = value <= limit if lower else value >= limit
    return "met" if met else "**NOT met**"


def render(result: Result, command: str) -> str:
    run, o = result.run, result.options
    lines = [
        f"`{command}`",
        "",
        f"{o.messages:,} messages pre-enqueued on fauxqs; one dispatcher process "
        f"(adaptive, SendGrid + Mailgun fakes at {o.latency_ms:g} ms, max_in_flight "
        f"{o.max_in_flight}, pollers {o.pollers}). Each server is its own process; the "
        "machine is shared, so figures are noisy.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| accepted by the fakes | {run.accepted:,} of {o.messages:,} "
        f"(distinct {run.distinct:,}, doubles {run.doubles}) |",
        f"| logged SENT by the dispatcher | {run.logged_sent:,} |",
        f"| wall (worker_started → last accept) | {run.wall_s:.2f} s |",
        f"| **msg/s** | {run.rate:,.0f} |",
        f"| dispatcher CPU | {run.cpu_s:.2f} s ({run.cores:.2f} cores busy) |",
        "| other processes during the window (cores busy) | "
        + ", ".join(f"{k} {v:.2f}" for k, v in run.others.items())
        + f"; machine {run.machine[0]:.2f} of {run.machine[1]:.0f} |",
        f"| **CPU ms/msg** | {run.cpu_ms:.3f} |",
        f"| **msg/s per dispatcher core** | {run.per_core:,.0f} |",
        f"| Redis EVALSHA per msg | {run.redis.evalsha / run.accepted:.3f} |",
        f"| Redis commands per msg (incl. inside scripts) | "
        f"{run.redis.commands / run.accepted:.2f} |",
        f"| Redis CPU per msg (redis-server, user + sys) | {result.figures()['redis_us']:.1f} µs |",
        f"| **Redis round trips per msg** (server read events) | {run.reads_per_msg:.3f} |",
        f"| latency created_at → accept p50 / p99 (includes the backlog wait) | "
        f"{run.created_p50 * 1000:,.0f} / {run.created_p99 * 1000:,.0f} ms |",
        f"| latency claim → accept p50 / p99 | "
        f"{run.claim_p50 * 1000:,.1f} / {run.claim_p99 * 1000:,.1f} ms |",
        f"| mean provider call (dispatcher log) | {run.mean_send_ms:.1f} ms |",
        f"| peak RSS (VmHWM) after the run | {run.peak_rss_mb:.1f} MB |",
    ]
    if o.hold:
        lines.append(
            f"| RSS with {run.held:,} sends held open | {run.rss_hold_mb:.1f} MB "
            f"(VmHWM {run.peak_hold_mb:.1f} MB) |"
        )
    lines.append(f"| exit status after SIGTERM | {run.exit_code} |")
    lines += _baseline_lines(result)
    lines += ["", "### Targets", "", *target_rows(result)]
    return "\n".join(lines) + "\n"


def target_rows(result: Result) -> list[str]:
    """The targets table: each figure beside its limit, and whether it is met."""
    figures, o, run = result.figures(), result.options, result.run
    rows = ["| target | value | limit | verdict |", "|---|---|---|---|"]
    for name, text, limit, lower in TARGETS:
        value = figures.get(name, float("nan"))
        shown = f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
        rows.append(
            f"| {text.format(hold=o.hold, held=run.held)} | {shown} | {'≤' if lower else '≥'} "
            f"{limit:g} | {_verdict(value, limit, lower)} |"
        )
    return rows


def _baseline_lines(result: Result) -> list[str]:
    post, sqs, seed, run = result.post, result.sqs, result.seed, result.run
    if not (post and sqs and seed):
        return []
    return [
        "",
        "### Baselines (same stack, same run)",
        "",
        "| baseline | count | CPU ms each | rate |",
        "|---|---|---|---|",
        f"| (a) bare aiohttp POST, concurrency {result.concurrency} | {post.count:,} | "
        f"{post.cpu_ms:.3f} | {post.rate:,.0f} req/s |",
        f"| (b) bare aiobotocore receive(10) + delete batch | {sqs.count:,} | "
        f"{sqs.cpu_ms:.3f} | {sqs.rate:,.0f} msg/s |",
        *(
            [
                f"| (b') the same through a lean SQS client (prototype: aiohttp + SigV4, no "
                f"retries) | {result.sqs_lean.count:,} | {result.sqs_lean.cpu_ms:.3f} | "
                f"{result.sqs_lean.rate:,.0f} msg/s |"
            ]
            if result.sqs_lean
            else []
        ),
        f"| (c) seed-style worker (one at a time) | {seed.count:,} | "
        f"{seed.cpu_ms:.3f} | {seed.rate:,.1f} msg/s |",
        "",
        f"- overhead = {run.cpu_ms:.3f} / ({post.cpu_ms:.3f} + {sqs.cpu_ms:.3f}) = "
        f"**{run.cpu_ms / (post.cpu_ms + sqs.cpu_ms):.2f}**",
        f"- speed vs the seed worker: **{run.rate / seed.rate:,.0f}x** msg/s, "
        f"{seed.cpu_ms / run.cpu_ms:.1f}x less CPU per message",
    ]


def summary(result: Result) -> list[dict[str, object]]:
    """The targets `python -m bench` puts at the top of RESULTS.md, with their values."""
    figures = result.figures()
    return [
        {"text": text, "limit": limit, "lower": lower, "value": figures.get(name)}
        for name, text, limit, lower in TARGETS
        if name in ("overhead", "redis_commands", "redis_us", "round_trips")
    ]


def parse_args(argv: Sequence[str] | None) -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__)
    parser.add_argument("--messages", type=int, default=None, help="default 20000 (quick 4000)")
    parser.add_argument("--quick", action="store_true", help="fewer messages, short baselines")
    parser.add_argument("--hold", type=int, default=2000, help="sends held for RSS (0: skip)")
    parser.add_argument("--max-in-flight", type=int, default=2000)
    parser.add_argument("--pollers", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput.md")
    args = parser.parse_args(argv)
    default, count = (4000, 3000) if args.quick else (20_000, 10_000)
    options = Options(
        messages=args.messages or default,
        hold=args.hold,
        max_in_flight=args.max_in_flight,
        pollers=args.pollers,
        latency_ms=args.latency_ms,
        baseline_count=min(count, args.messages or count),
        seed_seconds=3.0 if args.quick else 10.0,
        baselines=not args.no_baselines,
    )
    return options, args.out


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    options, out = parse_args(arguments)
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        result = asyncio.run(run(options, Path(workdir)))
    command = " ".join(["python -m bench.throughput", *arguments])
    text = render(result, command)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if out.parent == RESULTS:  # the default run: its targets go in RESULTS.md's summary too
        TARGETS_JSON.write_text(json.dumps({"command": command, "targets": summary(result)}))
    return 0 if result.run.doubles == 0 and result.run.distinct == options.messages else 1


if __name__ == "__main__":
    raise SystemExit(main())

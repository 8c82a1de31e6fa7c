"""Locust against the stack, headless, each run in its own process; summary in
bench/results/load.md, locust's CSVs in bench/results/locust/.

    python -m bench.load                      # both scenarios, 30 s each
    python -m bench.load --duration 10s --intake-users 10 --e2e-users 10

Scenario 1 (intake) enqueues as fast as its users can to a queue nobody drains: what SQS
intake sustains from one locust process. Scenario 2 (end-to-end) enqueues at a fixed pace to the
queue one dispatcher subprocess drains (adaptive, both fakes at 50 ms) and reports enqueue →
accepted latency from the fakes' receipts; afterwards every message of the run is checked:
accepted once, none missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.pipeline import claim_times, percentile, until
from bench.stack import DispatcherProcess, Stack, child_environment, open_stack
from dispatcher.dev.fakes.views import from_mailgun, from_sendgrid
from dispatcher.dev.stack import QueuePair, create_queue_pair, queue_depth, sqs_client

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CREATED_TAG = "created_ms"  # set by bench/locustfile.py (not imported here: it loads gevent)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    users: tuple[str, ...]
    count: int
    extra: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ran:
    command: str
    stats: list[dict[str, Any]]  # locust's final stats (--json-file), one entry per name
    exit_code: int


def locust_command(
    scenario: Scenario, stack: Stack, url: str, duration: str, csv: Path
) -> list[str]:
    return [
        *(sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless"),
        *("-u", str(scenario.count), "-r", str(scenario.count), "-t", duration),
        *("--csv", str(csv), "--json-file", str(csv), "--only-summary", "--loglevel", "WARNING"),
        *scenario.users,
        *("--sqs-endpoint", stack.sqs.endpoint_url, "--queue-url", url),
        *scenario.extra,
    ]


def run_locust(command: list[str]) -> Ran:
    """Locust in its own process; its CSV rows read back."""
    csv_prefix = Path(command[command.index("--csv") + 1])
    done = subprocess.run(command, env=child_environment(), check=False, cwd=HERE.parent)
    stats = json.loads(Path(f"{csv_prefix}.json").read_text())
    shown = ["locust", *command[3:]]
    shown[shown.index("-f") + 1] = "bench/locustfile.py"
    for flag in ("--csv", "--json-file"):
        shown[shown.index(flag) + 1] = f"bench/results/locust/{csv_prefix.name}"
    return Ran(shlex.join(shown), stats, done.returncode)


def check_receipts(stack: Stack, offsets: Sequence[int]) -> dict[str, float]:
    """Every accept of a locust message since `offsets`: counts, doubles, and latencies split at
    the dispatcher's claim (the ledger's `received_at`), in ms."""
    accepted: dict[str, tuple[float, float]] = {}  # id -> (created, accepted), epoch ms
    total = 0
    for fake, offset in zip(stack.fakes, offsets, strict=True):
        view = from_sendgrid if fake.kind == "sendgrid" else from_mailgun
        for receipt in fake.receipts(offset):
            created = dict(view(receipt["payload"]).tags).get(CREATED_TAG)
            if created is not None:
                total += 1
                accepted[str(receipt["dispatcher_id"])] = (
                    float(created),
                    receipt["received_at"] * 1000,
                )
    claimed = claim_times(stack.redis.url, list(accepted))
    end_to_end = [a - c for c, a in accepted.values()]
    to_claim = [claimed[i] * 1000 - c for i, (c, _) in accepted.items() if i in claimed]
    to_accept = [a - claimed[i] * 1000 for i, (_, a) in accepted.items() if i in claimed]
    figures = {"accepted": float(total), "distinct": float(len(accepted))}
    figures["doubles"] = figures["accepted"] - figures["distinct"]
    for name, values in (("e2e", end_to_end), ("claim", to_claim), ("send", to_accept)):
        for share in (0.5, 0.95, 0.99):
            figures[f"{name}_p{round(share * 100)}"] = percentile(values, share)
    return figures


async def queues(stack: Stack) -> tuple[str, QueuePair]:
    async with sqs_client(stack.sqs.endpoint_url) as sqs:
        intake = await sqs.create_queue(QueueName=f"load-intake-{uuid.uuid4().hex[:6]}")
        pair = await create_queue_pair(sqs, f"load-e2e-{uuid.uuid4().hex[:6]}")
    return str(intake["QueueUrl"]), pair


async def wait_drained(stack: Stack, url: str, seconds: float = 120) -> float:
    started = time.monotonic()
    async with sqs_client(stack.sqs.endpoint_url) as sqs:

        async def empty() -> bool:
            return await queue_depth(sqs, url) == 0

        await until(empty, seconds, "the end-to-end queue to drain")
    return time.monotonic() - started


def run_scenarios(args: argparse.Namespace, workdir: Path, csv_dir: Path) -> str:
    with open_stack(workdir) as stack:
        intake_url, pair = asyncio.run(queues(stack))
        dispatcher = DispatcherProcess(stack.write_config(pair, max_in_flight=2000))
        with dispatcher:
            intake = run_locust(
                locust_command(
                    Scenario("intake", ("IntakeUser",), args.intake_users),
                    *(stack, intake_url, args.duration, csv_dir / "intake"),
                )
            )
            offsets = [fake.received() for fake in stack.fakes]
            fakes = ",".join(fake.base_url for fake in stack.fakes)
            e2e_scenario = Scenario(
                "e2e",
                ("EndToEndUser", "ReceiptWatcher"),
                args.e2e_users + 1,
                ("--fake-urls", fakes, "--batches-per-second", str(args.batches_per_second)),
            )
            e2e = run_locust(
                locust_command(e2e_scenario, stack, pair.url, args.duration, csv_dir / "e2e")
            )
            tail = asyncio.run(wait_drained(stack, pair.url))
            checked = check_receipts(stack, offsets)
            exit_code = dispatcher.terminate()
    return summary(args, intake, e2e, checked, tail, exit_code)


def _row(ran: Ran, name: str) -> dict[str, Any]:
    return next((r for r in ran.stats if r.get("name") == name), {})


def _percentile(histogram: dict[str, int], share: float) -> float:
    """From locust's rounded response-time histogram, as locust computes it."""
    total, seen = sum(histogram.values()), 0
    for value, count in sorted((float(v), c) for v, c in histogram.items()):
        seen += count
        if seen >= share * total:
            return value
    return float("nan")


def summary(
    args: argparse.Namespace,
    intake: Ran,
    e2e: Ran,
    checked: dict[str, float],
    tail: float,
    exit_code: int,
) -> str:
    batch = "SendMessageBatch (10 messages)"
    i, e, lat = _row(intake, batch), _row(e2e, batch), _row(e2e, "enqueue→accepted")
    enqueued = 10 * (e.get("num_requests", 0) - e.get("num_failures", 0))
    return "\n".join(
        [
            f"`{' '.join(['python -m bench.load', *args.argv])}`",
            "",
            "Locust runs in its own process; the stack is bench/stack.py (fauxqs, redis-server,",
            "the fake SendGrid and Mailgun at 50 ms) with one dispatcher subprocess. Commands run:",
            "",
            "```sh",
            intake.command,
            e2e.command,
            "```",
            "",
            "| scenario | what | requests | failures | req/s | msg/s | p50 | p95 | p99 |",
            "|---|---|---|---|---|---|---|---|---|",
            _line("1 intake", batch, i, 10),
            _line("2 end-to-end", batch, e, 10),
            _line("2 end-to-end", "enqueue→accepted (locust metric)", lat, 1),
            "",
            f"Scenario 2, checked at the fakes after the queue drained ({tail:.1f} s after "
            f"locust stopped): {enqueued:,} enqueued, {checked['accepted']:,.0f} accepted, "
            f"{checked['distinct']:,.0f} distinct, {checked['doubles']:,.0f} doubles, "
            f"{enqueued - checked['distinct']:,.0f} missing.",
            "",
            "| enqueue-to-accept, split at the claim (ledger `received_at`) | p50 | p95 | p99 |",
            "|---|---|---|---|",
            *(
                f"| {label} | "
                + " | ".join(f"{checked[f'{key}_p{q}']:,.0f} ms" for q in (50, 95, 99))
                + " |"
                for label, key in (
                    ("created_at → accepted", "e2e"),
                    ("created_at → claimed (SQS, receive, decode)", "claim"),
                    ("claimed → accepted (route, send incl. the fake's 50 ms)", "send"),
                )
            ),
            "",
            f"Locust exit codes {intake.exit_code}, {e2e.exit_code}; dispatcher exit {exit_code}.",
            "",
        ]
    )


def _line(scenario: str, what: str, row: dict[str, Any], per_request: int) -> str:
    if not row or not row["num_requests"]:
        return f"| {scenario} | {what} | (no data) | | | | | | |"
    span = max(1e-9, row["last_request_timestamp"] - row["start_time"])
    rate = row["num_requests"] / span
    p50, p95, p99 = (_percentile(row["response_times"], q) for q in (0.5, 0.95, 0.99))
    return (
        f"| {scenario} | {what} | {row['num_requests']:,} | {row['num_failures']} | "
        f"{rate:,.1f} | {rate * per_request:,.0f} | {p50:,.0f} ms | {p95:,.0f} ms | "
        f"{p99:,.0f} ms |"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--duration", default=None, help="per scenario (locust -t; 30s)")
    parser.add_argument("--quick", action="store_true", help="10 s per scenario")
    parser.add_argument("--intake-users", type=int, default=20)
    parser.add_argument("--e2e-users", type=int, default=10, help="x 10 msg x pace = msg/s")
    parser.add_argument("--batches-per-second", type=float, default=2.0, help="per e2e user")
    parser.add_argument("--out", type=Path, default=RESULTS / "load.md")
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    args.duration = args.duration or ("10s" if args.quick else "30s")
    args.argv = arguments
    csv_dir = args.out.parent / "locust"
    csv_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as workdir:
        text = run_scenarios(args, Path(workdir), csv_dir)
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

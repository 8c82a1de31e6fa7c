"""The intake API under locust: single sends and a 100,000-row CSV campaign, beside the same-run
bare SendMessageBatch baseline (bench/locustfile.py's IntakeUser on the same fauxqs). Writes
bench/results/api.md.

    python -m bench.api                     # 20 s per timed scenario, 100,000 rows
    python -m bench.api --quick             # 5 s, 5,000 rows

Figures: enqueued messages per second and per CPU second of the API process (one event loop:
one core), p50/p99 request latency, the API's RSS growth during the upload (sampled every
20 ms from /proc), and Redis bytes per message record with its indexes (`MEMORY USAGE`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.api_stack import (
    API_KEY,
    ApiProcess,
    RssPeak,
    api_toml,
    batch_total,
    redis_bytes,
    used_memory,
    write_campaign,
)
from bench.load import Ran, Scenario, _line, _row, locust_command, run_locust
from bench.stack import Stack, cpu_seconds, memory_mb, open_stack
from dispatcher.api.auth import hash_key
from dispatcher.dev.stack import create_queue_pair, free_port, sqs_client

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RECIPIENTS = 10


def run_api_locust(command: list[str]) -> Ran:
    ran = run_locust(command)
    return replace(ran, command=ran.command.replace("locustfile.py", "api_locustfile.py"))


def api_command(
    users: tuple[str, ...], count: int, api: ApiProcess, duration: str, csv: Path, *extra: str
) -> list[str]:
    return [
        *(sys.executable, "-m", "locust", "-f", str(HERE / "api_locustfile.py"), "--headless"),
        *("-u", str(count), "-r", str(count), "-t", duration, "-H", api.url),
        *("--csv", str(csv), "--json-file", str(csv), "--only-summary", "--loglevel", "WARNING"),
        *users,
        *("--api-key", API_KEY),
        *extra,
    ]


async def _queues(stack: Stack) -> tuple[str, str, str]:
    async with sqs_client(stack.sqs.endpoint_url) as sqs:
        base = await sqs.create_queue(QueueName=f"api-base-{uuid.uuid4().hex[:6]}")
        pair = await create_queue_pair(sqs, f"api-in-{uuid.uuid4().hex[:6]}")
    return str(base["QueueUrl"]), pair.url, pair.dlq_url


def run(args: argparse.Namespace, workdir: Path, csv_dir: Path) -> str:
    with open_stack(workdir) as stack:
        base_url, api_url, dlq_url = asyncio.run(_queues(stack))
        baseline = run_locust(
            locust_command(
                Scenario("baseline", ("IntakeUser",), args.users),
                *(stack, base_url, args.duration, csv_dir / "api-baseline"),
            )
        )
        keys = workdir / "api-keys"
        keys.write_text(f"bench:{hash_key(API_KEY)}\n")
        config = workdir / "api.toml"
        port = free_port()
        config.write_text(api_toml(stack, api_url, dlq_url, port, keys))
        with ApiProcess(config, port) as api:
            cpu, redis_at = cpu_seconds(api.pid), [used_memory(stack.redis.url)]
            sends = run_api_locust(
                api_command(
                    ("ApiSendUser",),
                    args.users,
                    api,
                    args.duration,
                    csv_dir / "api-sends",
                    "--recipients",
                    str(RECIPIENTS),
                )
            )
            send_cpu = cpu_seconds(api.pid) - cpu
            redis_at.append(used_memory(stack.redis.url))
            campaign_csv = workdir / "campaign.csv"
            write_campaign(campaign_csv, args.rows)
            rss_before, cpu = memory_mb(api.pid)["VmRSS"], cpu_seconds(api.pid)
            peak = RssPeak(api.pid)
            peak.start()
            campaign = run_api_locust(
                api_command(
                    ("ApiCampaignUser",),
                    1,
                    api,
                    "900s",
                    csv_dir / "api-campaign",
                    "--campaign-csv",
                    str(campaign_csv),
                )
            )
            rss_peak = peak.stop()
            campaign_cpu = cpu_seconds(api.pid) - cpu
            accepted = batch_total(api, "bench-campaign")
        redis_at.append(used_memory(stack.redis.url))
        memory = redis_bytes(stack.redis.url)
        memory["sends_delta"] = float(redis_at[1] - redis_at[0])
        memory["campaign_delta"] = float(redis_at[2] - redis_at[1])
    return render(
        args,
        baseline,
        sends,
        send_cpu,
        campaign,
        campaign_cpu,
        accepted,
        rss_before,
        rss_peak,
        memory,
    )


def render(
    args: argparse.Namespace,
    baseline: Ran,
    sends: Ran,
    send_cpu: float,
    campaign: Ran,
    campaign_cpu: float,
    accepted: int,
    rss_before: float,
    rss_peak: float,
    memory: dict[str, float],
) -> str:
    batch = "SendMessageBatch (10 messages)"
    send_name = f"POST /v1/emails ({RECIPIENTS} recipients)"
    b, s, c = _row(baseline, batch), _row(sends, send_name), _row(campaign, "POST /v1/campaigns")
    sent = RECIPIENTS * (s.get("num_requests", 0) - s.get("num_failures", 0))
    span = max(1e-9, s.get("last_request_timestamp", 0) - s.get("start_time", 0))
    upload_s = (c.get("total_response_time", 0) or 0) / 1000
    return "\n".join(
        [
            f"`{' '.join(['python -m bench.api', *args.argv])}`",
            "",
            "One `dispatcher api` process (one event loop) on the bench stack (fauxqs,",
            "redis-server); its queue is not drained. Locust runs in its own process:",
            "",
            "```sh",
            baseline.command,
            sends.command,
            campaign.command,
            "```",
            "",
            "| scenario | what | requests | failures | req/s | msg/s | p50 | p95 | p99 |",
            "|---|---|---|---|---|---|---|---|---|",
            _line("baseline", f"bare {batch}", b, 10),
            _line("single sends", send_name, s, RECIPIENTS),
            f"| campaign | POST /v1/campaigns ({args.rows:,} rows), one upload | "
            f"{c.get('num_requests', 0)} | {c.get('num_failures', 0)} | | "
            f"{accepted / max(upload_s, 1e-9):,.0f} | {upload_s * 1000:,.0f} ms | | |",
            "",
            "| figure | value |",
            "|---|---|",
            f"| single sends: messages enqueued | {sent:,} in {span:.1f} s "
            f"({sent / span:,.0f} msg/s) |",
            f"| single sends: API CPU | {send_cpu:.1f} s: **{sent / max(send_cpu, 1e-9):,.0f} "
            "msg per API CPU second** |",
            f"| campaign: rows accepted (GET /v1/batches) | {accepted:,} of {args.rows:,} in "
            f"{upload_s:.1f} s ({accepted / max(upload_s, 1e-9):,.0f} msg/s) |",
            f"| campaign: API CPU | {campaign_cpu:.1f} s: "
            f"**{accepted / max(campaign_cpu, 1e-9):,.0f} msg per API CPU second** |",
            f"| campaign: API RSS | {rss_before:.1f} MB before, {rss_peak:.1f} MB peak: "
            f"**+{rss_peak - rss_before:.1f} MB** during the upload |",
            f"| Redis per message: record | {memory['record']:,.0f} bytes "
            f"(mean MEMORY USAGE of {memory['records']:,.0f} records) |",
            f"| Redis per message: indexes | {memory['indexes']:,.0f} bytes "
            f"({memory['index_keys']:,.0f} index keys / records) |",
            f"| Redis per message: total over all keys | "
            f"{memory['record'] + memory['indexes']:,.0f} bytes |",
            f"| Redis per message, campaign (one batch): used_memory growth / rows | "
            f"**{memory['campaign_delta'] / max(accepted, 1):,.0f} bytes** |",
            f"| Redis per message, single sends (a batch per request): growth / messages | "
            f"**{memory['sends_delta'] / max(sent, 1):,.0f} bytes** |",
            "",
            f"Locust exit codes {baseline.exit_code}, {sends.exit_code}, {campaign.exit_code}.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--duration", default=None, help="per timed scenario (20s)")
    parser.add_argument("--quick", action="store_true", help="5 s scenarios, 5,000 rows")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--rows", type=int, default=None, help="campaign rows (100,000)")
    parser.add_argument("--out", type=Path, default=RESULTS / "api.md")
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    args.duration = args.duration or ("5s" if args.quick else "20s")
    args.rows = args.rows or (5000 if args.quick else 100_000)
    args.argv = arguments
    csv_dir = args.out.parent / "locust"
    csv_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as workdir:
        text = run(args, Path(workdir), csv_dir)
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

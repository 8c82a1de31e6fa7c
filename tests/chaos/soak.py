"""The soak: a steady rate for N minutes while the faults cycle; worker RSS, sends in flight
and Redis `used_memory` sampled every few seconds; each reported as a least-squares slope per
minute ("flat" is under 1 MB/min). The worker SIGKILL and SIGTERM faults are left out of the
cycle: a restarted worker starts small again, which would hide a leak in the slope.
The ledger keeps every record for `dispatch.record_ttl_days`, so Redis grows with the messages
sent by design; the key count's slope is printed beside it to tell that from a leak.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.chaos.runner import Options, Phase, Stage, open_rig, run_phase
from tests.chaos.schedule import MAIN, Fault, schedule_seconds
from tests.chaos.stack import DispatcherProcess

FLAT_MB_PER_MINUTE = 1.0
CYCLE: tuple[Fault, ...] = tuple(f for f in MAIN if not f.name.startswith("worker"))


@dataclass
class Samples:
    minutes: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)  # all workers together
    in_flight: list[float] = field(default_factory=list)
    redis_mb: list[float] = field(default_factory=list)
    redis_keys_k: list[float] = field(default_factory=list)  # thousands of keys (the records)

    def slopes(self) -> dict[str, float]:
        if len(self.minutes) < 3:
            return {}
        return {
            name: statistics.linear_regression(self.minutes, values).slope
            for name, values in (
                ("worker RSS (MB/min)", self.rss_mb),
                ("in flight (sends/min)", self.in_flight),
                ("redis used_memory (MB/min)", self.redis_mb),
                ("redis keys (thousands/min)", self.redis_keys_k),
            )
        }


def rss_mb(processes: list[DispatcherProcess]) -> float:
    total_kb = 0
    for process in processes:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except (OSError, TypeError):
            continue
        line = next((x for x in status.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
        total_kb += int(line.split()[1])
    return total_kb / 1024


async def in_flight(http: aiohttp.ClientSession, ports: list[int]) -> float:
    total = 0.0
    for port in ports:
        try:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as reply:
                text = await reply.text()
        except aiohttp.ClientError:
            continue
        for line in text.splitlines():
            if line.startswith("dispatcher_in_flight "):
                total += float(line.split()[1])
    return total


async def _redis_memory(port: int) -> tuple[float | None, float | None]:
    """`used_memory` in MB and thousands of keys; None while Redis is down (a fault)."""
    redis = Redis(port=port)
    try:
        info = await redis.info("memory")
        return int(info["used_memory"]) / 2**20, await redis.dbsize() / 1000
    except (OSError, RedisError):
        return None, None
    finally:
        await redis.aclose()


async def sample(stage: Stage, samples: Samples, seconds: float, every: float) -> None:
    started = time.monotonic()
    workers = stage.rig.workers
    while (elapsed := time.monotonic() - started) < seconds:
        memory, keys = await _redis_memory(stage.rig.redis.port)
        samples.redis_mb.append(memory if memory is not None else samples.redis_mb[-1])
        samples.redis_keys_k.append(keys if keys is not None else samples.redis_keys_k[-1])
        samples.minutes.append(elapsed / 60)
        samples.rss_mb.append(rss_mb(workers))
        samples.in_flight.append(await in_flight(stage.http, stage.metrics_ports))
        await asyncio.sleep(every)


async def run_soak(
    options: Options, folder: Path, minutes: float, rate: float
) -> tuple[Phase, Samples]:
    one_cycle = schedule_seconds(CYCLE, ci=True, gap=options.gap)
    faults = CYCLE * max(1, math.ceil(minutes * 60 / one_cycle))
    seconds = schedule_seconds(faults, ci=True, gap=options.gap)
    samples = Samples()
    async with open_rig(options, folder) as stage:
        phase = await run_phase(
            stage,
            "soak",
            faults,
            int(rate * seconds),
            options,
            during=[lambda: sample(stage, samples, seconds, 5.0)],
        )
    return phase, samples


def render(samples: Samples) -> str:
    lines = [f"{len(samples.minutes)} samples over {samples.minutes[-1]:.1f} min"]
    for name, slope in samples.slopes().items():
        verdict = ""
        if "MB" in name:
            verdict = "  flat" if abs(slope) < FLAT_MB_PER_MINUTE else "  NOT flat"
        lines.append(f"  {name:<28} {slope:+8.3f}{verdict}")
    return "\n".join(lines)

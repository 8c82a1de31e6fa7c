"""The routing simulator (bench.simulate): its virtual clock, and short runs on a real Redis.

Every run is a `--quick` scenario (0.4x long, 100 msg/s); the assertions are on outcomes and
virtual time, never on wall time.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bench import simulate
from bench.sim.clock import VirtualTime
from bench.sim.engine import SimConfig, Simulation, Trace
from bench.sim.metrics import measure
from bench.sim.scenarios import Scenario, build_scenario
from providers.base import Status

QUICK = SimConfig(rate=simulate.QUICK_RATE)


async def run(
    redis_url: str, scenario: str, strategy: str, seed: int = 1
) -> tuple[Scenario, Trace]:
    built = build_scenario(scenario, quick=True)
    client = Redis.from_url(redis_url)
    try:
        prefix = f"t:sim:{uuid.uuid4().hex[:8]}:"
        trace = await Simulation(built, strategy, client, prefix, seed, QUICK).run()
    finally:
        await client.aclose()
    return built, trace


# the virtual clock


async def test_time_advances_in_order_and_only_when_every_task_waits() -> None:
    clock, seen = VirtualTime(), []

    async def sender(name: str, delay: float) -> None:
        await asyncio.sleep(0.01)  # real I/O: the clock must wait for it
        await clock.sleep(delay)
        seen.append((name, clock.now))

    async def start() -> None:
        clock.spawn(sender("slow", 2.0))
        clock.spawn(sender("fast", 0.5))

    clock.call_at(1.0, start)
    await clock.run(until=10.0, finished=lambda: False)
    assert seen == [("fast", 1.5), ("slow", 3.0)]


async def test_the_clock_stops_at_its_horizon_and_surfaces_task_errors() -> None:
    clock = VirtualTime()

    async def broken() -> None:
        await clock.sleep(1.0)
        raise ValueError("boom")

    async def start() -> None:
        clock.spawn(broken())

    clock.call_at(0.0, start)
    with pytest.raises(ValueError, match="boom"):
        await clock.run(until=10.0, finished=lambda: False)
    assert clock.now == 1.0


# runs on a real Redis


async def test_adaptive_shifts_away_from_an_outage_and_loses_nothing(redis_url: str) -> None:
    scenario, trace = await run(redis_url, "outage", "adaptive")
    metrics = measure(trace, scenario, "adaptive")
    assert metrics.arrived == int(scenario.duration * QUICK.rate)
    assert metrics.accepted == metrics.arrived
    assert metrics.duplicates == 0
    assert metrics.shift_seconds is not None
    assert metrics.shift_seconds <= 1.0
    assert metrics.focus_share is not None
    assert metrics.focus_share < 0.05
    onset, healed = scenario.fault_window()
    late = [s for s in trace.sends if s[0] == 0 and onset + 2 <= s[1] < healed]
    assert all(s[3] is Status.DOWN for s in late)  # only its probes still reach it
    assert len(late) < 20


def check_accounting(trace: Trace) -> None:
    """Every message accepted exactly once, or counted failed, or still pending: never two."""
    accepted = [a for a in trace.accepted_at if a is not None]
    sent = [s for s in trace.sends if s[3] is Status.SENT]
    assert trace.duplicates == 0
    assert len(sent) == len(accepted)  # one accepting send per accepted message
    assert all(a >= t for a, t in zip(trace.accepted_at, trace.arrived, strict=True) if a)
    for accepted_at, failed in zip(trace.accepted_at, trace.failed, strict=True):
        assert not (accepted_at is not None and failed)


async def test_all_down_is_shed_then_delivered_and_runs_are_deterministic(
    redis_url: str,
) -> None:
    scenario, first = await run(redis_url, "all_down", "adaptive", seed=7)
    _, again = await run(redis_url, "all_down", "adaptive", seed=7)
    _, other = await run(redis_url, "all_down", "adaptive", seed=8)
    for trace in (first, again, other):
        check_accounting(trace)
    metrics = measure(first, scenario, "adaptive")
    assert metrics.pending == 0
    assert metrics.accepted + metrics.failed == metrics.arrived
    assert metrics.shed > 0  # nothing could take the work while every breaker was open
    assert (again.sends, again.samples, again.accepted_at) == (
        first.sends,
        first.samples,
        first.accepted_at,
    )
    assert other.sends != first.sends


async def test_main_writes_the_report_and_a_plot_per_scenario(
    redis_url: str, tmp_path: Path
) -> None:
    argv = ["--quick", "--scenario", "throttle_storm", "--strategy", "priority", "--jobs", "1"]
    argv += ["--out", str(tmp_path), "--redis-url", redis_url]
    assert await asyncio.to_thread(simulate.main, argv) == 0
    report = (tmp_path / "simulate.md").read_text()
    assert report.splitlines()[0] == f"`{simulate.command_line(argv)}`"
    assert "| throttle_storm | priority | 100.00 % |" in report
    assert "not run" in report  # the adaptive targets: adaptive was not run
    assert (tmp_path / "sim_throttle_storm.png").stat().st_size > 10_000

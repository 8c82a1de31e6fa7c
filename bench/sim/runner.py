"""Runs: every scenario against every strategy, each on a fresh Redis key prefix, in parallel
processes (`jobs`) that share one redis-server."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import uvloop
from redis.asyncio import Redis

from bench.sim.engine import SimConfig, Simulation
from bench.sim.metrics import RunMetrics, measure
from bench.sim.scenarios import build_scenario
from bench.sim.series import Series, build_series
from dispatcher import keys


@dataclass(frozen=True, slots=True)
class RunSpec:
    scenario: str
    strategy: str
    redis_url: str
    quick: bool = False
    seed: int = 1
    config: SimConfig = field(default_factory=SimConfig)


@dataclass(frozen=True, slots=True)
class RunResult:
    metrics: RunMetrics
    series: Series
    wall_seconds: float


async def run_one(spec: RunSpec) -> RunResult:
    """One run on a key prefix of its own, removed afterwards."""
    started = time.perf_counter()
    scenario = build_scenario(spec.scenario, spec.quick)
    prefix = f"sim:{spec.scenario}:{spec.strategy}:{uuid.uuid4().hex[:12]}:"
    client = Redis.from_url(spec.redis_url)
    try:
        simulation = Simulation(scenario, spec.strategy, client, prefix, spec.seed, spec.config)
        trace = await simulation.run()
        await client.delete(*_health_keys(prefix, scenario.names))
    finally:
        await client.aclose()
    return RunResult(
        measure(trace, scenario, spec.strategy),
        build_series(trace, scenario.duration),
        time.perf_counter() - started,
    )


def _health_keys(prefix: str, providers: Sequence[str]) -> list[str]:
    return [
        key(prefix, name)
        for name in providers
        for key in (keys.health_window, keys.health_state, keys.health_permits, keys.health_rate)
    ]


def run_blocking(spec: RunSpec) -> RunResult:
    """`run_one` on a fresh uvloop event loop (what each worker process calls)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_one(spec))


def run_all(specs: Sequence[RunSpec], jobs: int) -> list[RunResult]:
    """Every run, longest first across `jobs` processes; results in the order of `specs`."""
    order = sorted(
        range(len(specs)),
        key=lambda i: -build_scenario(specs[i].scenario, specs[i].quick).duration,
    )
    if jobs <= 1:
        results = [run_blocking(specs[i]) for i in order]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            results = list(pool.map(run_blocking, [specs[i] for i in order]))
    by_index = dict(zip(order, results, strict=True))
    return [by_index[i] for i in range(len(specs))]

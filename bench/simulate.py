"""The fault-scenario routing simulator (see `bench.sim`).

    python -m bench.simulate [--out bench/results] [--scenario NAME ...] [--strategy NAME ...]
                             [--quick] [--seed N] [--jobs N] [--redis-url URL]

Runs every chosen scenario against every chosen strategy in virtual time and writes
`<out>/simulate.md` (the table, headed with this command) and `<out>/sim_<scenario>.png`.
Without `--redis-url` it starts its own redis-server (`dispatcher.dev.stack.RedisServer`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.sim.engine import SimConfig
from bench.sim.plot import plot_scenario
from bench.sim.report import render
from bench.sim.runner import RunResult, RunSpec, run_all
from bench.sim.scenarios import SCENARIOS, build_scenario
from dispatcher.dev.stack import RedisServer
from strategies import STRATEGIES

STRATEGY_ORDER = ("adaptive", "priority", "round_robin", "weighted", "least_latency", "p2c")
QUICK_RATE = 100.0


@dataclass(frozen=True, slots=True)
class Options:
    out: Path
    scenarios: tuple[str, ...]
    strategies: tuple[str, ...]
    quick: bool
    seed: int
    jobs: int
    redis_url: str | None


def parse_args(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), default=None)
    parser.add_argument("--strategy", action="append", choices=sorted(STRATEGIES), default=None)
    parser.add_argument("--quick", action="store_true", help="0.4x durations at 100 msg/s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--redis-url", default=None, help="default: start a redis-server")
    args = parser.parse_args(list(argv))
    known = [s for s in STRATEGY_ORDER if s in STRATEGIES]
    strategies = args.strategy or [*known, *sorted(set(STRATEGIES) - set(known))]
    return Options(
        out=args.out,
        scenarios=tuple(dict.fromkeys(args.scenario or SCENARIOS)),
        strategies=tuple(dict.fromkeys(strategies)),
        quick=args.quick,
        seed=args.seed,
        jobs=max(1, args.jobs),
        redis_url=args.redis_url,
    )


@contextlib.contextmanager
def redis_url(given: str | None) -> Iterator[str]:
    if given is not None:
        yield given
        return
    with RedisServer() as server:
        yield server.url


def simulate(options: Options, command: str) -> tuple[str, list[RunResult]]:
    """Run the matrix; returns the markdown and the results (nothing is written)."""
    config = SimConfig(rate=QUICK_RATE) if options.quick else SimConfig()
    started = time.perf_counter()
    with redis_url(options.redis_url) as url:
        specs = [
            RunSpec(scenario, strategy, url, options.quick, options.seed, config)
            for scenario in options.scenarios
            for strategy in options.strategies
        ]
        results = run_all(specs, options.jobs)
    wall = time.perf_counter() - started
    scenarios = [build_scenario(name, options.quick) for name in options.scenarios]
    metrics = [r.metrics for r in results]
    markdown = render(command, scenarios, metrics, wall, config.rate, options.seed)
    return markdown, results


def write(options: Options, markdown: str, results: Sequence[RunResult]) -> list[Path]:
    options.out.mkdir(parents=True, exist_ok=True)
    report = options.out / "simulate.md"
    report.write_text(markdown)
    written = [report]
    for name in options.scenarios:
        runs = [(r.metrics.strategy, r.series) for r in results if r.metrics.scenario == name]
        path = options.out / f"sim_{name}.png"
        plot_scenario(build_scenario(name, options.quick), runs, path)
        written.append(path)
    return written


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(["python", "-m", "bench.simulate", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(args)
    markdown, results = simulate(options, command_line(args))
    for path in write(options, markdown, results):
        print(f"wrote {path}")
    return 0


def markdown_for(argv: Sequence[str]) -> str:
    """The report for these arguments, run but not written (for `python -m bench`)."""
    return simulate(parse_args(argv), command_line(argv))[0]


if __name__ == "__main__":
    raise SystemExit(main())

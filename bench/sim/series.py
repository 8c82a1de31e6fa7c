"""Time series of one run for the plots: traffic share, breaker states and p99 latency."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bench.sim.engine import Trace
from strategies import Circuit

SHARE_BIN = 0.5  # seconds per traffic-share bin
LATENCY_BIN = 1.0  # seconds per p99 bin (by arrival time)


@dataclass(frozen=True, slots=True)
class Series:
    providers: tuple[str, ...]
    duration: float
    share_times: list[float]  # bin starts
    shares: list[list[float]]  # per provider, per bin (0 when the bin had no sends)
    latency_times: list[float]
    p99_ms: list[float]  # per bin; nan without accepted messages
    circuits: list[tuple[int, float, float, Circuit]]  # provider, start, end; closed omitted


def build_series(trace: Trace, duration: float) -> Series:
    edges = np.arange(0.0, duration + SHARE_BIN, SHARE_BIN)
    starts = np.array([s[1] for s in trace.sends], dtype=np.float64)
    owner = np.array([s[0] for s in trace.sends], dtype=np.int64)
    total = np.histogram(starts, edges)[0].astype(np.float64)
    shares = [
        (np.histogram(starts[owner == i], edges)[0] / np.maximum(total, 1)).tolist()
        for i in range(len(trace.providers))
    ]
    times, p99 = _p99_by_arrival(trace, duration)
    return Series(
        trace.providers, duration, edges[:-1].tolist(), shares, times, p99, _circuits(trace)
    )


def _p99_by_arrival(trace: Trace, duration: float) -> tuple[list[float], list[float]]:
    bins: dict[int, list[float]] = {}
    for arrived, accepted in zip(trace.arrived, trace.accepted_at, strict=True):
        if accepted is not None:
            bins.setdefault(int(arrived // LATENCY_BIN), []).append(accepted - arrived)
    count = math.ceil(duration / LATENCY_BIN)
    p99 = [
        float(np.percentile(bins[k], 99)) * 1000 if k in bins else math.nan for k in range(count)
    ]
    return [k * LATENCY_BIN for k in range(count)], p99


def _circuits(trace: Trace) -> list[tuple[int, float, float, Circuit]]:
    """Runs of non-closed circuit states per provider, from the 100 ms samples."""
    runs: list[tuple[int, float, float, Circuit]] = []
    for index in range(len(trace.providers)):
        state, since = Circuit.CLOSED, 0.0
        for at, circuits in trace.samples:
            if circuits[index] is not state:
                if state is not Circuit.CLOSED:
                    runs.append((index, since, at, state))
                state, since = circuits[index], at
        if state is not Circuit.CLOSED:
            runs.append((index, since, trace.end, state))
    return runs

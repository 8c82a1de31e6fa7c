"""What a run is judged by, computed from its `Trace`.

Shares are of sends (every provider call, failovers included) by start time::

    shift       the first t >= onset (50 ms steps) at which the sick provider's share of the
                sends started in [t, t + 1 s) is under 5 %; `shift_seconds` = t - onset
                (inf: never during the fault)
    failed      the sick provider's sends that failed (down, throttled, ambiguous) and started
                from onset to the end of that first quiet window [t, t + 1 s)
    closed      the first snapshot after healed showing the recovering provider's circuit closed
    recovery    the middle of the first window [t, t + 2 s), t >= healed, in which the
                recovering provider's share reaches 80 % of its fair share (its share before
                the fault, or the scenario's), minus healed; a *snap*: under 5 s passed between
                the last window since the onset in which it had under 20 % of that share and
                the first at 80 %
    settled     the sick provider's share of the sends started from onset + 10 s to healed (how
                much it keeps once routing has settled; issue 11's brownout figure)
    latency     virtual, arrival to acceptance, retries and queue waits included; `p99_fault`
                over messages arriving during the fault, `p99_base` before it
    wasted      sends that did not deliver: down, throttled, ambiguous
    shed        messages that waited at least once because no provider could take them
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bench.sim.engine import Trace
from bench.sim.scenarios import Scenario
from providers.base import Status
from strategies import Circuit

SHIFT_SHARE, SHIFT_WINDOW = 0.05, 1.0
RECOVER_FRACTION, RECOVER_WINDOW = 0.8, 2.0
DRAINED_FRACTION, SNAP_SECONDS = 0.2, 5.0
STEP = 0.05
SETTLED_AFTER = 10.0  # seconds after the onset from which `settled_share` counts
MIN_FAIR_SHARE = 0.02  # a provider with less than this before the fault has nothing to recover
WASTED = (Status.DOWN, Status.THROTTLED, Status.AMBIGUOUS)

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RunMetrics:
    scenario: str
    strategy: str
    arrived: int
    accepted: int
    failed: int  # rejected or dead-lettered
    pending: int  # neither when the run ended
    duplicates: int
    sends: int
    wasted: int
    shed: int
    shift_seconds: float | None  # None: no sick provider in this scenario; inf: never
    failed_until_shift: int | None
    recover_seconds: float | None  # None: nothing to recover; inf: never
    snapped: bool | None
    closed_seconds: float | None  # from healed until its breaker was closed (inf: never)
    focus_share: float | None
    settled_share: float | None  # the sick provider's, from onset + SETTLED_AFTER to healed
    p50_ms: float | None
    p99_ms: float | None
    p99_base_ms: float | None
    p99_fault_ms: float | None

    @property
    def success_rate(self) -> float:
        return self.accepted / self.arrived if self.arrived else 0.0


class Shares:
    """Send start times, all and per provider, sorted for window counts."""

    def __init__(self, trace: Trace) -> None:
        starts = np.array([s[1] for s in trace.sends], dtype=np.float64)
        owner = np.array([s[0] for s in trace.sends], dtype=np.int64)
        self.all = np.sort(starts)
        self.by = [np.sort(starts[owner == i]) for i in range(len(trace.providers))]

    def share(self, index: int, starts: Floats, width: float) -> Floats:
        """The provider's share of the sends started in each [t, t + width); nan if none."""
        total = _count(self.all, starts, width)
        mine = _count(self.by[index], starts, width)
        return np.where(total > 0, mine / np.maximum(total, 1), np.nan)


def _count(sorted_starts: Floats, starts: Floats, width: float) -> Floats:
    upper = np.searchsorted(sorted_starts, starts + width, side="left")
    lower = np.searchsorted(sorted_starts, starts, side="left")
    return (upper - lower).astype(np.float64)


def measure(trace: Trace, scenario: Scenario, strategy: str) -> RunMetrics:
    shares = Shares(trace)
    latencies = _latencies(trace)
    accepted = int(np.count_nonzero(~np.isnan(latencies)))
    failed = sum(trace.failed)
    shift, failed_until = _shift(trace, scenario, shares)
    recover, snapped = _recovery(trace, scenario, shares)
    fault = scenario.fault_window()
    base = (min(5.0, fault[0] / 4), fault[0])
    return RunMetrics(
        scenario=scenario.name,
        strategy=strategy,
        arrived=len(trace.arrived),
        accepted=accepted,
        failed=failed,
        pending=len(trace.arrived) - accepted - failed,
        duplicates=trace.duplicates,
        sends=len(trace.sends),
        wasted=sum(1 for s in trace.sends if s[3] in WASTED),
        shed=sum(trace.shed),
        shift_seconds=shift,
        failed_until_shift=failed_until,
        recover_seconds=recover,
        snapped=snapped,
        closed_seconds=_closed(trace, scenario),
        focus_share=_focus_share(trace, scenario, shares),
        settled_share=_settled_share(trace, scenario, shares),
        p50_ms=_percentile(latencies, 50),
        p99_ms=_percentile(latencies, 99),
        p99_base_ms=_percentile(_arrived_in(trace, latencies, base), 99) if fault[0] else None,
        p99_fault_ms=_percentile(_arrived_in(trace, latencies, fault), 99),
    )


def _latencies(trace: Trace) -> Floats:
    """Arrival to acceptance per message, in seconds; nan when never accepted."""
    return np.array(
        [
            math.nan if a is None else a - t
            for t, a in zip(trace.arrived, trace.accepted_at, strict=True)
        ],
        dtype=np.float64,
    )


def _arrived_in(trace: Trace, latencies: Floats, window: tuple[float, float]) -> Floats:
    arrived = np.array(trace.arrived, dtype=np.float64)
    mask = (arrived >= window[0]) & (arrived < window[1])
    selected: Floats = latencies[mask]
    return selected


def _percentile(latencies: Floats, q: float) -> float | None:
    known = latencies[~np.isnan(latencies)]
    return float(np.percentile(known, q)) * 1000 if known.size else None


def _shift(trace: Trace, scenario: Scenario, shares: Shares) -> tuple[float | None, int | None]:
    if scenario.sick is None or scenario.onset is None:
        return None, None
    sick = trace.providers.index(scenario.sick)
    onset, healed = scenario.fault_window()
    grid = np.arange(onset, max(onset, healed - SHIFT_WINDOW) + 1e-9, STEP)
    quiet = np.flatnonzero(shares.share(sick, grid, SHIFT_WINDOW) < SHIFT_SHARE)
    shift = float(grid[quiet[0]] - onset) if quiet.size else math.inf
    until = onset + shift + SHIFT_WINDOW if quiet.size else healed
    failed = sum(
        1
        for i, start, _, status in trace.sends
        if i == sick and onset <= start < until and status in WASTED
    )
    return shift, failed


def _recovery(trace: Trace, scenario: Scenario, shares: Shares) -> tuple[float | None, bool | None]:
    if scenario.recovering is None or scenario.onset is None or scenario.healed is None:
        return None, None
    index = trace.providers.index(scenario.recovering)
    onset, healed = scenario.onset, scenario.healed
    fair = scenario.recover_share
    if fair is None:
        before = shares.share(index, np.array([min(5.0, onset / 4)]), onset - min(5.0, onset / 4))
        fair = float(before[0])
    if math.isnan(fair) or fair < MIN_FAIR_SHARE:
        return None, None
    grid = np.arange(onset, max(healed, scenario.duration - RECOVER_WINDOW) + 1e-9, STEP)
    share = shares.share(index, grid, RECOVER_WINDOW)
    reached = np.flatnonzero((grid >= healed) & (share >= RECOVER_FRACTION * fair))
    if not reached.size:
        return math.inf, False
    drained = np.flatnonzero(share[: reached[0]] < DRAINED_FRACTION * fair)
    rise = float(grid[reached[0]] - grid[drained[-1]]) if drained.size else math.inf
    recovered = float(grid[reached[0]]) + RECOVER_WINDOW / 2  # the window's middle
    if grid[reached[0]] <= healed + STEP / 2:
        recovered = healed  # it had its share when the fault ended
    return recovered - healed, rise < SNAP_SECONDS


def _closed(trace: Trace, scenario: Scenario) -> float | None:
    """Seconds from healed until the recovering provider's circuit is first seen closed."""
    if scenario.recovering is None or scenario.healed is None:
        return None
    index = trace.providers.index(scenario.recovering)
    for at, circuits in trace.samples:
        if at >= scenario.healed and circuits[index] is Circuit.CLOSED:
            return at - scenario.healed
    return math.inf


def _focus_share(trace: Trace, scenario: Scenario, shares: Shares) -> float | None:
    if scenario.focus is None:
        return None
    start, end = scenario.fault_window()
    share = shares.share(trace.providers.index(scenario.focus), np.array([start]), end - start)
    return None if math.isnan(share[0]) else float(share[0])


def _settled_share(trace: Trace, scenario: Scenario, shares: Shares) -> float | None:
    if scenario.sick is None or scenario.onset is None:
        return None
    start, end = scenario.onset + SETTLED_AFTER, scenario.fault_window()[1]
    if end <= start:
        return None
    share = shares.share(trace.providers.index(scenario.sick), np.array([start]), end - start)
    return None if math.isnan(share[0]) else float(share[0])

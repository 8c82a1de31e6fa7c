"""The markdown report: the command, the scenarios, one table row per run, the adaptive targets."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.sim.metrics import RunMetrics
from bench.sim.scenarios import Scenario

COLUMNS = (
    "scenario",
    "strategy",
    "success",
    "failed until shift",
    "shift <5 %",
    "recover 80 %",
    "focus share",
    "sick share +10 s",
    "p50 ms",
    "p99 ms",
    "p99 base / fault ms",
    "wasted",
    "shed",
)
COMPARED = ("adaptive", "p2c", "round_robin", "priority")
CLOSED_SHOWN = 0.2  # a breaker closed later than this after the fault is shown beside recovery


@dataclass(frozen=True, slots=True)
class Target:
    text: str
    scenario: str
    met: bool | None  # None: the scenario was not run
    figures: dict[str, str]  # strategy -> its figure for this target


def render(
    command: str,
    scenarios: Sequence[Scenario],
    runs: Sequence[RunMetrics],
    wall_seconds: float,
    rate: float,
    seed: int,
) -> str:
    plots = ", ".join(f"`sim_{s.name}.png`" for s in scenarios)
    lines = [f"`{command}`", ""]
    lines += [
        f"{len(runs)} runs in {wall_seconds:.0f} s wall, seed {seed}. Virtual time, {rate:g} "
        "msg/s in receive batches of 10, the real strategies, Router, delivery.attempt, in-flight "
        "limit and Lua scripts on a real Redis (a fresh key prefix per run), production defaults "
        "for dispatch, breaker and routing. Definitions and modelling notes are at the end. "
        f"Plots (traffic share, breaker states, p99 per strategy) beside this file: {plots}.",
        "",
        "### Scenarios",
        "",
    ]
    lines += [f"- **{s.name}** ({s.duration:g} s): {s.title}" for s in scenarios]
    lines += ["", "### Results", "", _row(COLUMNS), _row(["---"] * len(COLUMNS))]
    lines += [_row(_cells(m)) for m in runs]
    lines += ["", "### Adaptive targets", ""]
    lines += _target_table(targets(runs))
    lines += ["", "### Definitions", "", *DEFINITIONS, "", "### Modelling notes", "", *NOTES]
    return "\n".join(lines) + "\n"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cells(m: RunMetrics) -> list[str]:
    pending = f", {m.pending} pending" if m.pending else ""
    lost = f" ({m.failed} failed{pending})" if m.failed or m.pending else ""
    dupes = f" **{m.duplicates} duplicates**" if m.duplicates else ""
    return [
        m.scenario,
        m.strategy,
        f"{100 * m.success_rate:.2f} %{lost}{dupes}",
        _count(m.failed_until_shift),
        _seconds(m.shift_seconds),
        _recovery_figure(m),
        "n/a" if m.focus_share is None else f"{100 * m.focus_share:.1f} %",
        _share(m.settled_share),
        _ms(m.p50_ms),
        _ms(m.p99_ms),
        f"{_ms(m.p99_base_ms)} / {_ms(m.p99_fault_ms)}",
        str(m.wasted),
        str(m.shed),
    ]


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _count(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "never" if math.isinf(value) else f"{value:.2f} s"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


@dataclass(frozen=True, slots=True)
class TargetSpec:
    text: str
    scenario: str
    figure: Callable[[RunMetrics], str]
    check: Callable[[RunMetrics], bool]


def _p99_ratio(m: RunMetrics) -> float:
    if m.p99_fault_ms is None or not m.p99_base_ms:
        return math.inf
    return m.p99_fault_ms / m.p99_base_ms


def _within(value: float | None, limit: float) -> bool:
    return value is not None and value <= limit


def _recovery_figure(m: RunMetrics) -> str:
    figure = _seconds(m.recover_seconds) + (" snap" if m.snapped else "")
    if m.closed_seconds is not None and m.closed_seconds >= CLOSED_SHOWN:
        figure += f" (closed +{_seconds(m.closed_seconds)})"
    return figure


RECOVERY = "recovery to 80 % of fair share within 30 s, no snap"
TARGETS = (
    TargetSpec(
        "outage detected within 10 failed attempts and 1 s",
        "outage",
        lambda m: f"{_count(m.failed_until_shift)} failed, {_seconds(m.shift_seconds)}",
        lambda m: _within(m.shift_seconds, 1.0) and (m.failed_until_shift or 0) <= 10,
    ),
    TargetSpec(
        "brownout share under 5 % within 3 s",
        "brownout",
        lambda m: _seconds(m.shift_seconds),
        lambda m: _within(m.shift_seconds, 3.0),
    ),
    *(
        TargetSpec(
            RECOVERY,
            name,
            _recovery_figure,
            lambda m: _within(m.recover_seconds, 30.0) and not m.snapped,
        )
        for name in ("outage", "brownout", "slow_recovery")
    ),
    TargetSpec(
        "p99 under brownout <= 1.5x healthy",
        "brownout",
        lambda m: f"{_ms(m.p99_fault_ms)} / {_ms(m.p99_base_ms)} ms = {_p99_ratio(m):.2f}x",
        lambda m: _p99_ratio(m) <= 1.5,
    ),
    TargetSpec(
        "slow share from 10 s after the change <= 0.1 % (issue 11)",
        "brownout_1s",
        lambda m: _share(m.settled_share),
        lambda m: _within(m.settled_share, 0.001),
    ),
    TargetSpec(
        "p99 during the fault <= 1.2x healthy (issue 11)",
        "brownout_1s",
        lambda m: f"{_ms(m.p99_fault_ms)} / {_ms(m.p99_base_ms)} ms = {_p99_ratio(m):.2f}x",
        lambda m: _p99_ratio(m) <= 1.2,
    ),
)


def targets(runs: Sequence[RunMetrics]) -> list[Target]:
    """The adaptive targets, judged on the runs given (a scenario not run is not judged)."""
    found = {(m.scenario, m.strategy): m for m in runs}
    judged = []
    for spec in TARGETS:
        figures = {
            s: spec.figure(found[(spec.scenario, s)])
            for s in COMPARED
            if (spec.scenario, s) in found
        }
        adaptive = found.get((spec.scenario, "adaptive"))
        met = None if adaptive is None else spec.check(adaptive)
        judged.append(Target(spec.text, spec.scenario, met, figures))
    return judged


def _target_table(found: Sequence[Target]) -> list[str]:
    header = ["target", "scenario", "adaptive", "met?", *COMPARED[1:]]
    lines = [_row(header), _row(["---"] * len(header))]
    for t in found:
        verdict = {True: "met", False: "**NOT met**", None: "not run"}[t.met]
        others = [t.figures.get(s, "not run") for s in COMPARED[1:]]
        lines.append(
            _row([t.text, t.scenario, t.figures.get("adaptive", "not run"), verdict, *others])
        )
    return lines


DEFINITIONS = [
    "- **success**: messages accepted by a provider / messages that arrived (failed = rejected "
    "or dead-lettered after `max_attempts`; pending = still waiting when the run ended).",
    "- **shift <5 %**: the first t after the fault begins at which the sick provider's share of "
    "the sends started in [t, t + 1 s) is under 5 %, minus the fault start (never: not during "
    "the fault).",
    "- **failed until shift**: the sick provider's failed sends (down, throttled, ambiguous) from "
    "the fault start to the end of that first 1 s window under 5 %.",
    "- **recover 80 %**: the middle of the first 2 s window after the fault ends in which the "
    "recovering provider's share reaches 80 % of its fair share (its share before the fault; 100 % "
    "for all_down), minus the fault end. *snap*: under 5 s passed between its last 2 s window "
    "under 20 % of that share (since the fault began) and its first at 80 %. *(closed +x)*: "
    "its breaker was still open (or half-open) for x after the fault ended.",
    "- **focus share**: the watched provider's share of sends during the fault (the whole run "
    "for cost). **sick share +10 s**: the sick provider's share of the sends started from 10 s "
    "after the fault begins to its end.",
    "- **p50 / p99**: virtual delivery latency, arrival to acceptance, retries included; "
    "**base / fault**: p99 of the messages arriving before / during the fault.",
    "- **wasted**: sends that did not deliver (down, throttled, ambiguous); **shed**: messages "
    "that waited at least once because no provider could take them.",
]

NOTES = [
    "- One seed per run (`--seed`). Breaker open times are jittered by +-20 % and double with "
    "each trip, so the figures that hinge on when a breaker half-opens (recovery, all_down) move "
    "by several seconds from one seed to another.",
    "- Outcomes are recorded (`RedisHealth.record`, one round trip) just before each 100 ms "
    "snapshot refresh, so an outcome reaches routing at the first refresh after its attempt "
    "completes, as in production, where the settler records within milliseconds. As in "
    "`delivery.attempt`, a failed-over send is observed when the whole attempt, failover "
    "included, has completed.",
    "- In outage, brownout, brownout_1s, flapping, throttle_storm and slow_recovery the sick "
    "provider is `a`, first in config order: priority sends it everything.",
    "- Key expiries set by the Lua scripts run on Redis's own clock; a run takes seconds of real "
    "time, so none fires during one. The ledger (claims, attempts) is kept in memory.",
]

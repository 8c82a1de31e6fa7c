"""One PNG per scenario: a row per strategy with its stacked traffic share per provider and the
breaker-state bands above it (left), and the p99 delivery latency by arrival second (right)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullFormatter, ScalarFormatter

from bench.sim.scenarios import Scenario
from bench.sim.series import Series
from strategies import Circuit

PROVIDER_COLORS = ("#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4")
CIRCUIT_COLORS = {Circuit.OPEN: "#c0392b", Circuit.HALF_OPEN: "#f1c40f"}
LOG_SCALE_RANGE = 10.0  # p99 spanning more than this factor: log axis
BAND = 0.06  # height of one provider's breaker band, above the shares (which end at 1)


def plot_scenario(scenario: Scenario, runs: Sequence[tuple[str, Series]], path: Path) -> None:
    """Write the figure for `scenario`, one row per (strategy, series)."""
    rows = len(runs)
    fig = Figure(figsize=(14, 2.4 * rows + 0.8))
    FigureCanvasAgg(fig)  # the Agg canvas, without pyplot's global state
    axes = fig.subplots(rows, 2, squeeze=False, width_ratios=(3, 2))
    for (strategy, series), (left, right) in zip(runs, axes, strict=True):
        _shares(left, series, strategy, scenario)
        _latency(right, series, scenario)
    axes[-1][0].set_xlabel("virtual seconds")
    axes[-1][1].set_xlabel("virtual seconds (message arrival)")
    handles = [
        Rectangle((0, 0), 1, 1, color=PROVIDER_COLORS[i % len(PROVIDER_COLORS)])
        for i in range(len(scenario.names))
    ]
    handles += [Rectangle((0, 0), 1, 1, color=c) for c in CIRCUIT_COLORS.values()]
    labels = [*scenario.names, "open", "half-open"]
    fig.legend(handles, labels, loc="upper right", ncol=len(labels), fontsize=8)
    fig.suptitle(f"{scenario.name}: {scenario.title}", fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)


def _shares(ax: Axes, series: Series, strategy: str, scenario: Scenario) -> None:
    colors = [PROVIDER_COLORS[i % len(PROVIDER_COLORS)] for i in range(len(series.providers))]
    ax.stackplot(series.share_times, series.shares, colors=colors, step="post", linewidth=0)
    for index, start, end, state in series.circuits:
        low = 1.0 + 0.01 + index * BAND
        ax.broken_barh([(start, end - start)], (low, BAND * 0.8), color=CIRCUIT_COLORS[state])
    top = 1.0 + 0.01 + len(series.providers) * BAND
    ax.set_ylim(0, top)
    ax.set_xlim(0, series.duration)
    ax.set_yticks([0, 0.5, 1.0])
    ax.set_ylabel(f"{strategy}\nshare of sends", fontsize=9)
    _fault(ax, scenario)


def _latency(ax: Axes, series: Series, scenario: Scenario) -> None:
    points = [(t, p) for t, p in zip(series.latency_times, series.p99_ms, strict=True)]
    known = [(t, p) for t, p in points if not math.isnan(p)]
    if known:
        values = [p for _, p in known]
        ax.step([t for t, _ in known], values, where="post", color="black", lw=1)
        if max(values) > LOG_SCALE_RANGE * min(values):
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(0, series.duration)
    ax.set_ylabel("p99 ms", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    _fault(ax, scenario)


def _fault(ax: Axes, scenario: Scenario) -> None:
    if scenario.onset is not None:
        ax.axvline(scenario.onset, color="grey", ls="--", lw=0.8)
    if scenario.healed is not None:
        ax.axvline(scenario.healed, color="grey", ls=":", lw=0.8)

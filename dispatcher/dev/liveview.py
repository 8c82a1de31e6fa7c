"""A terminal view of a running worker: progress, rate, and per-provider sends, errors and
latency. Redraws in place on a terminal; prints one plain line per second otherwise."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from dispatcher.stats import ProviderStats, Stats

BAR_WIDTH = 40


@dataclass(slots=True)
class _Last:
    calls: int = 0
    latency_total: float = 0.0


@dataclass
class LiveView:
    total: int
    stats: Stats
    out: TextIO = field(default_factory=lambda: sys.stdout)
    notes: dict[str, str] = field(default_factory=dict)  # provider -> "DOWN since 2,500"
    _started: float = field(default_factory=time.monotonic)
    _last: dict[str, _Last] = field(default_factory=dict)
    _drawn: int = 0
    _last_plain: float = 0.0

    @property
    def interactive(self) -> bool:
        return self.out.isatty()

    def render(self) -> list[str]:
        stats, elapsed = self.stats, max(1e-6, time.monotonic() - self._started)
        done = min(stats.settled, self.total)
        filled = int(BAR_WIDTH * done / max(1, self.total))
        lines = [
            f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:,}/{self.total:,} "
            f"{100 * done / max(1, self.total):5.1f}%  {done / elapsed:7.0f} msg/s  "
            f"{elapsed:5.1f} s",
            f"sent {stats.sent:,}  retried {stats.retried:,}  dead-lettered "
            f"{stats.dead_lettered:,}  duplicates skipped {stats.duplicates:,}",
            f"{'provider':<14}{'calls':>8}{'sent':>8}{'errors':>8}{'share':>8}{'latency':>10}",
        ]
        sent_total = max(1, sum(p.sent for p in stats.providers.values()))
        for name, provider in sorted(stats.providers.items()):
            lines.append(
                f"{name:<14}{provider.calls:>8,}{provider.sent:>8,}{provider.error_count:>8,}"
                f"{100 * provider.sent / sent_total:>7.0f}%{self._recent_ms(name, provider):>8.0f}"
                f"ms  {self.notes.get(name, '')}"
            )
        return lines

    def draw(self) -> None:
        lines = self.render()
        if self.interactive:
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn = len(lines)
        elif time.monotonic() - self._last_plain >= 1.0:
            self._last_plain = time.monotonic()
            self.out.write(
                lines[0]
                + " | "
                + " | ".join(" ".join(line.split()[:3]) for line in lines[3:])
                + "\n"
            )
        self.out.flush()

    def _recent_ms(self, name: str, provider: ProviderStats) -> float:
        """Mean latency since the last draw (the whole run's mean when no call came since)."""
        last = self._last.setdefault(name, _Last())
        calls = provider.calls - last.calls
        spent = provider.latency_total - last.latency_total
        if calls <= 0:
            return provider.mean_latency_ms
        last.calls, last.latency_total = provider.calls, provider.latency_total
        return 1000 * spent / calls

"""`dispatcher top`: a live terminal view, refreshed each second: msg/s, sends in flight and
the in-flight limit, and per provider its share of traffic, p50/p99 latency, error rate,
breaker state and any operator override.

Provider health comes from Redis (the shared window every replica writes, one snapshot script
call); a worker's `/metrics` (`--metrics URL`), when it answers, adds that worker's own msg/s,
in flight and limit. Without it, msg/s is the window's answers per second across replicas.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dispatcher.config import Settings
from dispatcher.health.base import ProviderHealth, percentile
from dispatcher.health.redis import RedisHealth
from strategies.base import Circuit

REFRESH_SECONDS = 1.0
STYLE = {Circuit.CLOSED: "green", Circuit.HALF_OPEN: "yellow", Circuit.OPEN: "bold red"}


@dataclass(frozen=True, slots=True)
class WorkerReading:
    """What one scrape of a worker's /metrics says."""

    at: float  # monotonic
    sent: float  # dispatcher_sends_total{outcome="sent"}, summed over providers
    in_flight: float
    limit: float


@dataclass(slots=True)
class Sample:
    health: dict[str, ProviderHealth]
    window_seconds: int
    worker: WorkerReading | None = None
    rate: float | None = None  # msg/s from two worker readings
    notes: dict[str, str] = field(default_factory=dict)  # provider -> a note to show


def parse_metrics(text: str, at: float) -> WorkerReading:
    sent = in_flight = limit = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "dispatcher_sends_total" and s.labels.get("outcome") == "sent":
                sent += s.value
            elif s.name == "dispatcher_in_flight":
                in_flight = s.value
            elif s.name == "dispatcher_in_flight_limit":
                limit = s.value
    return WorkerReading(at, sent, in_flight, limit)


class TopSource:
    """Reads a `Sample`: Redis health always, a worker's /metrics when `metrics_url` answers."""

    def __init__(self, health: RedisHealth, settings: Settings, metrics_url: str | None) -> None:
        self._health, self._window = health, settings.routing.window_seconds
        self._url = metrics_url
        self._last: WorkerReading | None = None

    async def sample(self, http: aiohttp.ClientSession) -> Sample:
        sample = Sample(await self._health.snapshot(), self._window)
        reading = await self._scrape(http) if self._url else None
        if reading is not None and self._last is not None and reading.at > self._last.at:
            sample.rate = (reading.sent - self._last.sent) / (reading.at - self._last.at)
        sample.worker, self._last = reading, reading or self._last
        return sample

    async def _scrape(self, http: aiohttp.ClientSession) -> WorkerReading | None:
        try:
            async with http.get(f"{self._url}/metrics", timeout=aiohttp.ClientTimeout(1)) as r:
                return parse_metrics(await r.text(), time.monotonic()) if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None


def render(sample: Sample) -> Group:
    """One frame: a header line and a table of providers."""
    health = list(sample.health.values())
    answers = sum(h.calls + h.throttled for h in health)
    table = Table(expand=False)
    for name in ("provider", "state", "share", "p50 ms", "p99 ms", "err %", "calls"):
        left = name in ("provider", "state")
        table.add_column(name, justify="left" if left else "right", no_wrap=name == "provider")
    table.add_column("override")
    for h in health:
        table.add_row(*_row(h, answers, sample.notes.get(h.name, "")))
    return Group(_header(sample, health), table)


def _header(sample: Sample, health: list[ProviderHealth]) -> Text:
    worker = sample.worker
    if sample.rate is not None:
        rate = f"{sample.rate:,.0f} msg/s (this worker)"
    else:
        sent = sum(h.successes for h in health)
        rate = f"{sent / max(1, sample.window_seconds):,.0f} msg/s (all replicas, window)"
    flight = (
        f"in flight {worker.in_flight:,.0f} / limit {worker.limit:,.0f}"
        if worker
        else "in flight: no worker /metrics"
    )
    return Text(f"{rate}   {flight}   window {sample.window_seconds} s", style="bold")


def _row(h: ProviderHealth, answers: int, note: str) -> list[Text | str]:
    p50, p99 = percentile(h.histogram, 0.5), percentile(h.histogram, 0.99)
    override = h.override or "-"
    if h.override and h.override_until is not None:
        override += f" {max(0.0, h.override_until - h.at):.0f}s"
    return [
        h.name,
        Text(h.circuit.value, style=STYLE[h.circuit]),
        f"{100 * (h.calls + h.throttled) / answers:.0f}%" if answers else "-",
        "-" if p50 is None else f"{p50:.0f}",
        "-" if p99 is None else f"{p99:.0f}",
        f"{100 * h.failures / h.calls:.1f}" if h.calls else "-",
        f"{h.calls:,}",
        f"{override} {note}".strip(),
    ]


async def run_top(source: TopSource, console: Console, frames: int = 0) -> None:
    """Redraw every REFRESH_SECONDS until interrupted (or after `frames` frames, if given)."""
    async with aiohttp.ClientSession() as http:
        with Live(console=console, auto_refresh=False) as live:
            drawn = 0
            while not frames or drawn < frames:
                live.update(render(await source.sample(http)), refresh=True)
                drawn += 1
                if not frames or drawn < frames:
                    await asyncio.sleep(REFRESH_SECONDS)

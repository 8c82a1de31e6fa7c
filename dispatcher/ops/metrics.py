"""The worker's Prometheus metrics, read at scrape time from what the worker already counts.

Nothing here runs on the send path: `Stats` keeps plain ints (and a bisect per send for the
latency histogram), the settler counts dead letters per flush, and this collector turns them
into series when `/metrics` is scraped. The registry is per process, built by
`worker_registry` and passed to the probe server (`dispatcher.ops.probes`); the default global
registry is never used.

    dispatcher_sends_total{provider,outcome}   answers, by outcome (sent, rejected, down, ...)
    dispatcher_send_seconds{provider}          histogram of provider call latency
    dispatcher_breaker_state{provider}         0 closed, 1 half-open, 2 open (overrides applied)
    dispatcher_provider_override{provider,mode} 1 while an operator override is set
    dispatcher_route_weight{provider}          the strategy's share of first choices now
    dispatcher_in_flight, dispatcher_in_flight_limit
    dispatcher_receive_batch_size              histogram of messages per receive
    dispatcher_shed_seconds_total              time no provider could take work
    dispatcher_queue_lag_seconds               histogram, SQS SentTimestamp to claim
    dispatcher_dead_letters_total{reason}      moved to the DLQ, by reason class
    dispatcher_redis_errors_total              ledger and health calls Redis failed
    dispatcher_ledger_data_lost_total          times the ledger's epoch was found missing or
                                               changed (its data lost: `ledger_epoch`)
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from dispatcher.stats import LAG_BOUNDS, MAX_BATCH, SEND_BOUNDS
from dispatcher.worker import Worker
from strategies.base import Circuit, HealthSnapshot

CIRCUIT_VALUE = {Circuit.CLOSED: 0, Circuit.HALF_OPEN: 1, Circuit.OPEN: 2}
WEIGHT_SAMPLES = 200  # strategy calls per scrape to estimate the first-choice shares


def worker_registry(worker: Worker) -> CollectorRegistry:
    """A registry of its own for this worker (no global default registry)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WorkerCollector(worker))
    return registry


def buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    """Per-bucket counts (the last one above every bound) as cumulative Prometheus buckets."""
    out, total = [], 0
    for bound, count in zip([*map(str, bounds), "+Inf"], counts, strict=True):
        total += count
        out.append((bound, float(total)))
    return out


class WorkerCollector(Collector):
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    def collect(self) -> Iterator[Metric]:
        yield from self._sends()
        yield from self._routing()
        yield from self._loop()

    def _sends(self) -> Iterator[Metric]:
        stats = self._worker.stats
        sends = CounterMetricFamily(
            "dispatcher_sends", "Provider answers by outcome", labels=["provider", "outcome"]
        )
        seconds = HistogramMetricFamily(
            "dispatcher_send_seconds", "Provider call latency", labels=["provider"]
        )
        for name, p in sorted(stats.providers.items()):
            sends.add_metric([name, "sent"], p.sent)
            for outcome, count in sorted(p.errors.items()):
                sends.add_metric([name, outcome], count)
            seconds.add_metric([name], buckets(SEND_BOUNDS, p.buckets), p.latency_total)
        yield sends
        yield seconds
        dead = CounterMetricFamily(
            "dispatcher_dead_letters", "Messages moved to the DLQ, by reason", labels=["reason"]
        )
        for reason, count in sorted(self._worker.settler.dead_letters.items()):
            dead.add_metric([reason], count)
        yield dead

    def _routing(self) -> Iterator[Metric]:
        router = self._worker.router
        state = GaugeMetricFamily(
            "dispatcher_breaker_state", "0 closed, 1 half-open, 2 open", labels=["provider"]
        )
        override = GaugeMetricFamily(
            "dispatcher_provider_override",
            "1 while an operator override is set",
            labels=["provider", "mode"],
        )
        for name, health in sorted(router.report.items()):
            state.add_metric([name], CIRCUIT_VALUE[health.circuit])
            if health.override:
                override.add_metric([name, health.override], 1)
        yield state
        yield override
        weight = GaugeMetricFamily(
            "dispatcher_route_weight", "Share of first choices now", labels=["provider"]
        )
        shares = first_choices(self._worker) if router.report else {}
        for provider in router.providers:
            weight.add_metric([provider.name], shares.get(provider.name, 0.0))
        yield weight

    def _loop(self) -> Iterator[Metric]:
        worker, stats = self._worker, self._worker.stats
        yield GaugeMetricFamily("dispatcher_in_flight", "Sends in flight", len(worker.in_flight))
        yield GaugeMetricFamily(
            "dispatcher_in_flight_limit", "The adaptive in-flight limit", worker.slots.limit
        )
        sizes = HistogramMetricFamily("dispatcher_receive_batch_size", "Messages per receive")
        total = sum(size * count for size, count in enumerate(stats.batch_sizes))
        sizes.add_metric([], buckets(range(MAX_BATCH), stats.batch_sizes), total)
        yield sizes
        yield CounterMetricFamily(
            "dispatcher_shed_seconds",
            "Time no provider could take work",
            stats.shed_total(time.monotonic()),
        )
        lag = HistogramMetricFamily("dispatcher_queue_lag_seconds", "Enqueued to claimed")
        lag.add_metric([], buckets(LAG_BOUNDS, stats.lag_buckets), stats.lag_total)
        yield lag
        errors = worker.settler.redis_errors + worker.router.health.errors_total
        yield CounterMetricFamily("dispatcher_redis_errors", "Redis calls that failed", errors)
        lost = worker.epoch.losses if worker.epoch else 0
        yield CounterMetricFamily(
            "dispatcher_ledger_data_lost", "Times the ledger was found to have lost its data", lost
        )


def first_choices(worker: Worker) -> dict[str, float]:
    """The strategy's share of first choices for the current snapshot (sampled, seeded)."""
    router = worker.router
    now, rng, firsts = router.snapshot(), random.Random(0), Counter[str]()
    for sequence in range(WEIGHT_SAMPLES):
        order = router.strategy.rank(HealthSnapshot(now.providers, now.now, sequence), rng)
        if order:
            firsts[order[0]] += 1
    return {name: count / WEIGHT_SAMPLES for name, count in firsts.items()}

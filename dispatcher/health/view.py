"""What a strategy sees of the providers: their health, read through the "available" rule of
`dispatcher.health.base`, and this process's sends to them now."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from dispatcher.config import ProviderSettings
from dispatcher.health.base import ProviderHealth, available
from strategies.base import Circuit, HealthSnapshot, ProviderView


def view(
    health: ProviderHealth,
    settings: ProviderSettings,
    in_flight: int = 0,
    pending_ms: float | None = None,
    held: bool = False,
) -> ProviderView:
    """What a strategy sees of one provider, given this process's sends to it now.

    `pending_ms`, the mean age of those sends, floors the latency: answers that are late count
    before they come back (once the provider has a latency at all). `held`: this process holds
    it back (the fast trip)."""
    recovered_for = None
    if health.circuit is Circuit.CLOSED and health.closed_at is not None:
        recovered_for = max(0.0, health.at - health.closed_at)
    return ProviderView(
        name=health.name,
        weight=settings.weight,
        available=available(health, settings, held),
        circuit=health.circuit,
        calls=health.calls,
        failures=health.failures,
        slow=health.slow,
        latency_ms=_floored(health.ewma_ms, pending_ms),
        p50_ms=health.p50_ms,
        p95_ms=health.p95_ms,
        in_flight=in_flight,
        headroom=health.headroom,
        recovered_for=recovered_for,
        age=None if health.last_seen is None else max(0.0, health.at - health.last_seen),
    )


def _floored(ewma_ms: float | None, pending_ms: float | None) -> float | None:
    if ewma_ms is None or pending_ms is None:
        return ewma_ms
    return max(ewma_ms, pending_ms)


def routing_snapshot(
    report: Mapping[str, ProviderHealth],
    providers: Sequence[ProviderSettings],
    in_flight: Mapping[str, int],
    sequence: int = 0,
    pending_ms: Mapping[str, float] | None = None,
    held: Collection[str] = (),
) -> HealthSnapshot:
    """A strategy's input: every configured provider in config order."""
    pending = pending_ms or {}
    views = tuple(
        view(report[p.name], p, in_flight.get(p.name, 0), pending.get(p.name), p.name in held)
        for p in providers
    )
    now = max((h.at for h in report.values()), default=0.0)
    return HealthSnapshot(views, now, sequence)

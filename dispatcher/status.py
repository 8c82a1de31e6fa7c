"""`dispatcher status`: what every replica shares about each provider, read from Redis.

Per provider: breaker state and generation, error and slow-call rates over the window, p50/p95
latency, the strategy's current weight (its share of first choices now), the recent traffic
share, any throttle, its bounce and complaint rates over 24 h (`dispatcher.feedback`), and any
operator override (`dispatcher provider ...`) with its time left.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import orjson

from dispatcher.app import open_redis, tuning
from dispatcher.config import Settings
from dispatcher.feedback import ProviderRates, rates
from dispatcher.health.base import ProviderHealth
from dispatcher.health.redis import RedisHealth
from dispatcher.health.view import routing_snapshot
from strategies import HealthSnapshot, build_strategy

SAMPLES = 2000


async def read_status(settings: Settings) -> list[dict[str, Any]]:
    redis = open_redis(settings.redis)
    try:
        report = await RedisHealth(
            redis, settings.redis.key_prefix, settings.providers, settings.routing
        ).snapshot()
        daily = {r.provider: r for r in await rates(redis, settings.redis.key_prefix, time.time())}
    finally:
        await redis.aclose()
    shares = first_choice_shares(settings, report)
    window_calls = sum(h.calls for h in report.values()) or 1
    return [
        _row(report[p.name], shares.get(p.name, 0.0), window_calls)
        | feedback_row(daily.get(p.name))
        for p in settings.providers
    ]


def feedback_row(r: ProviderRates | None) -> dict[str, Any]:
    """Sends, bounce and complaint rates of one provider over the last 24 hours."""
    return {
        "sent_24h": r.sent if r else 0,
        "bounce_rate_24h": _rate(r.bounce_rate) if r else None,
        "complaint_rate_24h": _rate(r.complaint_rate) if r else None,
    }


def _rate(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def first_choice_shares(settings: Settings, report: dict[str, ProviderHealth]) -> dict[str, float]:
    """How the configured strategy would split first choices now (sampled, seeded)."""
    strategy = build_strategy(settings.routing.strategy, tuning(settings.routing))
    snapshot = routing_snapshot(report, settings.providers, {})
    rng, firsts = random.Random(0), Counter[str]()
    for sequence in range(SAMPLES):
        order = strategy.rank(HealthSnapshot(snapshot.providers, snapshot.now, sequence), rng)
        if order:
            firsts[order[0]] += 1
    return {name: count / SAMPLES for name, count in firsts.items()}


def _row(h: ProviderHealth, weight: float, window_calls: int) -> dict[str, Any]:
    throttled = h.throttled_until is not None and h.throttled_until > h.at
    return {
        "provider": h.name,
        "circuit": h.circuit.value,
        "generation": h.generation,
        "calls": h.calls,
        "error_rate": round(h.failures / h.calls, 4) if h.calls else None,
        "slow_rate": round(h.slow / h.calls, 4) if h.calls else None,
        "p50_ms": _round(h.p50_ms),
        "p95_ms": _round(h.p95_ms),
        "weight": round(weight, 4),
        "traffic_share": round(h.calls / window_calls, 4),
        "throttled_for_s": round(h.throttled_until - h.at, 1)
        if throttled and h.throttled_until is not None
        else 0.0,
        "open_for_s": round(h.open_until - h.at, 1)
        if h.open_until and h.open_until > h.at
        else 0.0,
        "override": h.override,
        "override_for_s": None if h.override_until is None else round(h.override_until - h.at, 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def render(rows: list[dict[str, Any]], as_json: bool) -> str:
    if as_json:
        return orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode()
    head = (
        f"{'provider':<14}{'circuit':<11}{'gen':>4}{'calls':>7}{'err%':>7}{'slow%':>7}"
        f"{'p50ms':>8}{'p95ms':>8}{'weight':>8}{'share':>7}{'sent24h':>9}{'bnc%':>6}{'cmp%':>6}"
        "  throttle/open  override"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['provider']:<14}{r['circuit']:<11}{r['generation']:>4}{r['calls']:>7}"
            f"{_pct(r['error_rate']):>7}{_pct(r['slow_rate']):>7}{_num(r['p50_ms']):>8}"
            f"{_num(r['p95_ms']):>8}{100 * r['weight']:>7.0f}%{100 * r['traffic_share']:>6.0f}%"
            f"{r['sent_24h']:>9}{_pct(r['bounce_rate_24h']):>6}{_pct(r['complaint_rate_24h']):>6}"
            f"  {r['throttled_for_s'] or '-'}/{r['open_for_s'] or '-'}"
            f"{'':>10}{_override(r)}"
        )
    return "\n".join(lines)


def _override(row: dict[str, Any]) -> str:
    if not row["override"]:
        return "-"
    left = row["override_for_s"]
    return str(row["override"]) + ("" if left is None else f" ({left:g} s left)")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"

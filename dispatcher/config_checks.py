"""Range checks the types alone cannot express; each failure names its key (`ConfigError`)."""

from __future__ import annotations

import math

from dispatcher.config_sections import AMBIGUOUS_POLICIES, BreakerSettings, ConfigError, Settings


def check(settings: Settings) -> None:
    """Every range check, section by section."""
    _check_queue(settings)
    _check_dispatch(settings)
    _check_routing(settings)
    _check_providers(settings)
    _check_api(settings)


def _check_queue(settings: Settings) -> None:
    q = settings.queue
    _require(bool(q.url), "queue.url", "is required")
    _require(0 <= q.wait_time_seconds <= 20, "queue.wait_time_seconds", "must be 0..20")
    _require(10 <= q.visibility_timeout <= 43_200, "queue.visibility_timeout", "must be 10..43200")
    _require(q.connect_timeout_seconds > 0, "queue.connect_timeout_seconds", "must be > 0")
    _require(
        q.read_timeout_seconds > q.wait_time_seconds,
        "queue.read_timeout_seconds",
        "must be > wait_time_seconds (a long poll answers only after it)",
    )


def _check_dispatch(settings: Settings) -> None:
    d = settings.dispatch
    _require(1 <= d.max_in_flight <= 100_000, "dispatch.max_in_flight", "must be 1..100000")
    _require(
        0 <= d.min_in_flight <= d.max_in_flight,
        "dispatch.min_in_flight",
        "must be 0..max_in_flight (0: min(32, max_in_flight))",
    )
    _require(d.latency_tolerance > 1, "dispatch.latency_tolerance", "must be > 1")
    _require(1 <= d.max_attempts <= 100, "dispatch.max_attempts", "must be 1..100")
    _require(0 <= d.drain_seconds <= 3600, "dispatch.drain_seconds", "must be 0..3600")
    _require(1 <= d.pollers <= 64, "dispatch.pollers", "must be 1..64")
    _require(d.backoff_base_seconds > 0, "dispatch.backoff_base_seconds", "must be > 0")
    _require(d.backoff_max_seconds <= 43_200, "dispatch.backoff_max_seconds", "must be <= 43200")
    _require(d.record_ttl_days >= 1, "dispatch.record_ttl_days", "must be >= 1")
    _require(d.max_receives > d.max_attempts, "dispatch.max_receives", "must be > max_attempts")
    _require(bool(d.journal_path), "dispatch.journal_path", "is required")
    _require(
        d.on_ambiguous in AMBIGUOUS_POLICIES,
        "dispatch.on_ambiguous",
        f"must be one of {', '.join(AMBIGUOUS_POLICIES)}",
    )
    _require(
        settings.log.level in ("debug", "info", "warning", "error"),
        "log.level",
        "must be debug, info, warning or error",
    )


def _check_routing(settings: Settings) -> None:
    r = settings.routing
    _require(
        1 <= r.bucket_seconds <= r.window_seconds <= 3600,
        "routing.window_seconds",
        "must be >= bucket_seconds >= 1, and at most 3600",
    )
    _require(
        r.window_seconds // r.bucket_seconds <= 600,
        "routing.bucket_seconds",
        "at most 600 buckets per window",
    )
    _require(0 <= r.panic_threshold <= 1, "routing.panic_threshold", "must be 0..1")
    _require(
        1 <= r.latency_outlier_ratio < math.inf,
        "routing.latency_outlier_ratio",
        "must be >= 1 and finite",
    )


def _check_providers(settings: Settings) -> None:
    for i, p in enumerate(settings.providers):
        _check_breaker(p.breaker, f"providers[{i}]")
        _require(p.rate_limit >= 0, f"providers[{i}].rate_limit", "must be >= 0")
        _require(p.burst >= 0, f"providers[{i}].burst", "must be >= 0")
        _require(p.weight >= 0, f"providers[{i}].weight", "must be >= 0")
        _require(p.timeout_seconds > 0, f"providers[{i}].timeout_seconds", "must be > 0")


def _check_api(settings: Settings) -> None:
    a = settings.api
    _require(bool(a.host), "api.host", "is required")
    _require(0 <= a.port <= 65_535, "api.port", "must be 0..65535")
    _require(a.api_keys_file != "", "api.api_keys_file", "must not be empty")
    _require(1024 <= a.max_body_bytes <= 1 << 30, "api.max_body_bytes", "must be 1024..2^30")
    _require(1 <= a.max_csv_rows <= 100_000_000, "api.max_csv_rows", "must be 1..100000000")
    _require(1 <= a.idempotency_hours <= 24 * 30, "api.idempotency_hours", "must be 1..720")
    _require(
        a.retention_days == settings.dispatch.record_ttl_days,
        "api.retention_days",
        "must equal dispatch.record_ttl_days (the worker rewrites the same records and indexes)",
    )
    _require(0 <= a.shutdown_seconds <= 3600, "api.shutdown_seconds", "must be 0..3600")
    _require(1 <= a.lease_seconds <= 3600, "api.lease_seconds", "must be 1..3600")
    m = settings.metrics
    _require(bool(m.host), "metrics.host", "is required")
    _require(0 <= m.port <= 65_535, "metrics.port", "must be 0..65535 (0: off)")


def _check_breaker(b: BreakerSettings, where: str) -> None:
    for key in ("error_rate_threshold", "slow_call_rate_threshold"):
        _require(0 < getattr(b, key) <= 1, f"{where}.{key}", "must be in (0, 1]")
    for key in (
        "minimum_calls",
        "consecutive_failures",
        "half_open_permits",
        "half_open_successes",
    ):
        _require(getattr(b, key) >= 1, f"{where}.{key}", "must be >= 1")
    for key in (
        "slow_call_seconds",
        "open_seconds",
        "permit_lease_seconds",
        "misconfigured_open_seconds",
        "healthy_reset_seconds",
    ):
        _require(getattr(b, key) > 0, f"{where}.{key}", "must be > 0")
    _require(
        b.open_max_seconds >= b.open_seconds, f"{where}.open_max_seconds", "must be >= open_seconds"
    )


def _require(ok: bool, key: str, reason: str) -> None:
    if not ok:
        raise ConfigError(key, reason)

"""Settings: parsed once at start-up from TOML plus `DISPATCHER_<SECTION>__<KEY>` overrides,
validated, frozen and passed down. Every error names the key it is about.

Provider keys are overridden by provider name: `DISPATCHER_PROVIDERS__<NAME>__<KEY>`, with the
name upper-cased and `-` written `_` (for example `DISPATCHER_PROVIDERS__SENDGRID__API_KEY`).

A `[[providers]]` entry's common keys are parsed here (`ProviderSettings`); the rest go to the
provider registry (`providers.parse_options`), whose module for that `type` parses and checks
them into `ProviderSettings.options`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, get_type_hints

from dispatcher.config_feedback import SuppressionSettings, WebhookSettings, problems
from providers import ProviderConfigError, parse_options
from providers.options import coerce

ENV_PREFIX = "DISPATCHER_"


class ConfigError(ValueError):
    """Invalid settings. `key` is the dotted name, e.g. `queue.url` or `providers[1].api_key`."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config key {key}: {reason}")
        self.key = key


@dataclass(frozen=True, slots=True)
class QueueSettings:
    url: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    wait_time_seconds: int = 20
    visibility_timeout: int = 60
    dead_letter_url: str | None = None
    connect_timeout_seconds: float = 5.0  # SQS client: opening a connection to the endpoint
    read_timeout_seconds: float = 30.0  # SQS client: an answer; must outlast the long poll


@dataclass(frozen=True, slots=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "dispatcher:"
    cluster: bool = False  # a Redis Cluster (ElastiCache cluster mode): `url` names one node


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    max_in_flight: int = 512  # the ceiling of the adaptive in-flight limit
    min_in_flight: int = 0  # its floor; 0 means min(32, max_in_flight); = max turns it off
    latency_tolerance: float = 2.0  # sends this many times slower than usual: cut the limit
    max_attempts: int = 5
    drain_seconds: float = 25.0
    pollers: int = 4  # concurrent long-polls; each receives up to 10 messages
    retry_ambiguous: bool = True  # a timeout may have been accepted: retry (True) or ERROR
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 900.0
    record_ttl_days: int = 30  # how long ledger records are kept
    max_receives: int = 50  # a message received this often and still unsent goes to the DLQ
    journal_path: str = "dispatcher-journal.jsonl"  # outcomes Redis could not take at shutdown


@dataclass(frozen=True, slots=True)
class RoutingSettings:
    strategy: str = "adaptive"
    window_seconds: int = 30  # sliding window of provider health, in buckets of bucket_seconds
    bucket_seconds: int = 1
    stale_seconds: float = 60.0  # no data for this long: weights fall back to neutral
    latency_decay_seconds: float = 10.0  # peak-EWMA forgiveness time constant
    slow_start_seconds: float = 30.0  # after recovery, share ramps up over this long
    panic_threshold: float = 0.5  # under this share of healthy providers: spread on purpose


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Circuit breaker of one provider; `[breaker]` sets the defaults, a provider overrides."""

    error_rate_threshold: float = 0.5  # failures / calls in the window, after minimum_calls
    slow_call_rate_threshold: float = 0.8  # slow calls / calls in the window
    slow_call_seconds: float = 5.0  # a call slower than this is slow
    minimum_calls: int = 20  # no rate verdict on fewer calls than this
    consecutive_failures: int = 5  # fast trip
    open_seconds: float = 5.0  # first open period; doubles with each trip, jittered
    open_max_seconds: float = 300.0
    misconfigured_open_seconds: float = 900.0  # bad key or sender: open this long at once
    half_open_permits: int = 2  # probes in flight at once, across all replicas
    half_open_successes: int = 3  # successes that close it
    permit_lease_seconds: float = 30.0  # a crashed probe frees its permit after this
    healthy_reset_seconds: float = 120.0  # closed and healthy this long: trip count resets


_BREAKER_KEYS = frozenset(f.name for f in fields(BreakerSettings))


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """`dispatcher api`: the HTTP front door."""

    host: str = "127.0.0.1"
    port: int = 8080
    api_keys_file: str | None = None  # one SHA-256 hex per line, or `name:hash`; required to run
    max_body_bytes: int = 10 * 1024 * 1024
    max_csv_rows: int = 1_000_000
    idempotency_hours: int = 24
    retention_days: int = 0  # how long records and indexes live; 0: dispatch.record_ttl_days
    shutdown_seconds: float = 25.0  # on SIGTERM, in-flight requests get this long


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """`dispatcher run`'s health and metrics port: /healthz, /readyz, /metrics; 0 turns it off."""

    host: str = "0.0.0.0"  # probes and scrapes come from outside the container
    port: int = 9100


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """One `[[providers]]` entry: the keys every provider type shares, and its own keys as
    `options`, parsed by its module (e.g. `providers.sendgrid.SendGridOptions`; secrets are kept
    out of its repr)."""

    name: str
    type: str  # a key of `providers.PROVIDER_TYPES`
    options: object  # `providers.parse_options(type, ...)`; the provider's `open` narrows it
    weight: float = 1.0
    timeout_seconds: float = 15.0
    rate_limit: float = 0.0  # sends per second across all replicas; 0 means no limit
    burst: int = 0  # sends allowed at once above the steady rate (default: 1 s worth)
    breaker: BreakerSettings = BreakerSettings()


# The keys of an entry parsed here; any other (but a breaker key) belongs to the provider type.
_COMMON_PROVIDER_KEYS = frozenset(
    f.name for f in fields(ProviderSettings) if f.name not in ("options", "breaker")
)


@dataclass(frozen=True, slots=True)
class Settings:
    queue: QueueSettings
    providers: tuple[ProviderSettings, ...]
    redis: RedisSettings = RedisSettings()
    dispatch: DispatchSettings = DispatchSettings()
    routing: RoutingSettings = RoutingSettings()
    breaker: BreakerSettings = BreakerSettings()
    log: LogSettings = LogSettings()
    api: ApiSettings = ApiSettings()
    webhooks: WebhookSettings = WebhookSettings()
    suppression: SuppressionSettings = SuppressionSettings()
    metrics: MetricsSettings = MetricsSettings()

    def provider(self, name: str) -> ProviderSettings:
        return next(p for p in self.providers if p.name == name)


_SECTIONS: dict[str, type[Any]] = {
    "queue": QueueSettings,
    "redis": RedisSettings,
    "dispatch": DispatchSettings,
    "routing": RoutingSettings,
    "breaker": BreakerSettings,
    "log": LogSettings,
    "api": ApiSettings,
    "webhooks": WebhookSettings,
    "suppression": SuppressionSettings,
    "metrics": MetricsSettings,
}


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `path` (or `$DISPATCHER_CONFIG`), apply env overrides, validate, freeze."""
    env = os.environ if environ is None else environ
    source = path or env.get(f"{ENV_PREFIX}CONFIG")
    doc: dict[str, Any] = {}
    if source:
        try:
            doc = tomllib.loads(Path(source).read_text())
        except OSError as exc:
            raise ConfigError("config", f"cannot read {source}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{source} is not valid TOML: {exc}") from None
    return parse(apply_env(doc, env))


def apply_env(doc: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Overlay `DISPATCHER_<SECTION>__<KEY>` values (strings; `parse` converts them)."""
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    providers: list[dict[str, Any]] = [
        dict(p) for p in doc.get("providers", []) if isinstance(p, dict)
    ]
    if "providers" in doc or any(
        v.lower().startswith(f"{ENV_PREFIX}providers__".lower()) for v in env
    ):
        merged["providers"] = providers
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var == f"{ENV_PREFIX}CONFIG":
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        if parts[0] == "providers" and len(parts) == 3:
            _provider_entry(providers, parts[1], var)[parts[2]] = value
        elif len(parts) == 2 and parts[0] in _SECTIONS:
            section = merged.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(parts[0], "must be a table")
            section[parts[1]] = value
        else:
            raise ConfigError(
                var,
                "unknown environment override; use "
                "DISPATCHER_<SECTION>__<KEY> or "
                "DISPATCHER_PROVIDERS__<NAME>__<KEY>",
            )
    return merged


def parse(doc: Mapping[str, Any]) -> Settings:
    unknown = sorted(set(doc) - {*_SECTIONS, "providers"})
    if unknown:
        raise ConfigError(
            unknown[0], f"unknown section; valid: {', '.join([*_SECTIONS, 'providers'])}"
        )
    if "queue" not in doc:
        raise ConfigError("queue.url", "is required")
    sections = {name: _build(cls, doc.get(name, {}), name) for name, cls in _SECTIONS.items()}
    providers = _providers(doc.get("providers", []), sections["breaker"])
    api: ApiSettings = sections["api"]
    if api.retention_days == 0:
        sections["api"] = replace(api, retention_days=sections["dispatch"].record_ttl_days)
    settings = Settings(providers=providers, **sections)
    _check(settings)
    _check_api(settings)
    for key, reason in problems(settings.webhooks):
        raise ConfigError(key, reason)
    return settings


def _provider_entry(entries: list[dict[str, Any]], env_name: str, var: str) -> dict[str, Any]:
    for entry in entries:
        if str(entry.get("name", "")).lower().replace("-", "_") == env_name:
            return entry
    raise ConfigError(var, f"no [[providers]] entry is named {env_name!r}")


def _providers(raw: object, breaker: BreakerSettings) -> tuple[ProviderSettings, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError("providers", "at least one [[providers]] entry is required")
    built: list[ProviderSettings] = []
    for index, entry in enumerate(raw):
        where = f"providers[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(where, "must be a table")
        common = {k: v for k, v in entry.items() if k in _COMMON_PROVIDER_KEYS}
        tuning = {k: v for k, v in entry.items() if k in _BREAKER_KEYS}
        own = {k: v for k, v in entry.items() if k not in common and k not in tuning}
        options = _provider_options(entry.get("type"), own, where)
        tuned = _overlay(breaker, tuning, where)
        built.append(_build(ProviderSettings, common, where, options=options, breaker=tuned))
    names = [p.name for p in built]
    for index, name in enumerate(names):
        if not name or names.index(name) != index:
            raise ConfigError(f"providers[{index}].name", f"{name!r} must be non-empty and unique")
    return tuple(built)


def _provider_options(kind: object, own: dict[str, Any], where: str) -> object:
    """The options the registry parses for a provider of type `kind`, errors named in full."""
    try:
        return parse_options(kind, own)
    except ProviderConfigError as exc:
        reason = exc.reason if exc.key == "type" else f"{exc.reason} ({kind} provider)"
        raise ConfigError(f"{where}.{exc.key}", reason) from None


def _overlay(base: BreakerSettings, raw: dict[str, Any], where: str) -> BreakerSettings:
    """`base` with the keys a provider sets itself."""
    hints = get_type_hints(BreakerSettings)
    values: dict[str, Any] = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    return replace(base, **values)


def _build(cls: type[Any], raw: object, where: str, **given: object) -> Any:
    """`cls` from the table `raw` (keys named `where.key` in errors) and the values `given`."""
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be a table")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)} - set(given)
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}", f"unknown key; valid: {', '.join(sorted(names))}"
        )
    values = {key: _coerce(value, hints[key], f"{where}.{key}") for key, value in raw.items()}
    try:
        return cls(**values, **given)
    except TypeError:
        missing = next(f.name for f in fields(cls) if f.name not in values and f.name not in given)
        raise ConfigError(f"{where}.{missing}", "is required") from None


def _coerce(value: object, hint: object, key: str) -> object:
    """Convert TOML or env-string values to the field's type, or say which key is wrong."""
    try:
        return coerce(value, hint)
    except ValueError as exc:
        raise ConfigError(key, str(exc)) from None


def _check(settings: Settings) -> None:
    """Range checks that the types alone cannot express."""
    q, d = settings.queue, settings.dispatch
    _require(bool(q.url), "queue.url", "is required")
    _require(0 <= q.wait_time_seconds <= 20, "queue.wait_time_seconds", "must be 0..20")
    _require(10 <= q.visibility_timeout <= 43_200, "queue.visibility_timeout", "must be 10..43200")
    _require(q.connect_timeout_seconds > 0, "queue.connect_timeout_seconds", "must be > 0")
    _require(
        q.read_timeout_seconds > q.wait_time_seconds,
        "queue.read_timeout_seconds",
        "must be > wait_time_seconds (a long poll answers only after it)",
    )
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
        settings.log.level in ("debug", "info", "warning", "error"),
        "log.level",
        "must be debug, info, warning or error",
    )
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

"""The sections of the settings, one frozen dataclass each (`dispatcher.config` parses them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from dispatcher.config_feedback import SuppressionSettings, WebhookSettings


class ConfigError(ValueError):
    """Invalid settings. `key` is the dotted name, e.g. `queue.url` or `providers[1].api_key`."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config key {key}: {reason}")
        self.key = key


# What the next attempt of a message does after an ambiguous outcome (a timeout, a reset, a
# 500/504, a worker lost mid-send: the provider may have accepted it). See README "Delivery
# guarantees".
AmbiguousPolicy = Literal[
    "retry_same",  # after the retry delay, to the same provider only (its duplicates stay there)
    "fail_over",  # after the retry delay, to whichever provider routing picks
    "error",  # ERROR with the reason, to the dead-letter queue
]
AMBIGUOUS_POLICIES: tuple[str, ...] = get_args(AmbiguousPolicy)


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
    # a secret (its password): also `url_file`; check-config masks only the password
    url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
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
    on_ambiguous: AmbiguousPolicy = "retry_same"  # see AmbiguousPolicy
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
    latency_outlier_ratio: float = 10.0  # adaptive: costlier than this x the cheapest: outlier


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
    lease_seconds: float = 60.0  # a request that died holds its Idempotency-Key and messages


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

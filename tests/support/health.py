"""Provider health under test: two simulated providers behind a small breaker."""

from __future__ import annotations

from dispatcher.config import BreakerSettings, ProviderSettings, RoutingSettings
from providers.base import Status
from providers.simulated import SimulatedOptions

# The breaker of the health-store tests: 4 calls to judge, 3 failures in a row trip it.
BREAKER = BreakerSettings(
    error_rate_threshold=0.5,
    slow_call_rate_threshold=0.5,
    slow_call_seconds=1.0,
    minimum_calls=4,
    consecutive_failures=3,
    open_seconds=5.0,
    open_max_seconds=40.0,
    misconfigured_open_seconds=600.0,
    half_open_permits=2,
    half_open_successes=2,
    permit_lease_seconds=10.0,
    healthy_reset_seconds=60.0,
)
ROUTING = RoutingSettings(window_seconds=10, bucket_seconds=1, latency_decay_seconds=10.0)
PROVIDERS = (
    ProviderSettings("a", "simulated", SimulatedOptions(), breaker=BREAKER),
    ProviderSettings(
        "b", "simulated", SimulatedOptions(), breaker=BREAKER, rate_limit=20.0, burst=5
    ),
)

# The outcome each letter of the health tests' scripts stands for (M: a misconfigured DOWN).
KINDS = {
    "S": Status.SENT,
    "R": Status.REJECTED,
    "T": Status.THROTTLED,
    "D": Status.DOWN,
    "A": Status.AMBIGUOUS,
    "M": Status.DOWN,
}

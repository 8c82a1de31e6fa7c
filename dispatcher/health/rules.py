"""The one Python copy of each rule the health stores share with the Lua scripts (the Lua is
the reference; each function names its Lua twin). `MemoryHealth` uses them all, the fast trip
`streak` and `streak_trips`, the router `booked_delays`. Times are integer ms, as in Lua.
"""

from __future__ import annotations

import math

from dispatcher.config import BreakerSettings
from dispatcher.health.base import FAILED_KINDS, RateGrant
from strategies.base import Circuit


def half_open_due(circuit: Circuit, open_until: int, now: int) -> bool:
    """open -> half_open once open_until has passed (`half_open_if_due` in _breaker.lua)."""
    return circuit is Circuit.OPEN and now >= open_until


def trips_reset(
    circuit: Circuit, closed_at: int | None, now: int, breaker: BreakerSettings
) -> bool:
    """The trip count starts over once the breaker has been closed for `healthy_reset_seconds`
    (`trips_reset` in _breaker.lua)."""
    return (
        circuit is Circuit.CLOSED
        and closed_at is not None
        and now - closed_at >= breaker.healthy_reset_seconds * 1000
    )


def streak(failures: int, kind: str) -> int:
    """Failures in a row after an outcome of class `kind` (`judge` in breaker_record.lua): D,
    A and M extend the streak, S and R end it, T leaves it as it is."""
    if kind == "T":
        return failures
    return failures + 1 if kind in FAILED_KINDS else 0


def streak_trips(failures: int, kind: str, breaker: BreakerSettings) -> bool:
    """Trip on consecutive failures: at the breaker's threshold (a misconfiguration at once)."""
    return kind == "M" or failures >= breaker.consecutive_failures


def gcra_take(
    tat: float, now: int, want: int, interval: float, burst: float, horizon: float
) -> tuple[int, float, float]:
    """GCRA (`gcra_take` in _gcra.lua): (tokens granted, the new theoretical arrival time, ms
    until the next token is free). Grants what fits now, and within `horizon` ms, booked."""
    tat = max(float(now), tat)
    fits = math.floor(burst + horizon / interval - (tat - now) / interval + 1e-6)
    granted = max(0, min(want, fits))
    tat += granted * interval
    return granted, tat, max(0.0, tat + interval - burst * interval - now)


def gcra_free(tat: float, now: int, interval: float, burst: float) -> float:
    """The tokens free now (`gcra_free` in _gcra.lua)."""
    return max(0.0, burst - max(0.0, tat - now) / interval)


def booked_delays(grant: RateGrant, interval: float) -> list[float]:
    """Seconds from now until each token of `grant` may be used, earliest first. The last one is
    `grant.wait` less one emission interval (`interval`, in seconds) away, each earlier one an
    interval before it; a token free now has 0. Using a token later than that is always safe."""
    return [max(0.0, grant.wait - (grant.granted - k) * interval) for k in range(grant.granted)]

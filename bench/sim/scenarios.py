"""The fault scenarios. Times are virtual seconds; `--quick` builds each at 0.4x the length.

Providers are healthy at a lognormal latency around 80 ms (p99 about 160 ms) unless stated
(`brownout_1s`, the workload of issue 11: 20 ms).
Each scenario names the provider the metrics watch:

    sick        the provider whose share should fall once the fault begins (`onset`)
    recovering  the provider whose share should come back once the fault is over (`healed`)
    focus       the provider whose share during the fault the table shows
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bench.sim.providers import Profile, decaying, during, flapping
from providers.base import Status

QUICK_SCALE = 0.4


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    profile: Profile = field(default_factory=Profile)
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    providers: tuple[ProviderSpec, ...]
    duration: float  # messages arrive for this long
    onset: float | None = None  # the fault begins
    healed: float | None = None  # the fault is over
    sick: str | None = None
    recovering: str | None = None
    recover_share: float | None = None  # fair share after healing; None: the pre-fault share
    focus: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.providers)

    def fault_window(self) -> tuple[float, float]:
        """[start, end) of the fault; the whole run when there is none."""
        start = self.onset if self.onset is not None else 0.0
        return start, self.healed if self.healed is not None else self.duration


def _trio(a: Profile) -> tuple[ProviderSpec, ...]:
    return ProviderSpec("a", a), ProviderSpec("b"), ProviderSpec("c")


def outage(s: float) -> Scenario:
    start, end = 15 * s, 40 * s
    a = Profile(error_rate=during(start, end, 1.0))
    return Scenario(
        "outage",
        f"a answers 503 (DOWN) from {start:g} s to {end:g} s",
        _trio(a),
        80 * s,
        start,
        end,
        sick="a",
        recovering="a",
        focus="a",
    )


def brownout(s: float) -> Scenario:
    start, end = 15 * s, 45 * s
    a = Profile(slowdown=during(start, end, 20.0, 1.0))
    return Scenario(
        "brownout",
        f"a answers 20x slower (median 1.6 s) from {start:g} s to {end:g} s",
        _trio(a),
        85 * s,
        start,
        end,
        sick="a",
        recovering="a",
        focus="a",
    )


def brownout_1s(s: float) -> Scenario:
    """Issue 11's workload: three providers at 20 ms, one at 1,000 ms (50x) for 30 s."""
    start, end = 15 * s, 45 * s
    fast = Profile(median_ms=20.0)
    a = Profile(median_ms=20.0, slowdown=during(start, end, 50.0, 1.0))
    return Scenario(
        "brownout_1s",
        f"a, b, c at 20 ms; a answers in 1,000 ms (50x) from {start:g} s to {end:g} s",
        (ProviderSpec("a", a), ProviderSpec("b", fast), ProviderSpec("c", fast)),
        85 * s,
        start,
        end,
        sick="a",
        recovering="a",
        focus="a",
    )


def flaps(s: float) -> Scenario:
    start, end, period = 15 * s, 60 * s, 30 * s  # bad [15, 30) and [45, 60)
    a = Profile(error_rate=flapping(start, end, period), failure=Status.AMBIGUOUS, failure_ms=300.0)
    return Scenario(
        "flapping",
        f"a resets connections (AMBIGUOUS) half of every {period:g} s, {start:g} s to {end:g} s",
        _trio(a),
        95 * s,
        start,
        end,
        sick="a",
        recovering="a",
        focus="a",
    )


def throttle_storm(s: float) -> Scenario:
    start, end, quota = 15 * s, 45 * s, 50

    def quota_of(t: float) -> int | None:
        return quota if start <= t < end else None

    a = Profile(quota=quota_of, quota_seconds=10.0)
    return Scenario(
        "throttle_storm",
        f"a allows {quota} sends per 10 s window from {start:g} s to {end:g} s, then 429 "
        "with retry_after = seconds to the window reset",
        _trio(a),
        70 * s,
        start,
        end,
        sick="a",
        recovering="a",
        focus="a",
    )


def slow_recovery(s: float) -> Scenario:
    start, full, clear = 15 * s, 25 * s, 55 * s
    a = Profile(error_rate=decaying(start, full, clear))
    return Scenario(
        "slow_recovery",
        f"a answers 503 from {start:g} s; from {full:g} s its error rate falls linearly to 0 "
        f"at {clear:g} s",
        _trio(a),
        95 * s,
        start,
        clear,
        sick="a",
        recovering="a",
        focus="a",
    )


def all_down(s: float) -> Scenario:
    start, back = 15 * s, 30 * s
    down = Profile(error_rate=during(start, 1e9, 1.0))
    returns = Profile(error_rate=during(start, back, 1.0))
    return Scenario(
        "all_down",
        f"a, b and c answer 503 from {start:g} s; only b is back at {back:g} s",
        (ProviderSpec("a", down), ProviderSpec("b", returns), ProviderSpec("c", down)),
        60 * s,
        start,
        back,
        recovering="b",
        recover_share=1.0,
        focus="b",
    )


def cost(s: float) -> Scenario:
    cheap = ProviderSpec("cheap", Profile(median_ms=400.0), weight=3.0)
    fast = ProviderSpec("fast", Profile(median_ms=40.0), weight=1.0)
    return Scenario(
        "cost",
        "cheap (weight 3, median 400 ms) beside fast (weight 1, median 40 ms); no fault",
        (cheap, fast),
        60 * s,
        focus="cheap",
    )


SCENARIOS: dict[str, Callable[[float], Scenario]] = {
    "outage": outage,
    "brownout": brownout,
    "brownout_1s": brownout_1s,
    "flapping": flaps,
    "throttle_storm": throttle_storm,
    "slow_recovery": slow_recovery,
    "all_down": all_down,
    "cost": cost,
}


def build_scenario(name: str, quick: bool = False) -> Scenario:
    factory = SCENARIOS.get(name)
    if factory is None:
        raise ValueError(f"unknown scenario {name!r}; valid: {', '.join(SCENARIOS)}")
    return factory(QUICK_SCALE if quick else 1.0)

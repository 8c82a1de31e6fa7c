"""Each scoring strategy's policy, judged by first-choice shares over many seeded draws."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from strategies import Circuit, HealthSnapshot, ProviderView, Tuning, build_strategy
from strategies.adaptive import OUTLIER_SAMPLE_SECONDS, PROBE_SHARE, Adaptive


def healthy(name: str, **changes: Any) -> ProviderView:
    """A closed, fresh, error-free provider at 50 ms with 100 calls in its window."""
    view = ProviderView(name, calls=100, latency_ms=50.0, age=1.0)
    return replace(view, **changes)


TRIO = (healthy("a"), healthy("b"), healthy("c"))


def first_shares(
    strategy: str,
    views: tuple[ProviderView, ...],
    *,
    draws: int = 6_000,
    tuning: Tuning | None = None,
    seed: int = 11,
) -> dict[str, float]:
    """How often each provider is ranked first, as a share of `draws` decisions."""
    ranker = build_strategy(strategy, tuning)
    rng = random.Random(seed)
    firsts = Counter(ranker.rank(HealthSnapshot(views, sequence=i), rng)[0] for i in range(draws))
    return {view.name: firsts[view.name] / draws for view in views}


# weighted


def test_weighted_first_choices_follow_the_weights() -> None:
    views = (ProviderView("light", weight=1), ProviderView("heavy", weight=3))
    shares = first_shares("weighted", views, draws=10_000)
    assert shares["light"] == pytest.approx(0.25, abs=0.02)
    assert shares["heavy"] == pytest.approx(0.75, abs=0.02)


def test_weighted_fallbacks_are_weighted_too() -> None:
    views = (ProviderView("a", weight=1), ProviderView("b", weight=1), ProviderView("c", weight=8))
    rng = random.Random(5)
    orders = [build_strategy("weighted").rank(HealthSnapshot(views), rng) for _ in range(10_000)]
    after_a = Counter(order[1] for order in orders if order[0] == "a")
    after_c = Counter(order[1] for order in orders if order[0] == "c")
    assert after_a["c"] / after_a.total() == pytest.approx(8 / 9, abs=0.04)
    assert after_c["a"] / after_c.total() == pytest.approx(0.5, abs=0.04)


def test_weighted_ignores_health_signals() -> None:
    views = (healthy("a", failures=100, latency_ms=9_000.0), healthy("b"))
    shares = first_shares("weighted", views)
    assert shares["a"] == pytest.approx(0.5, abs=0.03)


# least_latency


def test_least_latency_mostly_picks_the_fastest_and_never_the_slowest() -> None:
    views = (
        healthy("slow", latency_ms=200.0),
        healthy("fast", latency_ms=20.0),
        healthy("mid", latency_ms=80.0),
    )
    shares = first_shares("least_latency", views)
    assert shares["fast"] == pytest.approx(0.8, abs=0.03)
    assert shares["mid"] == pytest.approx(0.2, abs=0.03)
    assert shares["slow"] == 0


def test_least_latency_still_tries_a_provider_without_fresh_data() -> None:
    for unknown in (healthy("new", latency_ms=None, age=None), healthy("new", age=600.0)):
        views = (healthy("fast", latency_ms=20.0), healthy("mid", latency_ms=40.0), unknown)
        shares = first_shares("least_latency", views)
        assert 0.05 < shares["new"] < shares["mid"] + 0.05
        assert shares["fast"] > 0.5


def test_least_latency_spreads_ties() -> None:
    for views in (TRIO, tuple(ProviderView(v.name) for v in TRIO)):
        shares = first_shares("least_latency", views)
        assert all(0.28 < share < 0.39 for share in shares.values()), shares


def test_least_latency_counts_the_sends_in_flight() -> None:
    # 32 sends in flight double the cost (scoring.IN_FLIGHT_SCALE): picked 1 time in 3.
    views = (healthy("busy", in_flight=32), healthy("idle"))
    assert first_shares("least_latency", views)["busy"] == pytest.approx(1 / 3, abs=0.03)


def test_least_latency_fails_over_in_cost_order() -> None:
    views = (
        healthy("c", latency_ms=300.0),
        healthy("b", latency_ms=200.0),
        healthy("a", latency_ms=10.0),
    )
    order = build_strategy("least_latency").rank(HealthSnapshot(views), random.Random(1))
    assert list(order) in (["a", "b", "c"], ["b", "a", "c"])


# adaptive


def test_adaptive_shares_equal_healthy_providers_evenly() -> None:
    shares = first_shares("adaptive", TRIO)
    assert all(0.25 <= share <= 0.42 for share in shares.values()), shares


def test_adaptive_barely_moves_for_small_differences() -> None:
    views = (healthy("a", latency_ms=50.0), healthy("b", latency_ms=55.0))
    shares = first_shares("adaptive", views)
    assert 0.4 < shares["b"] < 0.5


def test_adaptive_drains_a_browned_out_provider() -> None:
    views = (healthy("a"), healthy("b", latency_ms=1_000.0), healthy("c"))
    assert first_shares("adaptive", views)["b"] < 0.05
    pair = (healthy("a"), healthy("b", latency_ms=1_000.0))
    assert first_shares("adaptive", pair)["b"] < 0.05


def test_adaptive_weighs_a_slower_provider_by_the_square_of_its_speed() -> None:
    adaptive = Adaptive(Tuning())
    for slow, weight in ((100.0, 1 / 4), (250.0, 1 / 25), (499.0, (50 / 499) ** 2)):
        views = (healthy("a"), healthy("b", latency_ms=slow))
        assert adaptive.weights(HealthSnapshot(views))["b"] == pytest.approx(weight)


def test_adaptive_samples_a_latency_outlier_at_a_steady_pace_only() -> None:
    adaptive = Adaptive(Tuning())  # an outlier costs over 10x the cheapest
    fresh = (healthy("a"), healthy("b", latency_ms=1_000.0, age=1.0))
    assert adaptive.weights(HealthSnapshot(fresh))["b"] < 1e-9  # its last answer is recent
    assert first_shares("adaptive", fresh)["b"] == 0.0
    due = (healthy("a"), healthy("b", latency_ms=1_000.0, age=OUTLIER_SAMPLE_SECONDS))
    assert adaptive.weights(HealthSnapshot(due))["b"] == pytest.approx(PROBE_SHARE)
    out = (healthy("a"), healthy("b", latency_ms=1_000.0, age=30.0, in_flight=1))
    assert adaptive.weights(HealthSnapshot(out))["b"] < 1e-9  # its sample is on its way
    wide = Adaptive(Tuning(latency_outlier_ratio=1e9))  # no outlier: the square throughout
    assert wide.weights(HealthSnapshot(fresh))["b"] == pytest.approx(1 / 400)


def test_adaptive_drains_a_provider_in_outage_before_its_breaker_opens() -> None:
    for failures in (98, 100):
        views = (healthy("a"), healthy("b", failures=failures), healthy("c"))
        assert first_shares("adaptive", views)["b"] < 0.001


def test_adaptive_gives_no_latency_credit_for_fast_failures() -> None:
    for failures in (70, 100):
        views = (healthy("a"), healthy("b", failures=failures, latency_ms=2.0), healthy("c"))
        assert first_shares("adaptive", views)["b"] < 0.01


def test_adaptive_needs_minimum_calls_before_judging_success() -> None:
    views = (healthy("a"), healthy("b", calls=2, failures=1), healthy("c"))
    assert first_shares("adaptive", views)["b"] > 0.25


def test_adaptive_ramps_a_recovered_provider_up_slowly() -> None:
    def share(recovered_for: float) -> float:
        views = (healthy("a"), healthy("b", recovered_for=recovered_for), healthy("c"))
        return first_shares("adaptive", views)["b"]

    just, half, done = share(1.0), share(15.0), share(60.0)
    assert just < 0.07
    assert just < half < done
    assert done > 0.28


def test_adaptive_treats_stale_data_as_neutral() -> None:
    stale = healthy("b", failures=100, latency_ms=9_000.0, age=600.0)
    shares = first_shares("adaptive", (healthy("a"), stale, healthy("c")))
    assert all(0.28 < share < 0.39 for share in shares.values()), shares
    fresh_enough = first_shares("adaptive", TRIO, tuning=Tuning(stale_seconds=0.5))
    assert all(0.28 < share < 0.39 for share in fresh_enough.values()), fresh_enough


def test_adaptive_panics_into_spreading_when_most_providers_are_bad() -> None:
    bad = {"calls": 100, "failures": 90}
    views = (healthy("a", **bad), healthy("b"), healthy("c", **bad))
    shares = first_shares("adaptive", views)
    assert all(0.28 < share < 0.39 for share in shares.values()), shares
    calm = first_shares("adaptive", views, tuning=Tuning(panic_threshold=0.0))
    assert calm["b"] > 0.99


def test_adaptive_panic_follows_static_weight_and_headroom() -> None:
    bad = {"calls": 100, "failures": 90}
    views = (healthy("a", weight=3, **bad), healthy("b"), healthy("c", headroom=0.0, **bad))
    shares = first_shares("adaptive", views)
    assert shares["a"] == pytest.approx(0.75, abs=0.03)
    assert shares["c"] < 0.001


def test_adaptive_counts_open_circuits_towards_panic() -> None:
    views = (
        healthy("a"),
        healthy("b", available=False),
        healthy("c", available=False),
        healthy("d", failures=60),  # 40 % success: failing, but still eligible
    )
    shares = first_shares("adaptive", views)
    assert shares["d"] == pytest.approx(0.5, abs=0.03)


def test_adaptive_gives_a_half_open_provider_only_a_probe_share() -> None:
    half_open = healthy("b", circuit=Circuit.HALF_OPEN, failures=100)
    shares = first_shares("adaptive", (healthy("a"), half_open, healthy("c")))
    assert 0.005 < shares["b"] < 0.05


def test_adaptive_sends_less_to_a_provider_near_its_rate_limit() -> None:
    shares = first_shares("adaptive", (healthy("near", headroom=0.1), healthy("free")))
    assert shares["near"] == pytest.approx(0.1 / 1.1, abs=0.02)


def test_adaptive_balances_sends_in_flight() -> None:
    shares = first_shares("adaptive", (healthy("busy", in_flight=32), healthy("idle")))
    assert shares["busy"] == pytest.approx(0.2, abs=0.03)


def test_adaptive_fails_over_best_score_first() -> None:
    views = (healthy("down", failures=100), healthy("slow", latency_ms=500.0), healthy("ok"))
    rng = random.Random(2)
    orders = {tuple(build_strategy("adaptive").rank(HealthSnapshot(views), rng)) for _ in range(50)}
    assert orders <= {("ok", "slow", "down"), ("slow", "ok", "down")}


def test_adaptive_weights_explain_its_choices() -> None:
    views = (healthy("a"), healthy("b", latency_ms=100.0), healthy("off", weight=0))
    weights = Adaptive(Tuning()).weights(HealthSnapshot(views))
    assert weights == pytest.approx({"a": 1.0, "b": 0.25})
    assert Adaptive(Tuning()).weights(HealthSnapshot(())) == {}

"""`p2c`, the P2C + peak-EWMA reference balancer, judged by first-choice shares."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from strategies import HealthSnapshot, ProviderView, build_strategy


def healthy(name: str, **changes: Any) -> ProviderView:
    """A closed, fresh, error-free provider at 20 ms with 100 calls in its window."""
    return replace(ProviderView(name, calls=100, latency_ms=20.0, age=1.0), **changes)


def first_shares(views: tuple[ProviderView, ...], draws: int = 6_000) -> dict[str, float]:
    ranker, rng = build_strategy("p2c"), random.Random(5)
    firsts = Counter(ranker.rank(HealthSnapshot(views, sequence=i), rng)[0] for i in range(draws))
    return {view.name: firsts[view.name] / draws for view in views}


def test_p2c_never_leads_with_the_browned_out_provider() -> None:
    views = (healthy("slow", latency_ms=1_000.0), healthy("b"), healthy("c"))
    shares = first_shares(views)
    assert shares["slow"] == 0
    assert shares["b"] == pytest.approx(0.5, abs=0.03)


def test_p2c_spreads_equal_providers_evenly() -> None:
    shares = first_shares((healthy("a"), healthy("b"), healthy("c")))
    assert all(0.3 < share < 0.37 for share in shares.values()), shares


def test_p2c_counts_each_send_in_flight() -> None:
    # One send in flight doubles the cost: the busy one loses every pair, as in Finagle.
    views = (healthy("busy", in_flight=1), healthy("b"), healthy("c"))
    assert first_shares(views)["busy"] == 0


def test_p2c_tries_a_provider_without_fresh_data_at_the_typical_cost() -> None:
    views = (healthy("new", latency_ms=None, age=None), healthy("b"), healthy("c", latency_ms=40.0))
    shares = first_shares(views)
    assert shares["new"] == pytest.approx(shares["b"], abs=0.04)
    assert shares["c"] == 0


def test_p2c_falls_back_in_cost_order() -> None:
    views = (healthy("c", latency_ms=300.0), healthy("b", latency_ms=200.0), healthy("a"))
    order = build_strategy("p2c").rank(HealthSnapshot(views), random.Random(1))
    assert list(order) in (["a", "b", "c"], ["b", "a", "c"])

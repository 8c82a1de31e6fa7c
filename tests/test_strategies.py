"""Contract over every registered strategy, plus each one's own policy."""

from __future__ import annotations

import random

import pytest

from strategies import (
    STRATEGIES,
    HealthSnapshot,
    ProviderView,
    UnknownStrategyError,
    build_strategy,
)

VIEWS = (ProviderView("a"), ProviderView("b", weight=2), ProviderView("c"))


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_contract_ranks_only_eligible_providers_once(name: str) -> None:
    strategy = build_strategy(name)
    views = (*VIEWS, ProviderView("off", weight=0), ProviderView("open", available=False))
    for sequence in range(20):
        order = list(strategy.rank(HealthSnapshot(views, sequence=sequence), random.Random(7)))
        assert sorted(order) == ["a", "b", "c"]


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_contract_is_pure_and_sheds_when_none_is_eligible(name: str) -> None:
    strategy = build_strategy(name)
    snapshot = HealthSnapshot(VIEWS, now=5.0, sequence=3)
    assert list(strategy.rank(snapshot, random.Random(1))) == list(
        strategy.rank(snapshot, random.Random(1))
    )
    closed = HealthSnapshot(tuple(ProviderView(v.name, available=False) for v in VIEWS))
    assert list(strategy.rank(closed, random.Random(1))) == []


def test_priority_keeps_config_order_and_skips_unavailable() -> None:
    views = (ProviderView("a", available=False), ProviderView("b"), ProviderView("c"))
    assert list(build_strategy("priority").rank(HealthSnapshot(views), random.Random())) == [
        "b",
        "c",
    ]


def test_round_robin_rotates_the_first_choice_evenly() -> None:
    strategy = build_strategy("round_robin")
    firsts = [
        strategy.rank(HealthSnapshot(VIEWS, sequence=i), random.Random())[0] for i in range(300)
    ]
    assert {name: firsts.count(name) for name in "abc"} == {"a": 100, "b": 100, "c": 100}


def test_unknown_strategy_lists_the_valid_names() -> None:
    with pytest.raises(UnknownStrategyError, match=r"routing\.strategy.*priority, round_robin"):
        build_strategy("fastest")

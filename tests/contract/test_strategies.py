"""Contract over every registered strategy, plus each one's own policy."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import (
    STRATEGIES,
    Circuit,
    HealthSnapshot,
    ProviderView,
    Tuning,
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


NAMES = ("sendgrid", "mailgun", "ses", "postmark", "sparkpost")
PROPERTY = settings(max_examples=40, database=None)


@st.composite
def views(draw: st.DrawFn, name: str) -> ProviderView:
    calls = draw(st.integers(0, 200))
    maybe_ms = st.none() | st.floats(0, 10_000)
    return ProviderView(
        name,
        weight=draw(st.just(0.0) | st.floats(0.01, 10)),
        available=draw(st.booleans()),
        circuit=draw(st.sampled_from(Circuit)),
        calls=calls,
        failures=draw(st.integers(0, calls)),
        latency_ms=draw(maybe_ms),
        p95_ms=draw(maybe_ms),
        in_flight=draw(st.integers(0, 50)),
        headroom=draw(st.floats(0, 1)),
        recovered_for=draw(st.none() | st.floats(0, 600)),
        age=draw(st.none() | st.floats(0, 600)),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> HealthSnapshot:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=0, max_size=5, unique=True))
    return HealthSnapshot(
        tuple(draw(views(name)) for name in names),
        now=draw(st.floats(0, 1e6)),
        sequence=draw(st.integers(0, 10**6)),
    )


tunings = st.builds(
    Tuning,
    stale_seconds=st.floats(0, 300),
    slow_start_seconds=st.floats(0, 120),
    slow_start_min_weight=st.floats(0, 1),
    panic_threshold=st.floats(0, 1),
)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@PROPERTY
@given(snapshot=snapshots(), tuning=tunings, seed=st.integers(0, 2**32))
def test_contract_ranks_every_eligible_provider_exactly_once(
    name: str, snapshot: HealthSnapshot, tuning: Tuning, seed: int
) -> None:
    order = list(build_strategy(name, tuning).rank(snapshot, random.Random(seed)))
    assert all(isinstance(entry, str) for entry in order)
    assert len(order) == len(set(order))
    assert sorted(order) == sorted(p.name for p in snapshot.eligible())
    disabled = {p.name for p in snapshot.providers if p.weight == 0 or not p.available}
    assert disabled.isdisjoint(order)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@PROPERTY
@given(snapshot=snapshots(), tuning=tunings, seed=st.integers(0, 2**32))
def test_contract_depends_only_on_the_snapshot_and_the_injected_rng(
    name: str, snapshot: HealthSnapshot, tuning: Tuning, seed: int
) -> None:
    first = list(build_strategy(name, tuning).rank(snapshot, random.Random(seed)))
    random.seed(seed + 1)  # the global random source must play no part
    again = list(build_strategy(name, tuning).rank(snapshot, random.Random(seed)))
    assert first == again


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_contract_returns_a_lone_eligible_provider_whatever_its_health(name: str) -> None:
    sick = ProviderView(
        "ses", calls=100, failures=100, latency_ms=9e3, age=0.0, circuit=Circuit.HALF_OPEN
    )
    views = (ProviderView("off", weight=0), sick, ProviderView("open", available=False))
    assert list(build_strategy(name).rank(HealthSnapshot(views), random.Random(3))) == ["ses"]


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

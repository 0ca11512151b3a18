"""APGR and CPT on data small enough to check by hand, and the three reference routers: the
perfect one, a random one (about 0.5) and one that only ever calls the weak model (0). What
would break: figures that flatter the router or that do not mean what RouteLLM means."""

from __future__ import annotations

import random

import pytest

from raas.router.evaluate import (
    apgr,
    cost_to_recover,
    metrics_of_curve,
    oracle_scores,
    percentile,
    random_curve,
    routing_curve,
)

# Four questions: the strong model alone is right on #0, both on #1, neither on #2, the weak
# alone on #3; each model gets two of the four right.
WEAK = [False, True, False, True]
STRONG = [True, True, False, False]


def test_routing_curve_by_hand() -> None:
    # route #0 first (gain +1), then #1 (0), #2 (0), #3 (-1)
    curve = routing_curve([4.0, 3.0, 2.0, 1.0], WEAK, STRONG)
    assert curve == [(0.0, 0.5), (0.25, 0.75), (0.5, 0.75), (0.75, 0.75), (1.0, 0.5)]


def test_apgr_and_cpt_by_hand() -> None:
    # weak 0.6, strong 0.8: PGR is 0 at share 0, 1 at share 0.5, 1 at share 1
    curve = [(0.0, 0.6), (0.5, 0.8), (1.0, 0.8)]
    # area: 0.5 * (0 + 1) / 2 + 0.5 * 1 = 0.75
    assert apgr(curve, 0.6, 0.8) == pytest.approx(0.75)
    assert cost_to_recover(curve, 0.6, 0.8, 0.5) == pytest.approx(0.25)
    assert cost_to_recover(curve, 0.6, 0.8, 0.8) == pytest.approx(0.4)
    assert cost_to_recover(curve, 0.6, 0.8, 1.5) is None


def test_perfect_router() -> None:
    # 10 questions: weak right on 6, strong right on 8; the strong model alone is right on 3
    weak = [True] * 6 + [False] * 4
    strong = [True] * 5 + [False] + [True] * 3 + [False]
    curve = routing_curve(oracle_scores(weak, strong), weak, strong)
    metrics = metrics_of_curve(curve, 0.6, 0.8)
    # PGR climbs 0.5 per question for the first three (10% of calls each), reaches 1.5, then
    # stays until the last 10% when the one question only the weak model got right goes strong.
    assert metrics.cpt_50 == pytest.approx(0.1)
    assert metrics.cpt_80 == pytest.approx(0.16)
    expected_area = 0.1 * (0 + 0.5) / 2 + 0.1 * (0.5 + 1) / 2 + 0.1 * (1 + 1.5) / 2
    expected_area += 0.6 * 1.5 + 0.1 * (1.5 + 1) / 2
    assert metrics.apgr == pytest.approx(expected_area)
    assert metrics.apgr is not None and metrics.apgr > 1


def test_random_router_recovers_half() -> None:
    generator = random.Random(7)
    weak = [generator.random() < 0.68 for _ in range(4_000)]
    strong = [generator.random() < 0.81 for _ in range(4_000)]
    scores = [generator.random() for _ in range(4_000)]
    weak_accuracy, strong_accuracy = sum(weak) / 4_000, sum(strong) / 4_000
    metrics = metrics_of_curve(routing_curve(scores, weak, strong), weak_accuracy, strong_accuracy)
    assert metrics.apgr == pytest.approx(0.5, abs=0.05)
    expected = metrics_of_curve(random_curve(0.7, 0.8), 0.7, 0.8)
    assert expected.apgr == pytest.approx(0.5)
    assert expected.cpt_50 == pytest.approx(0.5)
    assert expected.cpt_80 == pytest.approx(0.8)
    assert expected.accuracy_at["30%"] == pytest.approx(0.73)


def test_weak_only_router_recovers_nothing() -> None:
    # never calls the strong model: one point, at share 0, at the weak model's accuracy
    metrics = metrics_of_curve([(0.0, 0.6)], 0.6, 0.8)
    assert metrics.apgr == 0.0
    assert metrics.cpt_50 is None and metrics.cpt_80 is None
    assert metrics.accuracy_at["90%"] == pytest.approx(0.6)


def test_no_gap_gives_no_figures() -> None:
    assert apgr([(0.0, 0.7), (1.0, 0.7)], 0.7, 0.7) is None
    assert cost_to_recover([(0.0, 0.7)], 0.7, 0.7, 0.5) is None


def test_percentile_is_nearest_rank() -> None:
    values = [float(value) for value in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0

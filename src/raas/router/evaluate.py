"""Evaluating a weak/strong router as RouteLLM does: accuracy against the share of strong calls.

Definitions (RouteLLM, Ong et al. 2024), for a router that sends a share c of the questions to
the strong model:
- PGR(c) = (accuracy(c) - weak accuracy) / (strong accuracy - weak accuracy): the part of the gap
  between the two models that routing recovers;
- APGR = the area under PGR over c in [0, 1] (trapezoids);
- CPT(x) = the smallest share of strong calls at which PGR reaches x.
A scoring router sends the top c of the questions, ranked by its predicted benefit of the strong
model, to the strong model; its curve is computed at every possible number of strong calls, and
APGR is also given on the 11 points c = 0, 0.1, ..., 1 that RouteLLM's own evaluation uses. A
curve given as points is read as linear between them and flat beyond its ends: a router that
never calls the strong model more often recovers nothing more. The random router is its
expectation: accuracy(c) = weak + c * (strong - weak), so PGR(c) = c and APGR = 0.5.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Sequence
from typing import Final

import msgspec
import numpy as np

from raas.router.features import RouteRequest
from raas.router.model import Predictor, RouterError
from raas.router.policy import Policy, Router, Tier
from raas.router.routellm import Row

REPORTED_SHARES: Final[tuple[int, ...]] = (10, 20, 30, 40, 50, 60, 70, 80, 90)


class RouterMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """One router's figures on one data set. Shares are fractions in [0, 1]."""

    accuracy_at: dict[str, float]  # "10%" -> accuracy with 10% strong calls
    apgr: float | None
    apgr_11_points: float | None
    cpt_50: float | None  # None when the router never recovers that much of the gap
    cpt_80: float | None


class Latency(msgspec.Struct, frozen=True, kw_only=True):
    """Decision latency in milliseconds over `decisions` timed decisions: wall-clock time, and
    the CPU time of the deciding thread (which leaves out time the thread waited for a core:
    on a busy machine, the difference is the other processes' doing)."""

    decisions: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    cpu_p50_ms: float | None = None
    cpu_p99_ms: float | None = None


def gap_recovered(accuracy: float, weak: float, strong: float) -> float | None:
    """PGR of one accuracy; None when the two models are equally good (there is no gap)."""
    if strong == weak:
        return None
    return (accuracy - weak) / (strong - weak)


def apgr(curve: Sequence[tuple[float, float]], weak: float, strong: float) -> float | None:
    """Area under PGR over the strong-call share in [0, 1], from (share, accuracy) points.

    Points are sorted by share; the curve is linear between them and flat beyond the first and
    the last (see the module's docstring). None when there is no gap between the models.
    """
    if strong == weak or not curve:
        return None
    points = sorted(curve)
    gaps = [(share, (accuracy - weak) / (strong - weak)) for share, accuracy in points]
    if gaps[0][0] > 0:
        gaps.insert(0, (0.0, gaps[0][1]))
    if gaps[-1][0] < 1:
        gaps.append((1.0, gaps[-1][1]))
    area = 0.0
    for (left_share, left_gap), (right_share, right_gap) in itertools.pairwise(gaps):
        area += (right_share - left_share) * (left_gap + right_gap) / 2
    return area


def cost_to_recover(
    curve: Sequence[tuple[float, float]], weak: float, strong: float, target: float
) -> float | None:
    """CPT(target): the smallest share of strong calls at which PGR reaches `target`, read
    linearly between points; None if it never does (or there is no gap)."""
    if strong == weak or not curve:
        return None
    points = sorted(curve)
    gaps = [(share, (accuracy - weak) / (strong - weak)) for share, accuracy in points]
    if gaps[0][1] >= target:
        return gaps[0][0] if gaps[0][0] > 0 else 0.0
    for (left_share, left_gap), (right_share, right_gap) in itertools.pairwise(gaps):
        if right_gap >= target:
            if right_gap == left_gap:
                return right_share
            fraction = (target - left_gap) / (right_gap - left_gap)
            return left_share + fraction * (right_share - left_share)
    return None


def routing_curve(
    scores: Sequence[float], weak: Sequence[bool], strong: Sequence[bool]
) -> list[tuple[float, float]]:
    """(share, accuracy) at every number of strong calls 0..n, routing the highest scores to
    the strong model first (ties in the order given, so the result is deterministic)."""
    count = len(scores)
    if count == 0 or len(weak) != count or len(strong) != count:
        raise ValueError("scores, weak and strong must be equally long and not empty")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    weak_array = np.asarray(weak, dtype=np.int64)
    gain = np.asarray(strong, dtype=np.int64)[order] - weak_array[order]
    correct = int(weak_array.sum()) + np.concatenate(([0], np.cumsum(gain)))
    return [(calls / count, int(right) / count) for calls, right in enumerate(correct)]


def metrics_of_curve(
    curve: Sequence[tuple[float, float]], weak: float, strong: float
) -> RouterMetrics:
    """The figures of one router's curve: accuracy at 10%..90%, APGR, CPT(50%) and CPT(80%)."""
    points = sorted(curve)
    accuracy_at = {f"{share}%": _accuracy_at(points, share / 100) for share in REPORTED_SHARES}
    eleven = [(step / 10, _accuracy_at(points, step / 10)) for step in range(11)]
    return RouterMetrics(
        accuracy_at=accuracy_at,
        apgr=apgr(points, weak, strong),
        apgr_11_points=apgr(eleven, weak, strong),
        cpt_50=cost_to_recover(points, weak, strong, 0.5),
        cpt_80=cost_to_recover(points, weak, strong, 0.8),
    )


def random_curve(weak: float, strong: float) -> list[tuple[float, float]]:
    """The expected curve of a router that sends a random share c to the strong model."""
    return [(0.0, weak), (1.0, strong)]


def oracle_scores(weak: Sequence[bool], strong: Sequence[bool]) -> list[float]:
    """Scores of the best possible router: the questions only the strong model gets right
    first, those only the weak model gets right last."""
    return [float(s) - float(w) for w, s in zip(weak, strong, strict=True)]


def _accuracy_at(points: Sequence[tuple[float, float]], share: float) -> float:
    shares = np.array([point[0] for point in points])
    accuracies = np.array([point[1] for point in points])
    return float(np.interp(share, shares, accuracies))


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile by the nearest-rank method (no interpolation)."""
    ordered = sorted(values)
    rank = max(1, int(np.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def latency_of(durations_ns: Sequence[int], cpu_ns: Sequence[int] | None = None) -> Latency:
    """p50, p99 and mean of timed decisions (nanoseconds in, milliseconds out)."""
    milliseconds = [duration / 1e6 for duration in durations_ns]
    cpu = [duration / 1e6 for duration in cpu_ns] if cpu_ns else None
    return Latency(
        decisions=len(milliseconds),
        p50_ms=percentile(milliseconds, 0.5),
        p99_ms=percentile(milliseconds, 0.99),
        mean_ms=statistics.fmean(milliseconds),
        cpu_p50_ms=percentile(cpu, 0.5) if cpu else None,
        cpu_p99_ms=percentile(cpu, 0.99) if cpu else None,
    )


class Evaluation(msgspec.Struct, frozen=True, kw_only=True):
    """A router's evaluation on RouteLLM rows, beside the random and the best possible router.

    Shares and accuracies are fractions in [0, 1]."""

    rows: int
    weak_tier: str
    strong_tier: str
    weak_accuracy: float
    strong_accuracy: float
    router: RouterMetrics
    random: RouterMetrics
    oracle: RouterMetrics
    oracle_best_accuracy: float  # every question only the strong model gets right goes to it
    oracle_best_share: float  # ... which takes this share of strong calls
    latency: Latency


def benefit_scores(
    predictor: Predictor, rows: Sequence[Row], weak: str, strong: str
) -> list[float]:
    """Each row's predicted benefit of the strong tier: P(strong right) - P(weak right)."""
    for tier in (weak, strong):
        if tier not in predictor.tiers:
            raise RouterError(
                f"the model has no tier {tier!r}; it has {', '.join(map(repr, predictor.tiers))} "
                "(a RouteLLM model names its tiers after the --weak and --strong columns)"
            )
    scores: list[float] = []
    for row in rows:
        estimates = predictor.predict(RouteRequest(text=row.prompt))
        scores.append(estimates[strong] - estimates[weak])
    return scores


def time_decisions(
    predictor: Predictor, rows: Sequence[Row], weak: str, strong: str, decisions: int
) -> Latency:
    """Time `decisions` full decisions (features, estimates, policy) over the rows, in turn."""
    policy = Policy(tiers=(Tier(name=weak, cost=1.0), Tier(name=strong, cost=10.0)), target=0.75)
    router = Router(predictor, policy)
    requests = [RouteRequest(text=row.prompt) for row in rows]
    durations: list[int] = []
    cpu: list[int] = []
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for position in range(decisions):
        request = requests[position % len(requests)]
        started, cpu_started = clock(), cpu_clock()
        router.decide(request)
        durations.append(clock() - started)
        cpu.append(cpu_clock() - cpu_started)
    return latency_of(durations, cpu)


def evaluate_rows(
    predictor: Predictor,
    rows: Sequence[Row],
    weak: str,
    strong: str,
    *,
    latency_decisions: int | None = None,
) -> Evaluation:
    """The router's figures on `rows` (see the module's docstring for the definitions).

    `latency_decisions` defaults to one decision per row, and at least 1,000.
    """
    if not rows:
        raise RouterError("no rows to evaluate")
    scores = benefit_scores(predictor, rows, weak, strong)
    weak_right = [row.weak for row in rows]
    strong_right = [row.strong for row in rows]
    weak_accuracy = sum(weak_right) / len(rows)
    strong_accuracy = sum(strong_right) / len(rows)
    only_strong = sum(1 for row in rows if row.strong and not row.weak)
    oracle_curve = routing_curve(oracle_scores(weak_right, strong_right), weak_right, strong_right)
    decisions = latency_decisions if latency_decisions is not None else max(len(rows), 1_000)
    return Evaluation(
        rows=len(rows),
        weak_tier=weak,
        strong_tier=strong,
        weak_accuracy=weak_accuracy,
        strong_accuracy=strong_accuracy,
        router=metrics_of_curve(
            routing_curve(scores, weak_right, strong_right), weak_accuracy, strong_accuracy
        ),
        random=metrics_of_curve(
            random_curve(weak_accuracy, strong_accuracy), weak_accuracy, strong_accuracy
        ),
        oracle=metrics_of_curve(oracle_curve, weak_accuracy, strong_accuracy),
        oracle_best_accuracy=weak_accuracy + only_strong / len(rows),
        oracle_best_share=only_strong / len(rows),
        latency=time_decisions(predictor, rows, weak, strong, decisions),
    )

"""Fitting the router: examples (features, tier, resolved) -> a `RouterModel`, with NumPy.

Each tier gets its own L2-regularised logistic regression, minimised by L-BFGS written here
(about forty lines; no SciPy or scikit-learn needed). The same examples and settings always give
the same model: the data is processed in the order given and nothing is random.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from raas.router.features import FeatureConfig, Features
from raas.router.model import RouterError, RouterModel, TierWeights, TrainingInfo

# Chosen by 3-fold cross-validation by subject within the training subjects of the MMLU split
# (never on the evaluation subjects), with an earlier version of the features: 1e-4, 1e-3 and
# 3e-3 gave mean APGR 0.580, 0.576 and 0.574, a flat optimum, so the middle value.
L2_DEFAULT: Final = 1e-3

Vector = npt.NDArray[np.float64]


class Example(NamedTuple):
    """One observation: with these features, `tier` served and the episode was or was not
    resolved. `weight` counts it more or less (1 by default)."""

    features: Features
    tier: str
    resolved: bool
    weight: float = 1.0


class FitReport(NamedTuple):
    """How the optimiser ended for one tier."""

    iterations: int
    loss: float
    gradient_norm: float


def train(
    examples: Iterable[Example],
    config: FeatureConfig,
    training: TrainingInfo,
    *,
    l2: float = L2_DEFAULT,
    max_iterations: int = 300,
    on_tier: Callable[[str, FitReport], None] | None = None,
) -> RouterModel:
    """Fit one logistic regression per tier seen in `examples`, tiers in order of first sight."""
    if l2 <= 0:
        raise RouterError(f"l2 must be positive, got {l2}")
    by_tier: dict[str, list[Example]] = {}
    for example in examples:
        by_tier.setdefault(example.tier, []).append(example)
    if not by_tier:
        raise RouterError("no training examples: nothing to learn from")
    tiers: dict[str, TierWeights] = {}
    for tier, tier_examples in by_tier.items():
        weights, report = fit_tier(tier_examples, l2=l2, max_iterations=max_iterations)
        tiers[tier] = weights
        if on_tier is not None:
            on_tier(tier, report)
    return RouterModel(features=config, tiers=tiers, training=training)


def fit_tier(
    examples: Sequence[Example], *, l2: float = L2_DEFAULT, max_iterations: int = 300
) -> tuple[TierWeights, FitReport]:
    """One tier's logistic regression over its examples."""
    matrix = _SparseRows.of([example.features for example in examples])
    labels = np.array([1.0 if example.resolved else 0.0 for example in examples])
    sample_weights = np.array([example.weight for example in examples], dtype=np.float64)
    if np.any(sample_weights < 0) or sample_weights.sum() <= 0:
        raise RouterError("example weights must be non-negative and not all zero")
    total = float(sample_weights.sum())
    resolved = float(sample_weights @ labels)
    # Start from the base rate: the bias alone then already predicts the tier's average, and the
    # weights only have to explain the differences.
    rate = min(max(resolved / total, 1e-4), 1 - 1e-4)
    start = np.zeros(matrix.columns.size + 1)
    start[0] = np.log(rate / (1 - rate))
    share = sample_weights / total

    def loss_and_gradient(parameters: Vector) -> tuple[float, Vector]:
        bias, weights = parameters[0], parameters[1:]
        scores = matrix.dot(weights) + bias
        # log(1 + e^s) - y s, written to stay finite for large |s|
        loss_terms = np.logaddexp(0.0, scores) - labels * scores
        residual = share * (_sigmoid(scores) - labels)
        gradient = np.empty_like(parameters)
        gradient[0] = residual.sum()
        gradient[1:] = matrix.transpose_dot(residual) + l2 * weights
        loss = float(share @ loss_terms) + 0.5 * l2 * float(weights @ weights)
        return loss, gradient

    parameters, report = minimize_lbfgs(loss_and_gradient, start, max_iterations=max_iterations)
    keep = parameters[1:] != 0.0
    return (
        TierWeights(
            bias=float(parameters[0]),
            indices=[int(index) for index in matrix.columns[keep]],
            weights=[float(weight) for weight in parameters[1:][keep]],
            examples=total,
            resolved=resolved,
        ),
        report,
    )


def _sigmoid(scores: Vector) -> Vector:
    result: Vector = 0.5 * (1.0 + np.tanh(0.5 * scores))  # exact identity, never overflows
    return result


class _SparseRows:
    """Rows of sparse features with their columns renumbered densely (only columns seen)."""

    __slots__ = ("column_of_entry", "columns", "row_of_entry", "rows", "values")

    def __init__(
        self,
        rows: int,
        row_of_entry: npt.NDArray[np.intp],
        column_of_entry: npt.NDArray[np.intp],
        values: Vector,
        columns: npt.NDArray[np.int64],
    ) -> None:
        self.rows = rows
        self.row_of_entry = row_of_entry
        self.column_of_entry = column_of_entry
        self.values = values
        self.columns = columns

    @classmethod
    def of(cls, features: Sequence[Features]) -> _SparseRows:
        lengths = np.fromiter((len(item.indices) for item in features), dtype=np.intp)
        indices = np.fromiter(
            (index for item in features for index in item.indices),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        values = np.fromiter(
            (value for item in features for value in item.values),
            dtype=np.float64,
            count=int(lengths.sum()),
        )
        columns, column_of_entry = np.unique(indices, return_inverse=True)
        row_of_entry = np.repeat(np.arange(len(features), dtype=np.intp), lengths)
        return cls(len(features), row_of_entry, column_of_entry, values, columns)

    def dot(self, weights: Vector) -> Vector:
        sums = np.bincount(
            self.row_of_entry,
            weights=self.values * weights[self.column_of_entry],
            minlength=self.rows,
        )
        return np.asarray(sums, dtype=np.float64)

    def transpose_dot(self, per_row: Vector) -> Vector:
        sums = np.bincount(
            self.column_of_entry,
            weights=self.values * per_row[self.row_of_entry],
            minlength=self.columns.size,
        )
        return np.asarray(sums, dtype=np.float64)


def minimize_lbfgs(
    loss_and_gradient: Callable[[Vector], tuple[float, Vector]],
    start: Vector,
    *,
    max_iterations: int = 300,
    memory: int = 10,
    tolerance: float = 1e-7,
) -> tuple[Vector, FitReport]:
    """Minimise a smooth convex function by L-BFGS with a backtracking (Armijo) line search."""
    point = start.astype(np.float64, copy=True)
    loss, gradient = loss_and_gradient(point)
    history: list[tuple[Vector, Vector, float]] = []
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        if float(np.max(np.abs(gradient))) < tolerance:
            break
        direction = _two_loop(gradient, history)
        slope = float(gradient @ direction)
        if slope >= 0:  # not a descent direction: forget the curvature seen so far
            history.clear()
            direction = -gradient
            slope = float(gradient @ direction)
        step = 1.0 if history else min(1.0, 1.0 / max(float(np.abs(gradient).sum()), 1e-12))
        while True:
            candidate = point + step * direction
            candidate_loss, candidate_gradient = loss_and_gradient(candidate)
            if candidate_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-12:
                return point, FitReport(iteration, loss, float(np.linalg.norm(gradient)))
        moved = candidate - point
        change = candidate_gradient - gradient
        curvature = float(moved @ change)
        if curvature > 1e-12:
            history.append((moved, change, 1.0 / curvature))
            if len(history) > memory:
                history.pop(0)
        improvement = loss - candidate_loss
        point, loss, gradient = candidate, candidate_loss, candidate_gradient
        if improvement <= 1e-12 * max(1.0, abs(loss)):
            break
    return point, FitReport(iteration, loss, float(np.linalg.norm(gradient)))


def _two_loop(gradient: Vector, history: list[tuple[Vector, Vector, float]]) -> Vector:
    direction = gradient.copy()
    alphas: list[float] = []
    for moved, change, rho in reversed(history):
        alpha = rho * float(moved @ direction)
        direction -= alpha * change
        alphas.append(alpha)
    if history:
        moved, change, _ = history[-1]
        direction *= float(moved @ change) / float(change @ change)
    for (moved, change, rho), alpha in zip(history, reversed(alphas), strict=True):
        beta = rho * float(change @ direction)
        direction += (alpha - beta) * moved
    result: Vector = -direction
    return result

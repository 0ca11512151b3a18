"""Uplift against a holdout control group: the net increase a treatment caused, with a Welch
confidence interval, as exact Decimals that pricing can bill. Pure; no float is ever billed.

For a metric measured per unit (net sales per customer, say), with a treated group of n_t units
and a control group of n_c units held out from the AI:

    point    = (mean_t - mean_c) x n_t           = total_t - total_c x n_t / n_c
    SE       = sqrt(s_t^2 / n_t + s_c^2 / n_c)   (s^2: the sample variance, divisor n - 1)
    df       = (s_t^2/n_t + s_c^2/n_c)^2 / ((s_t^2/n_t)^2/(n_t - 1) + (s_c^2/n_c)^2/(n_c - 1))
    margin   = t(df, (1 + confidence) / 2) x SE x n_t
    interval = [point - margin, point + margin]

How each figure is computed and rounded, so that a buyer can redo the arithmetic from what the
estimate shows:

- means, variances, SE and df are computed in Decimal with 60 significant digits;
- `point` is rounded half-even to `ESTIMATE_PLACES` (6) decimal places;
- `standard_error` is rounded up to `STANDARD_ERROR_PLACES` (12) places;
- the Student t quantile is the only float computation (error well below 1e-12, see
  `student_t_quantile`); it is rounded up to `T_CRITICAL_PLACES` (6) places;
- `difference_margin` = t_critical x standard_error exactly, and
  `margin` = difference_margin x n_t rounded up to 6 places;
- `lower` = point - margin and `upper` = point + margin, exactly.

Every rounding of the margin is upward, so the interval is never narrower than the exact one:
billing on its lower bound never bills more than the data supports.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterable
from decimal import Decimal
from statistics import NormalDist
from typing import Final

import msgspec

__all__ = [
    "ESTIMATE_PLACES",
    "MINIMUM_GROUP_UNITS",
    "STANDARD_ERROR_PLACES",
    "T_CRITICAL_PLACES",
    "GroupMeasurement",
    "Holdout",
    "UpliftEstimate",
    "estimate_uplift",
    "student_t_cdf",
    "student_t_quantile",
]

ESTIMATE_PLACES: Final = 6
STANDARD_ERROR_PLACES: Final = 12
T_CRITICAL_PLACES: Final = 6
# A sample variance needs two units; with fewer, the interval is undefined.
MINIMUM_GROUP_UNITS: Final = 2
# Confidence is stated in the contract with at most this many decimal places (0.95, 0.975).
CONFIDENCE_PLACES_MAX: Final = 6
# Bounds on a group's figures: far beyond any real holdout, small enough for a fixed context.
UNITS_MAX: Final = 10**12
TOTAL_EXCLUSIVE_MAX: Final = Decimal(10) ** 24

_CONTEXT: Final = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_EVEN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
# Sums of squares of figures with many digits: exact, or an error rather than a silent rounding.
_EXACT: Final = decimal.Context(
    prec=200,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Inexact],
)

# Rounding a figure to a few places: the context only needs room for its digits.
_EXACT_ROUNDING: Final = decimal.Context(
    prec=200, traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow]
)


def _places(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def _check_finite_decimal(value: object, field: str) -> Decimal:
    if isinstance(value, float) or not isinstance(value, Decimal):
        raise TypeError(f"{field} must be a Decimal, found {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise ValueError(f"{field} must be a finite Decimal, found {value}")
    if abs(value) >= TOTAL_EXCLUSIVE_MAX:
        raise ValueError(f"{field} must be below 10^24 in magnitude, found {value}")
    return value


class GroupMeasurement(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One group of a holdout: how many units (customers, accounts) it holds, and the sum and
    the sum of squares of the metric over them (what a SQL engine gives as count, sum(x),
    sum(x * x)). Exact Decimals, so the mean and the variance are exact too."""

    units: int
    total: Decimal
    total_of_squares: Decimal

    def __post_init__(self) -> None:
        if isinstance(self.units, bool) or not 0 <= self.units <= UNITS_MAX:
            raise ValueError(f"units must be an integer 0..10^12, found {self.units!r}")
        total = _check_finite_decimal(self.total, "total")
        squares = _check_finite_decimal(self.total_of_squares, "total_of_squares")
        # Cauchy-Schwarz: n x sum(x^2) >= sum(x)^2 for any real values; otherwise the figures
        # cannot come from one set of measurements, and the variance would be negative.
        with decimal.localcontext(_EXACT):
            consistent = self.units * squares >= total * total
        if not consistent or (self.units == 0 and not (total.is_zero() and squares.is_zero())):
            raise ValueError(
                f"total {total} and total_of_squares {squares} cannot come from {self.units} "
                "units (units x total_of_squares must be at least total^2)"
            )

    @classmethod
    def from_values(cls, values: Iterable[Decimal]) -> GroupMeasurement:
        """The measurement of a group from the metric of each of its units."""
        units = 0
        total = Decimal(0)
        squares = Decimal(0)
        with decimal.localcontext(_EXACT):
            for index, value in enumerate(values):
                _check_finite_decimal(value, f"values[{index}]")
                units += 1
                total += value
                squares += value * value
        return cls(units=units, total=total, total_of_squares=squares)


class Holdout(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The period's holdout: units the AI served (treated) and units held out from it (control),
    each with the outcome metric measured the same way."""

    treated: GroupMeasurement
    control: GroupMeasurement


class UpliftEstimate(msgspec.Struct, frozen=True, kw_only=True):
    """The estimated net increase over the treated group, and its confidence interval; how
    each figure is rounded is in the module's docstring."""

    confidence: Decimal
    treated_units: int
    control_units: int
    treated_mean: Decimal  # shown rounded half-even to ESTIMATE_PLACES; the point uses totals
    control_mean: Decimal
    point: Decimal
    standard_error: Decimal  # of the difference of means, per unit
    degrees_of_freedom: Decimal | None  # Welch-Satterthwaite; None when both variances are 0
    t_critical: Decimal
    difference_margin: Decimal  # half-width of the interval on the difference of means
    margin: Decimal  # half-width of the interval on the uplift
    lower: Decimal
    upper: Decimal


def estimate_uplift(holdout: Holdout, confidence: Decimal) -> UpliftEstimate:
    """The uplift of `holdout.treated` over `holdout.control` at `confidence` (0 < c < 1, at
    most 6 decimal places), by Welch's t interval on the difference of means.

    Raises ValueError when either group has fewer than `MINIMUM_GROUP_UNITS` units."""
    if isinstance(confidence, float) or not isinstance(confidence, Decimal):
        raise TypeError(
            f"confidence must be a Decimal, found {type(confidence).__name__} {confidence!r}"
        )
    if not confidence.is_finite() or not 0 < confidence < 1:
        raise ValueError(f"confidence must be strictly between 0 and 1, found {confidence}")
    exponent = confidence.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > CONFIDENCE_PLACES_MAX:
        raise ValueError(
            f"confidence must have at most {CONFIDENCE_PLACES_MAX} decimal places, "
            f"found {confidence}"
        )
    treated, control = holdout.treated, holdout.control
    for name, group in (("treated", treated), ("control", control)):
        if group.units < MINIMUM_GROUP_UNITS:
            raise ValueError(
                f"holdout.{name}.units must be at least {MINIMUM_GROUP_UNITS} to estimate a "
                f"variance, found {group.units}"
            )
    with decimal.localcontext(_CONTEXT):
        treated_mean = treated.total / treated.units
        control_mean = control.total / control.units
        point = treated.total - control.total * treated.units / control.units
        # Variance per unit of each group's mean: s^2 / n, with s^2 = (sum x^2 - n mean^2)/(n-1).
        treated_share = _variance(treated) / treated.units
        control_share = _variance(control) / control.units
        variance_of_difference = treated_share + control_share
        standard_error_exact = variance_of_difference.sqrt()
        if variance_of_difference.is_zero():
            degrees: Decimal | None = None
        else:
            degrees = variance_of_difference**2 / (
                treated_share**2 / (treated.units - 1) + control_share**2 / (control.units - 1)
            )
    standard_error = standard_error_exact.quantize(
        _places(STANDARD_ERROR_PLACES), rounding=decimal.ROUND_CEILING, context=_CONTEXT
    )
    if degrees is None:
        t_critical = Decimal(0)  # no spread: the interval is the point itself
    else:
        probability = (1 + float(confidence)) / 2
        t_float = student_t_quantile(probability, float(degrees))
        t_critical = Decimal(t_float).quantize(
            _places(T_CRITICAL_PLACES), rounding=decimal.ROUND_CEILING, context=_CONTEXT
        )
    with decimal.localcontext(_EXACT):
        difference_margin = t_critical * standard_error
        margin_exact = difference_margin * treated.units
    margin = margin_exact.quantize(
        _places(ESTIMATE_PLACES), rounding=decimal.ROUND_CEILING, context=_EXACT_ROUNDING
    )
    point_rounded = point.quantize(
        _places(ESTIMATE_PLACES), rounding=decimal.ROUND_HALF_EVEN, context=_EXACT_ROUNDING
    )
    with decimal.localcontext(_EXACT):
        lower = point_rounded - margin
        upper = point_rounded + margin
    return UpliftEstimate(
        confidence=confidence,
        treated_units=treated.units,
        control_units=control.units,
        treated_mean=_display(treated_mean),
        control_mean=_display(control_mean),
        point=_positive_zero(point_rounded),
        standard_error=standard_error,
        degrees_of_freedom=None if degrees is None else _display(degrees),
        t_critical=t_critical,
        difference_margin=difference_margin,
        margin=margin,
        lower=_positive_zero(lower),
        upper=_positive_zero(upper),
    )


def _variance(group: GroupMeasurement) -> Decimal:
    # Called inside the 60-digit context; never negative for a valid GroupMeasurement, but
    # the subtraction can leave a tiny negative rounding residue: clamp it.
    variance = (group.total_of_squares - group.total * group.total / group.units) / (
        group.units - 1
    )
    return max(variance, Decimal(0))


def _display(value: Decimal) -> Decimal:
    return _positive_zero(
        value.quantize(
            _places(ESTIMATE_PLACES), rounding=decimal.ROUND_HALF_EVEN, context=_EXACT_ROUNDING
        )
    )


def _positive_zero(value: Decimal) -> Decimal:
    return value.copy_abs() if value.is_zero() else value


# ---------------------------------------------------------------------------------------------
# Student's t distribution, in floats (the only float arithmetic behind a bill, and only for
# a critical value that is then rounded up).

_TINY: Final = 1e-300
_EPSILON: Final = 1e-15
_CONTINUED_FRACTION_STEPS_MAX: Final = 100_000


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    # The continued fraction of the incomplete beta function, evaluated by the modified Lentz
    # method (Numerical Recipes, 6.4); converges quickly for x < (a + 1) / (a + b + 2).
    sum_ab, a_plus, a_minus = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - sum_ab * x / a_plus
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    fraction = d
    for step in range(1, _CONTINUED_FRACTION_STEPS_MAX + 1):
        double = 2 * step
        for numerator in (
            step * (b - step) * x / ((a_minus + double) * (a + double)),
            -(a + step) * (sum_ab + step) * x / ((a + double) * (a_plus + double)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            change = d * c
            fraction *= change
        if abs(change - 1.0) < _EPSILON:
            return fraction
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def _log_gamma_ratio_half(a: float) -> float:
    # log(Gamma(a + 1/2) / Gamma(a)). For large a, lgamma(a + 1/2) - lgamma(a) subtracts two
    # numbers near a log a and loses digits (1e-8 of the result at a = 5e6); the asymptotic
    # series keeps them (error below 1e-14 from a = 20 on).
    if a < 20.0:
        return math.lgamma(a + 0.5) - math.lgamma(a)
    return (
        0.5 * math.log(a)
        - 1.0 / (8.0 * a)
        + 1.0 / (192.0 * a**3)
        - 1.0 / (640.0 * a**5)
        + 17.0 / (14336.0 * a**7)
    )


def _log_beta(a: float, b: float) -> float:
    # log B(a, b); Student's t only ever needs b = 1/2 (or a = 1/2, by symmetry).
    if b == 0.5:
        return math.lgamma(0.5) - _log_gamma_ratio_half(a)
    if a == 0.5:
        return math.lgamma(0.5) - _log_gamma_ratio_half(b)
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _regularized_incomplete_beta(a: float, b: float, x: float, one_minus_x: float) -> float:
    # I_x(a, b); the caller passes 1 - x computed without cancellation.
    if x <= 0.0:
        return 0.0
    if one_minus_x <= 0.0:
        return 1.0
    # Whichever of x and 1 - x is small was computed directly; the other one's log comes from
    # log1p of the small one, so that neither loses digits (x is near 1 for many degrees of
    # freedom, near 0 for a large t with few).
    log_x = math.log(x) if x < 0.5 else math.log1p(-one_minus_x)
    log_one_minus_x = math.log(one_minus_x) if one_minus_x < 0.5 else math.log1p(-x)
    log_front = a * log_x + b * log_one_minus_x - _log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, one_minus_x) / b


def _upper_tail(t: float, degrees: float) -> float:
    # P(T > t) for t >= 0: I_{df/(df+t^2)}(df/2, 1/2) / 2.
    square = t * t
    return 0.5 * _regularized_incomplete_beta(
        degrees / 2.0, 0.5, degrees / (degrees + square), square / (degrees + square)
    )


def _density(t: float, degrees: float) -> float:
    log_density = (
        _log_gamma_ratio_half(degrees / 2.0)
        - 0.5 * math.log(degrees * math.pi)
        - (degrees + 1.0) / 2.0 * math.log1p(t * t / degrees)
    )
    return math.exp(log_density)


_EXPANSION_DEGREES_MIN: Final = 10_000.0


def _cornish_fisher_quantile(probability: float, degrees: float) -> float:
    # t = z + g1/df + g2/df^2 + g3/df^3 + g4/df^4 (Abramowitz and Stegun 26.7.5).
    z = NormalDist().inv_cdf(probability)
    g1 = (z**3 + z) / 4.0
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96.0
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384.0
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160.0
    return z + g1 / degrees + g2 / degrees**2 + g3 / degrees**3 + g4 / degrees**4


def student_t_cdf(t: float, degrees: float) -> float:
    """P(T <= t) for Student's t with `degrees` (> 0, not necessarily whole) of freedom; within
    about 1e-14 of the exact value up to 1e5 degrees of freedom, 1e-11 up to 1e7."""
    if not degrees > 0 or math.isinf(degrees):
        raise ValueError(f"degrees of freedom must be positive and finite, found {degrees}")
    tail = _upper_tail(abs(t), degrees)
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(probability: float, degrees: float) -> float:
    """The t with P(T <= t) = `probability` (0.5 <= p < 1), for `degrees` > 0 of freedom.

    Below 10,000 degrees of freedom: Newton's method on the upper tail (an incomplete beta
    function), started from the normal quantile and kept inside a bracket that bisection
    shrinks whenever a Newton step would leave it; it stops when a step changes t by less than
    1e-13 of itself. From 10,000 on, where the incomplete beta loses digits, the Cornish-Fisher
    expansion in 1/df, whose first omitted term is below 1e-16 there. Both agree with published
    tables to all their digits, and with each other to 1e-13 around 10,000."""
    if not 0.5 <= probability < 1.0:
        raise ValueError(f"probability must be in [0.5, 1), found {probability}")
    if not degrees > 0 or math.isinf(degrees):
        raise ValueError(f"degrees of freedom must be positive and finite, found {degrees}")
    if probability == 0.5:
        return 0.0
    if degrees >= _EXPANSION_DEGREES_MIN:
        return _cornish_fisher_quantile(probability, degrees)
    target = 1.0 - probability
    low, high = 0.0, 1.0
    while _upper_tail(high, degrees) > target:
        low, high = high, high * 2.0
    t = min(max(NormalDist().inv_cdf(probability), low), high)
    for _ in range(200):
        excess = _upper_tail(t, degrees) - target  # positive: t is still too small
        if excess > 0:
            low = t
        else:
            high = t
        density = _density(t, degrees)
        step = excess / density if density > 0 else math.inf
        candidate = t + step
        if not low < candidate < high:
            candidate = (low + high) / 2.0
        if abs(candidate - t) <= 1e-13 * max(abs(t), 1.0):
            return candidate
        t = candidate
    return t

"""Uplift against a holdout: Welch's interval in exact Decimals, and the Student t quantile behind
it. What would break: a wrong critical value (too narrow an interval bills more than the data
supports), a variance with the wrong divisor, an interval that misses its own point estimate or
widens as evidence grows, or a float leaking into a billed figure."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_pricing import raises

from raas.core.uplift import (
    GroupMeasurement,
    Holdout,
    UpliftEstimate,
    estimate_uplift,
    student_t_cdf,
    student_t_quantile,
)


def groups(treated: list[int], control: list[int]) -> Holdout:
    return Holdout(
        treated=GroupMeasurement.from_values(Decimal(value) for value in treated),
        control=GroupMeasurement.from_values(Decimal(value) for value in control),
    )


def test_a_hand_checked_interval() -> None:
    """Treated 1000, 1200, 1400, 1600 (mean 1300, s^2 = 200000/3); control 100, 300, 500, 700
    (mean 400, s^2 = 200000/3). Point = (1300 - 400) x 4 = 3600. SE = sqrt(2 x (200000/3) / 4)
    = sqrt(100000/3) = 182.5741858350553711..., up to 182.574185835056. df = (2a)^2 / (2 a^2 /
    3) = 6 with a = 50000/3. t(0.975, 6) = 2.4469118511..., up to 2.446912. difference margin =
    2.446912 x 182.574185835056 = 446.742966210028547072 exactly; margin = x 4 =
    1786.971864840114188288, up to 1786.971865. Interval 1813.028135 .. 5386.971865."""
    estimate = estimate_uplift(
        groups([1000, 1200, 1400, 1600], [100, 300, 500, 700]), Decimal("0.95")
    )
    assert estimate == UpliftEstimate(
        confidence=Decimal("0.95"),
        treated_units=4,
        control_units=4,
        treated_mean=Decimal("1300.000000"),
        control_mean=Decimal("400.000000"),
        point=Decimal("3600.000000"),
        standard_error=Decimal("182.574185835056"),
        degrees_of_freedom=Decimal("6.000000"),
        t_critical=Decimal("2.446912"),
        difference_margin=Decimal("446.742966210028547072"),
        margin=Decimal("1786.971865"),
        lower=Decimal("1813.028135"),
        upper=Decimal("5386.971865"),
    )


def test_welch_figures_agree_with_an_independent_float_computation() -> None:
    """Unequal sizes and variances: SE and df from the statistics module, in floats."""
    treated = [12, 15, 9, 30, 22, 18, 11, 25, 14, 19, 27]
    control = [10, 8, 13, 9, 12, 11]
    estimate = estimate_uplift(groups(treated, control), Decimal("0.9"))
    treated_share = statistics.variance(treated) / len(treated)
    control_share = statistics.variance(control) / len(control)
    standard_error = math.sqrt(treated_share + control_share)
    degrees = (treated_share + control_share) ** 2 / (
        treated_share**2 / (len(treated) - 1) + control_share**2 / (len(control) - 1)
    )
    assert float(estimate.standard_error) == pytest.approx(standard_error, rel=1e-12)
    assert estimate.degrees_of_freedom is not None
    assert float(estimate.degrees_of_freedom) == pytest.approx(degrees, abs=1e-6)
    point = (statistics.mean(treated) - statistics.mean(control)) * len(treated)
    assert float(estimate.point) == pytest.approx(point, abs=1e-6)
    t = student_t_quantile(0.95, degrees)
    assert float(estimate.t_critical) == pytest.approx(t, abs=1e-6)
    assert estimate.t_critical >= Decimal(repr(t))  # rounded up, never down
    assert estimate.margin >= estimate.difference_margin * len(treated)


def test_no_spread_gives_an_interval_of_one_point() -> None:
    estimate = estimate_uplift(groups([5, 5, 5], [3, 3]), Decimal("0.95"))
    assert (estimate.point, estimate.lower, estimate.upper) == (
        Decimal("6.000000"),
        Decimal("6.000000"),
        Decimal("6.000000"),
    )
    assert estimate.degrees_of_freedom is None
    assert estimate.t_critical == 0


def test_every_figure_is_a_decimal() -> None:
    estimate = estimate_uplift(groups([1, 2, 3], [0, 1]), Decimal("0.95"))
    for name in estimate.__struct_fields__:
        value = getattr(estimate, name)
        assert not isinstance(value, float), name


def test_estimates_need_two_units_per_group_and_a_sound_confidence() -> None:
    with raises(
        ValueError, "holdout.control.units must be at least 2 to estimate a variance, found 1"
    ):
        estimate_uplift(groups([1, 2], [3]), Decimal("0.95"))
    with raises(ValueError, "confidence must be strictly between 0 and 1, found 1"):
        estimate_uplift(groups([1, 2], [3, 4]), Decimal(1))
    with raises(TypeError, "confidence must be a Decimal, found float 0.95"):
        estimate_uplift(groups([1, 2], [3, 4]), 0.95)  # type: ignore[arg-type]
    with raises(ValueError, "confidence must have at most 6 decimal places"):
        estimate_uplift(groups([1, 2], [3, 4]), Decimal("0.9500001"))


def test_group_measurements_must_be_consistent() -> None:
    """Sum 10 over 2 units needs a sum of squares of at least 10^2 / 2 = 50."""
    assert GroupMeasurement(units=2, total=Decimal(10), total_of_squares=Decimal(50))
    with raises(ValueError, "cannot come from 2 units"):
        GroupMeasurement(units=2, total=Decimal(10), total_of_squares=Decimal(49))
    with raises(ValueError, "cannot come from 0 units"):
        GroupMeasurement(units=0, total=Decimal(1), total_of_squares=Decimal(1))
    with raises(TypeError, "total must be a Decimal, found float"):
        GroupMeasurement(units=1, total=1.0, total_of_squares=Decimal(1))  # type: ignore[arg-type]
    assert GroupMeasurement.from_values([Decimal("1.5"), Decimal(-2)]) == GroupMeasurement(
        units=2, total=Decimal("-0.5"), total_of_squares=Decimal("6.25")
    )


# ---------------------------------------------------------------------------------------------
# Student's t


@pytest.mark.parametrize(
    ("probability", "degrees", "table"),
    [
        # Published two-sided critical values (6 decimals).
        (0.975, 1, 12.706205),
        (0.975, 2, 4.302653),
        (0.975, 5, 2.570582),
        (0.975, 6, 2.446912),
        (0.975, 10, 2.228139),
        (0.975, 30, 2.042272),
        (0.975, 120, 1.979930),
        (0.95, 10, 1.812461),
        (0.995, 5, 4.032143),
        (0.9995, 1, 636.619249),
        (0.975, 1_000_000, 1.959966),
    ],
)
def test_t_quantile_matches_published_tables(
    probability: float, degrees: float, table: float
) -> None:
    assert student_t_quantile(probability, degrees) == pytest.approx(table, abs=5e-7)


def test_t_quantile_closed_forms() -> None:
    """df = 1 (Cauchy): tan(pi (p - 1/2)); df = 2: (2p - 1) / sqrt(2 p (1 - p))."""
    for probability in (0.6, 0.8, 0.9, 0.95, 0.975, 0.99, 0.999):
        cauchy = math.tan(math.pi * (probability - 0.5))
        assert student_t_quantile(probability, 1) == pytest.approx(cauchy, rel=1e-12)
        two = (2 * probability - 1) / math.sqrt(2 * probability * (1 - probability))
        assert student_t_quantile(probability, 2) == pytest.approx(two, rel=1e-12)
    # df -> infinity: the normal quantile.
    normal = statistics.NormalDist().inv_cdf(0.975)
    assert student_t_quantile(0.975, 1e12) == pytest.approx(normal, rel=1e-11)


def test_t_quantile_is_continuous_where_its_method_changes() -> None:
    """Below 10,000 degrees of freedom: Newton on the incomplete beta; from 10,000: the
    Cornish-Fisher expansion. Both sides agree, and t falls as df grows (by about
    (z^3 + z) / (4 df^2) = 2.4e-8 per degree of freedom here)."""
    below = student_t_quantile(0.975, 9_999.999)
    at = student_t_quantile(0.975, 10_000.0)
    assert below - at == pytest.approx(2.37e-11, abs=1e-12)


@given(
    probability=st.floats(0.5, 0.9995),
    degrees=st.floats(0.5, 50_000.0),
)
def test_t_cdf_inverts_the_quantile(probability: float, degrees: float) -> None:
    t = student_t_quantile(probability, degrees)
    assert student_t_cdf(t, degrees) == pytest.approx(probability, abs=1e-9)
    assert student_t_cdf(-t, degrees) == pytest.approx(1 - probability, abs=1e-9)


@given(probability=st.floats(0.55, 0.9995), degrees=st.floats(0.5, 1e6))
def test_t_quantile_falls_as_degrees_of_freedom_grow(probability: float, degrees: float) -> None:
    assert (
        student_t_quantile(probability, degrees * 1.5)
        <= student_t_quantile(probability, degrees) + 1e-12
    )


def test_t_refuses_what_it_cannot_compute() -> None:
    with raises(ValueError, "probability must be in [0.5, 1), found 0.4"):
        student_t_quantile(0.4, 3)
    with raises(ValueError, "degrees of freedom must be positive and finite, found 0"):
        student_t_quantile(0.9, 0)
    assert student_t_quantile(0.5, 3) == 0


# ---------------------------------------------------------------------------------------------
# Properties

samples = st.lists(st.integers(-1000, 100_000), min_size=2, max_size=30)
confidences = st.sampled_from([Decimal("0.8"), Decimal("0.9"), Decimal("0.95"), Decimal("0.99")])


@given(treated=samples, control=samples, confidence=confidences)
def test_the_interval_contains_the_point_estimate(
    treated: list[int], control: list[int], confidence: Decimal
) -> None:
    estimate = estimate_uplift(groups(treated, control), confidence)
    assert estimate.lower <= estimate.point <= estimate.upper
    assert estimate.upper - estimate.point == estimate.point - estimate.lower == estimate.margin
    exact_point = Decimal(sum(treated)) - Decimal(sum(control)) * len(treated) / len(control)
    assert abs(estimate.point - exact_point) <= Decimal("0.0000005")


@given(
    treated=samples,
    control=samples,
    confidence=confidences,
    copies=st.integers(1, 6),
)
def test_the_interval_narrows_as_samples_grow(
    treated: list[int], control: list[int], confidence: Decimal, copies: int
) -> None:
    """The same measurements seen once more: the interval on the difference of means (per
    treated unit) cannot get wider; the point per unit stays where it was."""
    fewer = estimate_uplift(groups(treated * copies, control * copies), confidence)
    more = estimate_uplift(groups(treated * (copies + 1), control * (copies + 1)), confidence)
    assert more.difference_margin <= fewer.difference_margin
    assert more.standard_error <= fewer.standard_error
    assert abs(more.point / more.treated_units - fewer.point / fewer.treated_units) <= Decimal(
        "0.000001"
    )


@given(treated=samples, control=samples)
def test_a_higher_confidence_gives_a_wider_interval(treated: list[int], control: list[int]) -> None:
    holdout = groups(treated, control)
    assert (
        estimate_uplift(holdout, Decimal("0.9")).margin
        <= estimate_uplift(holdout, Decimal("0.99")).margin
    )

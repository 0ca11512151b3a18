"""Pricing models, each written in YAML and settled to a hand-checked amount. What would break: a
tier boundary off by one, a partial package billed wrong, accuracy compared after a rounding,
a share capped on the wrong side, an uplift billed on a float or below zero, a line rounded
twice, or JPY billed in cents and KWD in cents instead of fils."""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import yaml

from raas.core.money import Rounding
from raas.core.pricing import (
    AttributedAmount,
    CaseCosts,
    GroupMeasurement,
    Holdout,
    PricedLine,
    PricedPeriod,
    Pricing,
    Reviews,
    Usage,
    WeightedEpisode,
    price,
    price_period,
    pricing_from_data,
    unit_weights,
)


class _ExactLoader(yaml.SafeLoader):
    """SafeLoader reading 0.99 as Decimal("0.99"), as the contract loader does."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    return Decimal(loader.construct_scalar(node))


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)


def load_yaml(text: str) -> Any:
    """Plain data from YAML text, numbers exact."""
    return yaml.load(text, Loader=_ExactLoader)


def raises(error: type[Exception], text: str) -> AbstractContextManager[Any]:
    """pytest.raises for a message that contains `text` literally."""
    return pytest.raises(error, match=re.escape(text))


def pricing_yaml(text: str) -> Pricing:
    """The `Pricing` written under `pricing:` in `text`."""
    data = load_yaml(text)
    return pricing_from_data(data["pricing"])


def episodes(prefix: str, count: int) -> list[str]:
    """`count` episode ids that sort in the order they are made: p-00001, p-00002, ..."""
    return [f"{prefix}-{number:05d}" for number in range(1, count + 1)]


def counted(**kinds: int) -> Usage:
    """Usage with `count` unweighted outcomes of each kind."""
    return Usage(outcomes=unit_weights({kind: episodes(kind, n) for kind, n in kinds.items()}))


def amounts(lines: Iterable[PricedLine]) -> list[Decimal]:
    return [line.amount for line in lines]


def total(period: PricedPeriod) -> Decimal:
    assert period.total == sum(amounts(period.lines), Decimal(0))
    return period.total


def usd(pricing: Pricing, usage: Usage, rounding: Rounding = "half_even") -> PricedPeriod:
    return price_period(pricing, usage, "USD", rounding)


# ---------------------------------------------------------------------------------------------
# Flat per outcome

INTERCOM = """
pricing:
  charges:
    - model: per_outcome
      prices:
        confirmed_resolution: 0.99
        assumed_resolution: 0.79
        procedure_handoff: 1.50
        qualification: 2.00
"""


def test_flat_per_outcome() -> None:
    """3 confirmed x 0.99 = 2.97; 2 assumed x 0.79 = 1.58; 1 procedure handoff x 1.50 = 1.50;
    0 qualifications = 0.00. Total 6.05. One line per priced kind, in the contract's order."""
    period = usd(
        pricing_yaml(INTERCOM),
        counted(confirmed_resolution=3, assumed_resolution=2, procedure_handoff=1, unresolved=7),
    )
    assert [(line.kind, line.quantity, line.unit_price, line.amount) for line in period.lines] == [
        ("outcome", 3, Decimal("0.99"), Decimal("2.97")),
        ("outcome", 2, Decimal("0.79"), Decimal("1.58")),
        ("outcome", 1, Decimal("1.50"), Decimal("1.50")),
        ("outcome", 0, Decimal("2.00"), Decimal("0.00")),
    ]
    assert period.lines[0].episodes == tuple(episodes("confirmed_resolution", 3))
    assert period.lines[0].description == "Outcome: confirmed resolution"
    assert total(period) == Decimal("6.05") == period.subtotal


def test_difficulty_weights_multiply_the_quantity() -> None:
    """Qualifications weighing 1, 1.5 and 2 make a quantity of 4.5: 4.5 x 2.00 = 9.00. A
    confirmed resolution of weight 0.5: 0.5 x 0.99 = 0.495, half-even to 0.50 (half-up 0.50,
    down 0.49)."""
    usage = Usage(
        outcomes={
            "qualification": (
                WeightedEpisode(episode="q-3", weight=Decimal(2)),
                WeightedEpisode(episode="q-1"),
                WeightedEpisode(episode="q-2", weight=Decimal("1.5")),
            ),
            "confirmed_resolution": (WeightedEpisode(episode="c-1", weight=Decimal("0.5")),),
        }
    )
    period = usd(pricing_yaml(INTERCOM), usage)
    by_kind = {line.description: line for line in period.lines}
    qualification = by_kind["Outcome: qualification"]
    assert qualification.quantity == Decimal("4.5")
    assert qualification.amount == Decimal("9.00")
    assert qualification.episodes == ("q-1", "q-2", "q-3")
    assert qualification.basis == {"outcomes": Decimal(3), "weighted_quantity": Decimal("4.5")}
    assert by_kind["Outcome: confirmed resolution"].amount == Decimal("0.50")
    assert total(period) == Decimal("9.50")
    assert total(usd(pricing_yaml(INTERCOM), usage, "down")) == Decimal("9.49")


def test_zero_usage_prices_every_kind_at_zero() -> None:
    period = usd(pricing_yaml(INTERCOM), Usage())
    assert [line.quantity for line in period.lines] == [0, 0, 0, 0]
    assert total(period) == Decimal("0.00")


# ---------------------------------------------------------------------------------------------
# Graduated and volume tiers

TIERS = """
      tiers:
        - {up_to: 1000, price: 0.99}
        - {up_to: 10000, price: 0.89}
        - {price: 0.79}
"""
GRADUATED = (
    """
pricing:
  charges:
    - model: graduated
      outcomes: [ai_resolution]"""
    + TIERS
)
VOLUME = GRADUATED.replace("graduated", "volume")


def test_graduated_tiers_bill_each_unit_at_its_own_tier() -> None:
    """12,000 resolutions: 1,000 x 0.99 = 990.00, 9,000 x 0.89 = 8,010.00, 2,000 x 0.79 =
    1,580.00. Total 10,580.00. Unit 1,000 is the last of tier 1 and unit 10,001 the first of
    tier 3, so the episodes split 1,000 / 9,000 / 2,000 in id order."""
    period = usd(pricing_yaml(GRADUATED), counted(ai_resolution=12_000))
    assert [(line.quantity, line.unit_price, line.amount) for line in period.lines] == [
        (1000, Decimal("0.99"), Decimal("990.00")),
        (9000, Decimal("0.89"), Decimal("8010.00")),
        (2000, Decimal("0.79"), Decimal("1580.00")),
    ]
    assert total(period) == Decimal("10580.00")
    ids = episodes("ai_resolution", 12_000)
    assert [line.episodes for line in period.lines] == [
        tuple(ids[:1000]),
        tuple(ids[1000:10_000]),
        tuple(ids[10_000:]),
    ]
    assert period.lines[1].description == "ai resolution: graduated tier 2, units 1,001 to 10,000"
    assert period.lines[2].description == "ai resolution: graduated tier 3, units beyond 10,000"
    assert period.lines[1].basis == {
        "tier": Decimal(2),
        "above": Decimal(1000),
        "up_to": Decimal(10_000),
        "total_quantity": Decimal(12_000),
    }


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        # 0: the first tier's line, empty.
        (0, [(0, "0.00")]),
        # 1,000 = the first tier's inclusive upper bound: all at 0.99.
        (1000, [(1000, "990.00")]),
        # 1,001: 1,000 x 0.99 + 1 x 0.89.
        (1001, [(1000, "990.00"), (1, "0.89")]),
        # 10,000: 990.00 + 9,000 x 0.89 = 8,010.00.
        (10_000, [(1000, "990.00"), (9000, "8010.00")]),
        # 10,001: one unit in the open-ended tier.
        (10_001, [(1000, "990.00"), (9000, "8010.00"), (1, "0.79")]),
    ],
)
def test_graduated_boundaries(units: int, expected: list[tuple[int, str]]) -> None:
    period = usd(pricing_yaml(GRADUATED), counted(ai_resolution=units))
    assert [(line.quantity, line.amount) for line in period.lines] == [
        (quantity, Decimal(amount)) for quantity, amount in expected
    ]


def test_graduated_with_weights_splits_an_episode_across_a_bound() -> None:
    """Tiers up_to 2 at 1.00 then 0.50; weights a=1.5, b=1.5: 3 units, (0, 1.5] is a, (1.5, 3]
    is b. Tier 1 = 2 x 1.00 = 2.00 (a and part of b), tier 2 = 1 x 0.50 = 0.50 (b)."""
    pricing = pricing_yaml(
        """
pricing:
  charges:
    - model: graduated
      outcomes: [ai_resolution]
      tiers: [{up_to: 2, price: 1.00}, {price: 0.50}]
"""
    )
    usage = Usage(
        outcomes={
            "ai_resolution": (
                WeightedEpisode(episode="b", weight=Decimal("1.5")),
                WeightedEpisode(episode="a", weight=Decimal("1.5")),
            )
        }
    )
    period = usd(pricing, usage)
    assert [(line.quantity, line.amount, line.episodes) for line in period.lines] == [
        (Decimal(2), Decimal("2.00"), ("a", "b")),
        (Decimal(1), Decimal("0.50"), ("b",)),
    ]


def test_graduated_counts_several_kinds_together() -> None:
    """Tier 1 up_to 2 at 1.00, then 0.50: 2 confirmed + 1 assumed = 3 units: 2.00 + 0.50."""
    pricing = pricing_yaml(
        """
pricing:
  charges:
    - model: graduated
      outcomes: [confirmed_resolution, assumed_resolution]
      tiers: [{up_to: 2, price: 1.00}, {price: 0.50}]
"""
    )
    period = usd(pricing, counted(confirmed_resolution=2, assumed_resolution=1))
    assert total(period) == Decimal("2.50")
    assert period.lines[0].description.startswith("confirmed resolution, assumed resolution:")


@pytest.mark.parametrize(
    ("units", "unit_price", "amount"),
    [
        (0, "0.99", "0.00"),
        (999, "0.99", "989.01"),
        # Exactly at the bound: still the first tier (inclusive upper bound).
        (1000, "0.99", "990.00"),
        # One past it: every unit at the second tier's price, 1,001 x 0.89.
        (1001, "0.89", "890.89"),
        (10_000, "0.89", "8900.00"),
        (10_001, "0.79", "7900.79"),
    ],
)
def test_volume_tiers_bill_every_unit_at_the_reached_tier(
    units: int, unit_price: str, amount: str
) -> None:
    (line,) = price(pricing_yaml(VOLUME), counted(ai_resolution=units), "USD", "half_even")
    assert line.kind == "tier"
    assert (line.quantity, line.unit_price, line.amount) == (
        units,
        Decimal(unit_price),
        Decimal(amount),
    )
    assert len(line.episodes) == units


# ---------------------------------------------------------------------------------------------
# Packages

PACKAGE = """
pricing:
  charges:
    - model: package
      outcomes: [ai_resolution]
      size: 100
      price: 80.00
"""
PACKAGE_OVERAGE = PACKAGE + "      partial: overage\n      overage_price: 0.95\n"


def test_package_rounds_a_partial_block_up() -> None:
    """250 resolutions in blocks of 100 at 80.00: ceil(250 / 100) = 3 blocks = 240.00."""
    (line,) = price(pricing_yaml(PACKAGE), counted(ai_resolution=250), "USD", "half_even")
    assert (line.kind, line.quantity, line.unit_price, line.amount) == (
        "package",
        3,
        Decimal("80.00"),
        Decimal("240.00"),
    )
    assert line.basis == {"units": Decimal(250), "size": Decimal(100), "blocks": Decimal(3)}
    assert len(line.episodes) == 250


def test_package_with_overage_bills_the_partial_block_per_unit() -> None:
    """250 resolutions: 2 full blocks = 160.00, 50 beyond at 0.95 = 47.50. Total 207.50; the
    first 200 episodes (by id) are behind the blocks, the last 50 behind the overage."""
    period = usd(pricing_yaml(PACKAGE_OVERAGE), counted(ai_resolution=250))
    blocks, overage = period.lines
    assert (blocks.kind, blocks.quantity, blocks.amount) == ("package", 2, Decimal("160.00"))
    assert (overage.kind, overage.quantity, overage.amount) == (
        "package_overage",
        50,
        Decimal("47.50"),
    )
    ids = episodes("ai_resolution", 250)
    assert blocks.episodes == tuple(ids[:200])
    assert overage.episodes == tuple(ids[200:])
    assert total(period) == Decimal("207.50")


@pytest.mark.parametrize(
    ("units", "round_up", "overage"),
    [
        (0, ["0.00"], ["0.00"]),
        (1, ["80.00"], ["0.00", "0.95"]),
        # Exactly two blocks: no partial block either way.
        (200, ["160.00"], ["160.00"]),
        (201, ["240.00"], ["160.00", "0.95"]),
    ],
)
def test_package_boundaries(units: int, round_up: list[str], overage: list[str]) -> None:
    usage = counted(ai_resolution=units)
    assert amounts(price(pricing_yaml(PACKAGE), usage, "USD", "half_even")) == [
        Decimal(amount) for amount in round_up
    ]
    assert amounts(price(pricing_yaml(PACKAGE_OVERAGE), usage, "USD", "half_even")) == [
        Decimal(amount) for amount in overage
    ]


# ---------------------------------------------------------------------------------------------
# Accuracy tiers

ACCURACY = """
pricing:
  charges:
    - model: accuracy_tiers
      outcomes: [case_audited]
      tiers:
        - {accuracy_at_least: 0.98, price: 4.00}
        - {accuracy_at_least: 0.95, price: 3.50}
        - {accuracy_at_least: 0, price: 2.00}
      minimum_sample: 50
      small_sample_price: 3.50
"""


def audited(reviewed: int, passed: int, cases: int = 10) -> Usage:
    return Usage(
        outcomes=unit_weights({"case_audited": episodes("case", cases)}),
        reviews=Reviews(reviewed=reviewed, passed=passed),
    )


@pytest.mark.parametrize(
    ("reviewed", "passed", "unit_price", "amount"),
    [
        # 196 / 200 = 0.98 exactly: the top tier (at least 98%), 10 x 4.00.
        (200, 196, "4.00", "40.00"),
        # 195 / 200 = 0.975: at least 95%, 10 x 3.50.
        (200, 195, "3.50", "35.00"),
        # 190 / 200 = 0.95 exactly: at least 95%.
        (200, 190, "3.50", "35.00"),
        # 189 / 200 = 0.945: the bottom tier, 10 x 2.00.
        (200, 189, "2.00", "20.00"),
        (200, 0, "2.00", "20.00"),
        # 49 reviews < minimum sample 50: the small-sample price, whatever the accuracy.
        (49, 49, "3.50", "35.00"),
        (49, 0, "3.50", "35.00"),
        # No reviews at all: the small-sample price.
        (0, 0, "3.50", "35.00"),
        # Exactly the minimum sample: the accuracy counts, 49 / 50 = 0.98.
        (50, 49, "4.00", "40.00"),
        (50, 47, "2.00", "20.00"),
    ],
)
def test_accuracy_tiers(reviewed: int, passed: int, unit_price: str, amount: str) -> None:
    (line,) = price(pricing_yaml(ACCURACY), audited(reviewed, passed), "USD", "half_even")
    assert line.kind == "accuracy_tier"
    assert (line.quantity, line.unit_price, line.amount) == (
        10,
        Decimal(unit_price),
        Decimal(amount),
    )
    assert line.basis["reviewed"] == reviewed
    assert line.basis["passed"] == passed


def test_accuracy_is_compared_exactly_not_after_rounding() -> None:
    """979,999 / 1,000,000 = 0.979999, shown as such (rounded down): below 98%, so 3.50. And
    2 / 3 = 0.666666... is shown as 0.666666, never rounded up into a tier it did not reach."""
    (line,) = price(pricing_yaml(ACCURACY), audited(1_000_000, 979_999), "USD", "half_even")
    assert line.unit_price == Decimal("3.50")
    assert line.basis["accuracy"] == Decimal("0.979999")
    assert line.basis["accuracy_at_least"] == Decimal("0.95")
    (line,) = price(pricing_yaml(ACCURACY), audited(300, 200), "USD", "half_even")
    assert line.basis["accuracy"] == Decimal("0.666666")


# ---------------------------------------------------------------------------------------------
# Shares: business amounts, uplift, savings

BUSINESS = """
pricing:
  charges:
    - model: business_share
      share: 0.08
      cap_per_order: 2.00
"""


def orders(*values: tuple[str, str]) -> Usage:
    return Usage(
        attributed=tuple(
            AttributedAmount(order=order, amount=Decimal(value), episodes=(f"e-{order}",))
            for order, value in values
        )
    )


def test_business_share_with_a_cap_per_order() -> None:
    """8% of each order, at most 2.00 an order. o1 20.00 -> 1.60; o2 30.00 -> 2.40, capped;
    o3 25.00 -> exactly 2.00, not above the cap; o4 12.34 -> 0.9872. Under the cap: 20.00 +
    25.00 + 12.34 = 57.34 x 0.08 = 4.5872 -> 4.59. Capped: 1 order x 2.00. Total 6.59."""
    usage = orders(("o1", "20.00"), ("o2", "30.00"), ("o3", "25.00"), ("o4", "12.34"))
    period = usd(pricing_yaml(BUSINESS), usage)
    under, capped = period.lines
    assert (under.kind, under.quantity, under.unit_price, under.amount) == (
        "business_share",
        Decimal("57.34"),
        Decimal("0.08"),
        Decimal("4.59"),
    )
    assert under.episodes == ("e-o1", "e-o3", "e-o4")
    assert (capped.quantity, capped.unit_price, capped.amount) == (
        1,
        Decimal("2.00"),
        Decimal("2.00"),
    )
    assert capped.episodes == ("e-o2",)
    assert capped.basis["attributed_value"] == Decimal("30.00")
    assert total(period) == Decimal("6.59")


def test_business_share_without_a_cap() -> None:
    """87.34 x 0.08 = 6.9872 -> 6.99, in one line."""
    pricing = pricing_yaml(BUSINESS.replace("      cap_per_order: 2.00\n", ""))
    usage = orders(("o1", "20.00"), ("o2", "30.00"), ("o3", "25.00"), ("o4", "12.34"))
    (line,) = price(pricing, usage, "USD", "half_even")
    assert (line.quantity, line.amount) == (Decimal("87.34"), Decimal("6.99"))
    assert amounts(price(pricing, Usage(), "USD", "half_even")) == [Decimal("0.00")]


UPLIFT = """
pricing:
  charges:
    - model: uplift_share
      share: 0.001
      bill_on: lower_bound
"""


def holdout(treated: list[int], control: list[int]) -> Usage:
    return Usage(
        holdout=Holdout(
            treated=GroupMeasurement.from_values(Decimal(value) for value in treated),
            control=GroupMeasurement.from_values(Decimal(value) for value in control),
        )
    )


def test_uplift_share_on_the_lower_bound_and_on_the_point() -> None:
    """Net sales per customer, treated 1000, 1200, 1400, 1600 (mean 1300), control 100, 300,
    500, 700 (mean 400). Point = (1300 - 400) x 4 = 3600. Both variances 200000/3, so SE =
    sqrt(2 x 200000/3 / 4) = 182.574185835055..., up to 182.574185835056; df = 6; t(0.975, 6) =
    2.446911851..., up to 2.446912. Margin = 2.446912 x 182.574185835056 x 4 = 1786.97186484...,
    up to 1786.971865. Lower = 3600 - 1786.971865 = 1813.028135.
    Lower bound: 0.1% x 1813.028135 = 1.813028135 -> 1.81. Point: 0.1% x 3600 = 3.60."""
    usage = holdout([1000, 1200, 1400, 1600], [100, 300, 500, 700])
    (line,) = price(pricing_yaml(UPLIFT), usage, "USD", "half_even")
    assert (line.kind, line.quantity, line.unit_price, line.amount) == (
        "uplift_share",
        Decimal("1813.028135"),
        Decimal("0.001"),
        Decimal("1.81"),
    )
    assert line.basis["point_estimate"] == Decimal("3600.000000")
    assert line.basis["standard_error"] == Decimal("182.574185835056")
    assert line.basis["t_critical"] == Decimal("2.446912")
    assert line.basis["degrees_of_freedom"] == Decimal("6.000000")
    assert line.basis["margin"] == Decimal("1786.971865")
    assert line.basis["lower_bound"] == Decimal("1813.028135")
    assert line.basis["treated_total"] == Decimal(5200)
    assert line.episodes == ()
    on_point = pricing_yaml(UPLIFT.replace("lower_bound", "point_estimate"))
    (line,) = price(on_point, usage, "USD", "half_even")
    assert (line.quantity, line.amount) == (Decimal("3600.000000"), Decimal("3.60"))


def test_a_negative_uplift_bills_zero() -> None:
    """Control above treated: point = (400 - 1300) x 4 = -3600 and the lower bound lower
    still; both bill 0 x 0.001 = 0.00."""
    usage = holdout([100, 300, 500, 700], [1000, 1200, 1400, 1600])
    for bill_on in ("lower_bound", "point_estimate"):
        (line,) = price(
            pricing_yaml(UPLIFT.replace("lower_bound", bill_on)), usage, "USD", "half_even"
        )
        assert line.quantity == 0
        assert line.amount == Decimal("0.00")
        assert line.basis["point_estimate"] == Decimal("-3600.000000")


def test_an_uplift_whose_interval_straddles_zero_bills_zero_on_its_lower_bound() -> None:
    """Treated 1, 9 (mean 5), control 4, 4 (mean 4): point = 1 x 2 = 2, but SE = sqrt(32/2) =
    4 and t(0.975, 1) = 12.706205 put the lower bound far below zero: 0.00. On the point:
    0.1% x 2 = 0.002 -> 0.00 as well, so the share is 100%: 2.00."""
    usage = holdout([1, 9], [4, 4])
    (line,) = price(pricing_yaml(UPLIFT), usage, "USD", "half_even")
    assert line.amount == Decimal("0.00")
    assert line.basis["lower_bound"] < 0
    whole = pricing_yaml(UPLIFT.replace("lower_bound", "point_estimate").replace("0.001", "1"))
    (line,) = price(whole, usage, "USD", "half_even")
    assert line.amount == Decimal("2.00")


def test_an_uplift_without_enough_units_bills_zero_and_says_why() -> None:
    (line,) = price(pricing_yaml(UPLIFT), holdout([1000, 2000], [5]), "USD", "half_even")
    assert line.amount == Decimal("0.00")
    assert "fewer than 2 units" in line.description
    assert line.basis == {"treated_units": Decimal(2), "control_units": Decimal(1)}


SAVINGS = """
pricing:
  charges:
    - model: savings_share
      baseline_cost_per_case: 4.20
      share: 0.30
"""


@pytest.mark.parametrize(
    ("actual", "savings", "amount"),
    [
        # (4.20 - 3.15) x 1,000 = 1,050.00 saved; 30% = 315.00.
        ("3.15", "1050.00", "315.00"),
        # (4.20 - 4.1999) x 1,000 = 0.1000; 30% = 0.03.
        ("4.1999", "0.1000", "0.03"),
        # At the baseline, and above it: nothing saved, nothing billed (never negative).
        ("4.20", "0", "0.00"),
        ("4.50", "0", "0.00"),
    ],
)
def test_savings_share(actual: str, savings: str, amount: str) -> None:
    usage = Usage(case_costs=CaseCosts(cases=1000, actual_cost_per_case=Decimal(actual)))
    (line,) = price(pricing_yaml(SAVINGS), usage, "USD", "half_even")
    assert line.kind == "savings_share"
    assert line.quantity == Decimal(savings)
    assert line.amount == Decimal(amount)
    assert line.basis["cases"] == 1000


# ---------------------------------------------------------------------------------------------
# Currencies and rounding rules


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [
        # 3 x 99.5 = 298.5 yen, to whole yen.
        ("half_even", "298"),
        ("half_up", "299"),
        ("down", "298"),
    ],
)
def test_jpy_has_no_minor_units(rounding: Rounding, expected: str) -> None:
    pricing = pricing_yaml(
        "pricing:\n  charges:\n    - {model: per_outcome, prices: {ai_resolution: 99.5}}\n"
    )
    period = price_period(pricing, counted(ai_resolution=3), "JPY", rounding)
    assert period.total == Decimal(expected)
    assert period.total.as_tuple().exponent == 0


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [
        # 3 x 0.3335 = 1.0005 dinars, to fils (3 places).
        ("half_even", "1.000"),
        ("half_up", "1.001"),
        ("down", "1.000"),
    ],
)
def test_kwd_has_three_minor_units(rounding: Rounding, expected: str) -> None:
    pricing = pricing_yaml(
        "pricing:\n  charges:\n    - {model: per_outcome, prices: {ai_resolution: 0.3335}}\n"
    )
    period = price_period(pricing, counted(ai_resolution=3), "KWD", rounding)
    assert str(period.total) == expected


def test_each_line_is_rounded_once_not_the_total() -> None:
    """Two kinds at 0.005 each, one outcome each: each line 0.005 -> half-even 0.00, so the total
    is 0.00; rounding the sum (0.01) would have billed a cent no line shows."""
    pricing = pricing_yaml(
        "pricing:\n  charges:\n    - {model: per_outcome, prices: {a: 0.005, b: 0.005}}\n"
    )
    period = usd(pricing, counted(a=1, b=1))
    assert amounts(period.lines) == [Decimal("0.00"), Decimal("0.00")]
    assert period.total == Decimal("0.00")


def test_unknown_currency_or_rounding_is_refused() -> None:
    pricing = pricing_yaml(INTERCOM)
    with raises(ValueError, "unknown currency 'XYZ'"):
        price(pricing, Usage(), "XYZ", "half_even")
    with raises(ValueError, "rounding must be one of"):
        price(pricing, Usage(), "USD", "ceiling")  # type: ignore[arg-type]


def test_lines_round_trip_through_json() -> None:
    """Counts stay JSON numbers and Decimals stay exact strings, so a line decodes to itself."""
    usage = Usage(
        outcomes={
            "qualification": (WeightedEpisode(episode="q", weight=Decimal("1.5")),),
            "confirmed_resolution": (WeightedEpisode(episode="c"),),
        }
    )
    for line in price(pricing_yaml(INTERCOM), usage, "USD", "half_even"):
        encoded = msgspec.json.encode(line)
        assert msgspec.json.decode(encoded, type=PricedLine) == line
    assert b'"quantity":1,' in msgspec.json.encode(
        price(pricing_yaml(INTERCOM), usage, "USD", "half_even")[0]
    )

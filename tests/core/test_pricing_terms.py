"""The pricing section of a contract and the period's usage, as typed data: every model reads from
YAML into its class, and every bad figure is refused with the field and the value. What would
break: a float slipping into a price, a typo silently ignored, tiers out of order, the same
outcome priced twice, a float weight, or an episode counted under two kinds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import pytest
from test_pricing import load_yaml, pricing_yaml, raises

from raas.core.pricing import (
    AccuracyTier,
    AccuracyTiers,
    AttributedAmount,
    BusinessShare,
    Cap,
    CaseCosts,
    Graduated,
    GroupMeasurement,
    Minimum,
    Package,
    PerOutcome,
    Prepaid,
    Pricing,
    Reviews,
    SavingsShare,
    SlaMeasurements,
    SlaTarget,
    Tier,
    UpliftShare,
    Usage,
    Volume,
    WeightedEpisode,
    pricing_from_data,
    unit_weights,
)

EVERY_MODEL = """
pricing:
  charges:
    - model: per_outcome
      prices:
        confirmed_resolution: 0.99
        assumed_resolution: 0.79
    - model: graduated
      outcomes: [procedure_handoff]
      tiers:
        - {up_to: 1000, price: 1.50}
        - {price: 1.20}
    - model: volume
      outcomes: [qualification]
      tiers:
        - {up_to: 100, price: 2.00}
        - {price: 1.80}
    - model: package
      outcomes: [email_answered]
      size: 1000
      price: 850.00
      partial: overage
      overage_price: 0.95
    - model: accuracy_tiers
      outcomes: [case_audited]
      tiers:
        - {accuracy_at_least: 0.98, price: 4.00}
        - {accuracy_at_least: 0.95, price: 3.50}
        - {accuracy_at_least: 0, price: 2.00}
      minimum_sample: 50
      small_sample_price: 3.50
    - model: business_share
      share: 0.08
      cap_per_order: 2.00
    - model: uplift_share
      share: 0.0005
      bill_on: lower_bound
      confidence: 0.95
    - model: savings_share
      baseline_cost_per_case: 4.20
      share: 0.30
  minimum: {amount: 60000.00, periods: 12}
  cap: {amount: 20000.00}
  sla:
    - {metric: resolution_rate, at_least: 0.70, credit: 0.05}
    - {metric: p95_latency_ms, at_most: 2000, credit: 0.03}
    - {metric: csat, at_least: 4.2, credit: 0.05}
  prepaid: {credit: 50000.00}
"""


def test_every_model_reads_from_yaml() -> None:
    pricing = pricing_yaml(EVERY_MODEL)
    assert pricing == Pricing(
        charges=(
            PerOutcome(
                prices={
                    "confirmed_resolution": Decimal("0.99"),
                    "assumed_resolution": Decimal("0.79"),
                }
            ),
            Graduated(
                outcomes=("procedure_handoff",),
                tiers=(Tier(up_to=1000, price=Decimal("1.50")), Tier(price=Decimal("1.20"))),
            ),
            Volume(
                outcomes=("qualification",),
                tiers=(Tier(up_to=100, price=Decimal("2.00")), Tier(price=Decimal("1.80"))),
            ),
            Package(
                outcomes=("email_answered",),
                size=1000,
                price=Decimal("850.00"),
                partial="overage",
                overage_price=Decimal("0.95"),
            ),
            AccuracyTiers(
                outcomes=("case_audited",),
                tiers=(
                    AccuracyTier(accuracy_at_least=Decimal("0.98"), price=Decimal("4.00")),
                    AccuracyTier(accuracy_at_least=Decimal("0.95"), price=Decimal("3.50")),
                    AccuracyTier(accuracy_at_least=Decimal(0), price=Decimal("2.00")),
                ),
                minimum_sample=50,
                small_sample_price=Decimal("3.50"),
            ),
            BusinessShare(share=Decimal("0.08"), cap_per_order=Decimal("2.00")),
            UpliftShare(share=Decimal("0.0005"), bill_on="lower_bound", confidence=Decimal("0.95")),
            SavingsShare(baseline_cost_per_case=Decimal("4.20"), share=Decimal("0.30")),
        ),
        minimum=Minimum(amount=Decimal("60000.00"), periods=12),
        cap=Cap(amount=Decimal("20000.00")),
        sla=(
            SlaTarget(metric="resolution_rate", at_least=Decimal("0.70"), credit=Decimal("0.05")),
            SlaTarget(metric="p95_latency_ms", at_most=Decimal(2000), credit=Decimal("0.03")),
            SlaTarget(metric="csat", at_least=Decimal("4.2"), credit=Decimal("0.05")),
        ),
        prepaid=Prepaid(credit=Decimal("50000.00")),
    )
    assert pricing.priced_outcomes() == (
        "confirmed_resolution",
        "assumed_resolution",
        "procedure_handoff",
        "qualification",
        "email_answered",
        "case_audited",
    )


def test_defaults() -> None:
    """round_up packages, 95% confidence, a per-period minimum, no SLA, no prepaid credits."""
    pricing = pricing_yaml(
        """
pricing:
  charges:
    - {model: package, outcomes: [a], size: 10, price: 5}
    - {model: uplift_share, share: 0.001, bill_on: point_estimate}
  minimum: {amount: 100}
"""
    )
    package, uplift = pricing.charges
    assert isinstance(package, Package) and package.partial == "round_up"
    assert isinstance(uplift, UpliftShare) and uplift.confidence == Decimal("0.95")
    assert pricing.minimum == Minimum(amount=Decimal(100), periods=1)
    assert (pricing.sla, pricing.prepaid, pricing.cap) == ((), None, None)


def refused(text: str) -> str:
    """The message of the ValueError that reading `text`'s pricing raises."""
    with pytest.raises(ValueError) as caught:
        pricing_from_data(load_yaml(text)["pricing"])
    return str(caught.value)


def charge(yaml_charge: str) -> str:
    return refused(f"pricing:\n  charges:\n    - {yaml_charge}\n")


@pytest.mark.parametrize(
    ("yaml_charge", "message"),
    [
        # Tiers: ordered, only the last open-ended, bounds whole and positive.
        (
            "{model: graduated, outcomes: [a], tiers: [{up_to: 1000, price: 1}, "
            "{up_to: 1000, price: 0.9}, {price: 0.8}]}",
            "tiers[1].up_to must be greater than the tier before (1000), found 1000 "
            "- at `$.charges[0]`",
        ),
        (
            "{model: volume, outcomes: [a], tiers: [{price: 1}, {price: 0.9}]}",
            "tiers[0].up_to is required: only the last tier may be open-ended",
        ),
        (
            "{model: volume, outcomes: [a], tiers: [{up_to: 10, price: 1}]}",
            "tiers[0].up_to must be left out: the last tier takes every unit beyond the one "
            "before, found 10",
        ),
        (
            "{model: graduated, outcomes: [a], tiers: [{up_to: 0, price: 1}, {price: 1}]}",
            "up_to must be an integer 1..10^12, found 0 - at `$.charges[0].tiers[0]`",
        ),
        (
            "{model: graduated, outcomes: [a], tiers: [{up_to: 10.5, price: 1}, {price: 1}]}",
            "Expected `int | null`, got `decimal` - at `$.charges[0].tiers[0].up_to`",
        ),
        ("{model: graduated, outcomes: [a], tiers: []}", "tiers must hold at least one tier"),
        # Prices: exact, non-negative, bounded.
        (
            "{model: per_outcome, prices: {a: -0.99}}",
            "prices.a must not be negative, found -0.99",
        ),
        (
            "{model: per_outcome, prices: {a: 0.0000000000001}}",
            "prices.a must have at most 12 decimal places, found 1E-13",
        ),
        ("{model: per_outcome, prices: {}}", "prices must price at least one outcome kind"),
        (
            "{model: per_outcome, prices: {Confirmed: 1}}",
            "prices must be a name like confirmed_resolution ([a-z][a-z0-9_]*), found 'Confirmed'",
        ),
        # Packages: a positive size; overage_price exactly when partial is overage.
        (
            "{model: package, outcomes: [a], size: 0, price: 5}",
            "size must be an integer 1..10^12, found 0",
        ),
        (
            "{model: package, outcomes: [a], size: 10, price: 5, partial: overage}",
            "overage_price is required when partial is 'overage'",
        ),
        (
            "{model: package, outcomes: [a], size: 10, price: 5, overage_price: 1}",
            "overage_price must be left out when partial is 'round_up'",
        ),
        (
            "{model: package, outcomes: [a], size: 10, price: 5, partial: nearest}",
            "Invalid enum value 'nearest' - at `$.charges[0].partial`",
        ),
        # Accuracy tiers: thresholds descending to 0, fractions, a minimum sample of 1 or more.
        (
            "{model: accuracy_tiers, outcomes: [a], minimum_sample: 5, small_sample_price: 1, "
            "tiers: [{accuracy_at_least: 0.95, price: 3}, {accuracy_at_least: 0.98, price: 4}, "
            "{accuracy_at_least: 0, price: 2}]}",
            "tiers[1].accuracy_at_least must be below the tier before (0.95), found 0.98",
        ),
        (
            "{model: accuracy_tiers, outcomes: [a], minimum_sample: 5, small_sample_price: 1, "
            "tiers: [{accuracy_at_least: 0.98, price: 4}, {accuracy_at_least: 0.5, price: 2}]}",
            "tiers[1].accuracy_at_least must be 0, so that every accuracy has a price, found 0.5",
        ),
        (
            "{model: accuracy_tiers, outcomes: [a], minimum_sample: 5, small_sample_price: 1, "
            "tiers: [{accuracy_at_least: 98, price: 4}, {accuracy_at_least: 0, price: 2}]}",
            "accuracy_at_least must be between 0 and 1 (1 is 100%), found 98",
        ),
        (
            "{model: accuracy_tiers, outcomes: [a], minimum_sample: 0, small_sample_price: 1, "
            "tiers: [{accuracy_at_least: 0, price: 2}]}",
            "minimum_sample must be an integer 1..10^12, found 0",
        ),
        # Shares are fractions of 1.
        ("{model: business_share, share: 8}", "share must be between 0 and 1 (1 is 100%), found 8"),
        (
            "{model: business_share, share: 1.5}",
            "share must be between 0 and 1 (1 is 100%), found 1.5",
        ),
        (
            "{model: uplift_share, share: 0.001, bill_on: lower_bound, confidence: 1}",
            "confidence must be strictly between 0 and 1, found 1",
        ),
        (
            "{model: uplift_share, share: 0.001, bill_on: upper_bound}",
            "Invalid enum value 'upper_bound' - at `$.charges[0].bill_on`",
        ),
        (
            "{model: uplift_share, share: 0.001}",
            "Object missing required field `bill_on` - at `$.charges[0]`",
        ),
        (
            "{model: savings_share, baseline_cost_per_case: 4.20, share: -0.3}",
            "share must not be negative, found -0.3",
        ),
        # Names, typos, unknown models.
        (
            "{model: business_share, share: 0.08, cap_per_ordr: 2}",
            "Object contains unknown field `cap_per_ordr` - at `$.charges[0]`",
        ),
        ("{model: flat, prices: {a: 1}}", "Invalid value 'flat' - at `$.charges[0].model`"),
        (
            "{model: graduated, outcomes: [a, a], tiers: [{price: 1}]}",
            "outcomes must name each outcome kind once, found ['a'] twice",
        ),
        ("{model: volume, outcomes: [], tiers: [{price: 1}]}", "outcomes must name at least one"),
    ],
)
def test_a_bad_charge_is_refused_naming_the_field(yaml_charge: str, message: str) -> None:
    assert message in charge(yaml_charge)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            """
pricing:
  charges:
    - {model: per_outcome, prices: {confirmed_resolution: 0.99}}
    - {model: volume, outcomes: [confirmed_resolution], tiers: [{price: 0.5}]}
""",
            "charges[1] prices the outcome kind 'confirmed_resolution', which charges[0] "
            "already prices",
        ),
        (
            """
pricing:
  charges:
    - {model: business_share, share: 0.08}
    - {model: business_share, share: 0.02}
""",
            "charges[1] is a second business_share charge (the first is charges[0])",
        ),
        ("pricing:\n  charges: []\n", "charges must hold at least one charge, found none"),
        (
            """
pricing:
  charges: [{model: business_share, share: 0.08}]
  minimum: {amount: 500}
  cap: {amount: 400}
""",
            "cap.amount must be at least minimum.amount (500), found 400",
        ),
        (
            """
pricing:
  charges: [{model: business_share, share: 0.08}]
  minimum: {amount: 500, periods: 0}
""",
            "periods must be an integer 1..10^12, found 0 - at `$.minimum`",
        ),
        (
            """
pricing:
  charges: [{model: business_share, share: 0.08}]
  sla:
    - {metric: csat, at_least: 4.2, credit: 0.6}
    - {metric: resolution_rate, at_least: 0.7, credit: 0.5}
""",
            "sla credits must add up to at most 1 (100%), found 1.1",
        ),
        (
            """
pricing:
  charges: [{model: business_share, share: 0.08}]
  sla:
    - {metric: csat, at_least: 4.2, credit: 0.05}
    - {metric: csat, at_least: 4.5, credit: 0.05}
""",
            "sla[1] is a second target for csat",
        ),
        (
            """
pricing:
  charges: [{model: business_share, share: 0.08}]
  sla: [{metric: csat, at_most: 4.2, credit: 0.05}]
""",
            "at_most does not apply to csat (its target is at_least), found 4.2",
        ),
        (
            """
pricing:
  charges: [{model: business_share, share: 0.08}]
  sla: [{metric: p95_latency_ms, credit: 0.05}]
""",
            "at_most is required for p95_latency_ms",
        ),
        (
            """
pricing:
  charges: [{model: business_share, share: 0.08}]
  sla: [{metric: resolution_rate, at_least: 70, credit: 0.05}]
""",
            "at_least must be between 0 and 1 (1 is 100%), found 70",
        ),
        (
            """
pricing:
  charges: [{model: business_share, share: 0.08}]
  sla: [{metric: uptime, at_least: 0.999, credit: 0.05}]
""",
            "Invalid enum value 'uptime' - at `$.sla[0].metric`",
        ),
    ],
)
def test_a_bad_pricing_section_is_refused_naming_the_field(text: str, message: str) -> None:
    assert message in refused(text)


def test_a_float_is_refused_wherever_it_is() -> None:
    data: dict[str, Any] = {"charges": [{"model": "per_outcome", "prices": {"a": 0.99}}]}
    with raises(ValueError, "found a float at `$.charges[0].prices.a`"):
        pricing_from_data(data)
    with raises(TypeError, "price must be a Decimal, found float 0.99"):
        Tier(price=0.99)  # type: ignore[arg-type]
    with raises(TypeError, "prices.a must be a Decimal, found float"):
        PerOutcome(prices={"a": 0.99})  # type: ignore[dict-item]


def test_pricing_encodes_back_to_the_same_terms() -> None:
    """The typed terms survive JSON (as a store would keep them) unchanged."""
    pricing = pricing_yaml(EVERY_MODEL)
    assert msgspec.json.decode(msgspec.json.encode(pricing), type=Pricing) == pricing
    assert b'"model":"graduated"' in msgspec.json.encode(pricing)


# ---------------------------------------------------------------------------------------------
# Usage


def test_usage_refuses_what_would_count_twice_or_is_not_exact() -> None:
    with raises(ValueError, "episode 'e1' appears twice (first under a)"):
        Usage(outcomes=unit_weights({"a": ["e1"], "b": ["e1"]}))
    with raises(ValueError, "order 'o1' appears twice"):
        Usage(
            attributed=(
                AttributedAmount(order="o1", amount=Decimal(1)),
                AttributedAmount(order="o1", amount=Decimal(2)),
            )
        )
    with raises(TypeError, "weight of episode 'e1' must be a Decimal, found float"):
        WeightedEpisode(episode="e1", weight=1.5)  # type: ignore[arg-type]
    with raises(ValueError, "weight of episode 'e1' must not be negative, found -1"):
        WeightedEpisode(episode="e1", weight=Decimal(-1))
    with raises(ValueError, "episode must be non-empty text"):
        WeightedEpisode(episode="")
    with raises(ValueError, "reviews.passed must be at most reviews.reviewed (3)"):
        Reviews(reviewed=3, passed=4)
    with raises(ValueError, "amount of order 'o1' must not be negative, found -5"):
        AttributedAmount(order="o1", amount=Decimal(-5))
    with raises(ValueError, "case_costs.cases must be an integer 0..10"):
        CaseCosts(cases=-1, actual_cost_per_case=Decimal(1))
    with raises(ValueError, "sla.resolution_rate must be between 0 and 1"):
        SlaMeasurements(resolution_rate=Decimal(72))
    with raises(ValueError, "prepaid_balance must not be negative, found -1"):
        Usage(prepaid_balance=Decimal(-1))
    with raises(ValueError, "commitment_prior_subtotals[1] must be a finite"):
        Usage(commitment_prior_subtotals=(Decimal(1), Decimal("NaN")))
    with raises(ValueError, "cannot come from 2 units"):
        GroupMeasurement(units=2, total=Decimal(10), total_of_squares=Decimal(10))

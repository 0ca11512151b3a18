"""Adjustments after the charges: minimum true-up, cap, SLA credit and prepaid drawdown, in that
order. What would break: a true-up in the wrong period of a commitment, a cap applied before the
minimum, an SLA credit on the wrong base or past what is due, a drawdown that overdraws the
balance, or a fixed amount with more decimals than the currency has."""

from __future__ import annotations

from decimal import Decimal

from test_pricing import counted, pricing_yaml, raises, total

from raas.core.pricing import (
    PricedPeriod,
    SlaMeasurements,
    Usage,
    price,
    price_period,
    unit_weights,
)

# 1.00 per resolution, so that the subtotal is the number of resolutions.
CHARGE = """
pricing:
  charges:
    - {model: per_outcome, prices: {ai_resolution: 1.00}}
"""


def resolutions(
    count: int,
    *,
    sla: SlaMeasurements | None = None,
    prepaid_balance: Decimal | None = None,
    commitment_prior_subtotals: tuple[Decimal, ...] = (),
) -> Usage:
    """`count` AI resolutions and the other measurements given."""
    return Usage(
        outcomes=unit_weights({"ai_resolution": [f"e{n}" for n in range(count)]}),
        sla=sla or SlaMeasurements(),
        prepaid_balance=prepaid_balance,
        commitment_prior_subtotals=commitment_prior_subtotals,
    )


def settle(extra: str, usage: Usage, currency: str = "USD") -> PricedPeriod:
    return price_period(pricing_yaml(CHARGE + extra), usage, currency, "half_even")


def adjustments(period: PricedPeriod) -> list[tuple[str, Decimal]]:
    return [(line.kind, line.amount) for line in period.lines if line.kind != "outcome"]


def test_minimum_true_up_charges_the_shortfall() -> None:
    """Minimum 500.00, subtotal 315.00: a true-up of 185.00, total 500.00. A subtotal of 500.00
    or more needs none."""
    period = settle("  minimum: {amount: 500.00}\n", resolutions(315))
    assert adjustments(period) == [("minimum_true_up", Decimal("185.00"))]
    (line,) = [line for line in period.lines if line.kind == "minimum_true_up"]
    assert (line.quantity, line.unit_price) == (1, Decimal("185.00"))
    assert line.basis["minimum"] == Decimal("500.00")
    assert line.basis["subtotal"] == Decimal("315.00")
    assert period.subtotal == Decimal("315.00")
    assert total(period) == Decimal("500.00")
    assert adjustments(settle("  minimum: {amount: 500.00}\n", resolutions(500))) == []
    assert adjustments(settle("  minimum: {amount: 500.00}\n", resolutions(501))) == []


def test_a_minimum_over_several_periods_is_trued_up_in_the_last() -> None:
    """1,000.00 over 3 periods. Periods 1 and 2 were charged 300.00 and 200.00; period 3 is
    charged 250.00: 750.00 in all, so a true-up of 250.00 (total 500.00). In period 2 (one prior
    subtotal) there is nothing to true up yet."""
    terms = "  minimum: {amount: 1000.00, periods: 3}\n"
    prior = (Decimal("300.00"), Decimal("200.00"))
    period = settle(terms, resolutions(250, commitment_prior_subtotals=prior))
    assert adjustments(period) == [("minimum_true_up", Decimal("250.00"))]
    assert period.lines[-1].basis["counted"] == Decimal("750.00")
    assert period.lines[-1].description == "Minimum commitment of 1,000.00 over 3 periods: true-up"
    assert total(period) == Decimal("500.00")
    in_period_two = settle(terms, resolutions(250, commitment_prior_subtotals=prior[:1]))
    assert adjustments(in_period_two) == []
    with raises(
        ValueError, "must hold at most 2 earlier periods of the commitment's run of 3, found 3"
    ):
        settle(terms, resolutions(1, commitment_prior_subtotals=(*prior, Decimal(1))))
    with raises(ValueError, "but the contract has no minimum commitment"):
        settle("", resolutions(1, commitment_prior_subtotals=prior))


def test_cap_brings_the_total_down_to_it() -> None:
    """Cap 100.00, subtotal 150.00: a cap line of -50.00, total 100.00. At exactly 100.00 no
    line."""
    period = settle("  cap: {amount: 100.00}\n", resolutions(150))
    assert adjustments(period) == [("cap", Decimal("-50.00"))]
    assert period.lines[-1].basis == {"cap": Decimal("100.00"), "before_cap": Decimal("150.00")}
    assert total(period) == Decimal("100.00")
    assert adjustments(settle("  cap: {amount: 100.00}\n", resolutions(100))) == []


SLA = """  sla:
    - {metric: resolution_rate, at_least: 0.70, credit: 0.05}
    - {metric: p95_latency_ms, at_most: 2000, credit: 0.03}
    - {metric: csat, at_least: 4.2, credit: 0.05}
"""


def test_sla_credit_for_each_missed_target() -> None:
    """Subtotal 1,000.00. Resolution rate 0.65 < 0.70 (5%), p95 2,000 ms exactly at the target
    (met), CSAT 4.0 < 4.2 (5%): one credit line of 10% x 1,000.00 = -100.00, total 900.00."""
    measured = SlaMeasurements(
        resolution_rate=Decimal("0.65"), p95_latency_ms=Decimal(2000), csat=Decimal("4.0")
    )
    period = settle(SLA, resolutions(1000, sla=measured))
    assert adjustments(period) == [("sla_credit", Decimal("-100.00"))]
    line = period.lines[-1]
    assert (line.quantity, line.unit_price) == (Decimal("1000.00"), Decimal("-0.10"))
    assert line.basis == {
        "base": Decimal("1000.00"),
        "resolution_rate.measured": Decimal("0.65"),
        "resolution_rate.target": Decimal("0.70"),
        "resolution_rate.credit": Decimal("0.05"),
        "csat.measured": Decimal("4.0"),
        "csat.target": Decimal("4.2"),
        "csat.credit": Decimal("0.05"),
        "credit": Decimal("0.10"),
    }
    assert line.description == (
        "SLA credit for missed targets: resolution rate 0.65 below 0.70 (5%); "
        "CSAT 4.0 below 4.2 (5%)"
    )
    assert total(period) == Decimal("900.00")


def test_sla_targets_met_exactly_or_better_give_no_credit() -> None:
    measured = SlaMeasurements(
        resolution_rate=Decimal("0.70"), p95_latency_ms=Decimal(1999), csat=Decimal("4.2")
    )
    assert adjustments(settle(SLA, resolutions(1000, sla=measured))) == []
    slow = SlaMeasurements(
        resolution_rate=Decimal("0.70"), p95_latency_ms=Decimal("2000.5"), csat=Decimal("4.2")
    )
    assert adjustments(settle(SLA, resolutions(1000, sla=slow))) == [
        ("sla_credit", Decimal("-30.00"))
    ]


def test_a_missing_sla_measurement_is_refused() -> None:
    with raises(ValueError, "usage.sla.csat is required by the contract's SLA"):
        settle(
            SLA,
            resolutions(
                1, sla=SlaMeasurements(resolution_rate=Decimal(1), p95_latency_ms=Decimal(1))
            ),
        )


PREPAID = "  prepaid: {credit: 5000.00}\n"


def test_prepaid_credits_are_drawn_down_and_the_rest_carries_over() -> None:
    """Balance 300.00, period 250.00: -250.00, total 0.00, 50.00 left. Balance 100.00: -100.00,
    total 150.00, 0.00 left. An empty period draws nothing and keeps the balance."""
    period = settle(
        "  prepaid: {credit: 5000.00}\n", resolutions(250, prepaid_balance=Decimal("300.00"))
    )
    assert adjustments(period) == [("prepaid_drawdown", Decimal("-250.00"))]
    assert (total(period), period.prepaid_balance) == (Decimal("0.00"), Decimal("50.00"))
    assert period.lines[-1].basis == {
        "balance_before": Decimal("300.00"),
        "drawn": Decimal("250.00"),
        "balance_after": Decimal("50.00"),
    }
    period = settle(
        "  prepaid: {credit: 5000.00}\n", resolutions(250, prepaid_balance=Decimal("100.00"))
    )
    assert (total(period), period.prepaid_balance) == (Decimal("150.00"), Decimal("0.00"))
    period = settle(
        "  prepaid: {credit: 5000.00}\n", resolutions(0, prepaid_balance=Decimal("100.00"))
    )
    assert adjustments(period) == []
    assert period.prepaid_balance == Decimal("100.00")
    assert settle("", resolutions(1)).prepaid_balance is None


def test_prepaid_balance_and_terms_must_agree() -> None:
    with raises(
        ValueError, "usage.prepaid_balance is required when the contract states pricing.prepaid"
    ):
        settle(PREPAID, resolutions(1))
    with raises(ValueError, "the contract has no prepaid credits"):
        settle("", resolutions(1, prepaid_balance=Decimal(5)))


ALL = """  minimum: {amount: 500.00}
  cap: {amount: 1000.00}
  sla:
    - {metric: csat, at_least: 4.2, credit: 0.10}
  prepaid: {credit: 5000.00}
"""
MISSED = SlaMeasurements(csat=Decimal("4.0"))


def test_adjustments_apply_in_their_fixed_order() -> None:
    """Subtotal 1,200.00 -> cap -200.00 (1,000.00) -> SLA 10% of 1,000.00 = -100.00 (900.00)
    -> prepaid balance 1,000.00 draws -900.00: total 0.00, 100.00 left.
    Subtotal 315.00 -> true-up +185.00 (500.00) -> SLA 10% of 500.00 = -50.00 (450.00) ->
    balance 100.00 draws -100.00: total 350.00, 0.00 left."""
    period = settle(ALL, resolutions(1200, sla=MISSED, prepaid_balance=Decimal("1000.00")))
    assert adjustments(period) == [
        ("cap", Decimal("-200.00")),
        ("sla_credit", Decimal("-100.00")),
        ("prepaid_drawdown", Decimal("-900.00")),
    ]
    assert (total(period), period.prepaid_balance) == (Decimal("0.00"), Decimal("100.00"))
    period = settle(ALL, resolutions(315, sla=MISSED, prepaid_balance=Decimal("100.00")))
    assert adjustments(period) == [
        ("minimum_true_up", Decimal("185.00")),
        ("sla_credit", Decimal("-50.00")),
        ("prepaid_drawdown", Decimal("-100.00")),
    ]
    assert (total(period), period.prepaid_balance) == (Decimal("350.00"), Decimal("0.00"))


def test_a_full_credit_never_takes_the_total_below_zero() -> None:
    """A 100% SLA credit on 0.01 with half-up rounding is -0.01, not more."""
    terms = "  sla: [{metric: csat, at_least: 4.2, credit: 1}]\n"
    pricing = pricing_yaml(
        "pricing:\n  charges:\n    - {model: per_outcome, prices: {ai_resolution: 0.01}}\n" + terms
    )
    period = price_period(pricing, resolutions(1, sla=MISSED), "USD", "half_up")
    assert [line.amount for line in period.lines] == [Decimal("0.01"), Decimal("-0.01")]
    assert period.total == Decimal("0.00")


def test_kwd_and_jpy_adjustments() -> None:
    """KWD: 3 x 0.3335 = 1.0005 -> 1.000 (half-even), minimum 1.500 -> true-up 0.500, SLA 5%
    of 1.500 = 0.075 -> total 1.425. JPY: 3 x 99.5 = 298.5 -> 298 yen, minimum 1,000 -> true-up
    702, SLA 5% of 1,000 = 50 -> total 950."""
    terms = "  minimum: {amount: %s}\n  sla: [{metric: csat, at_least: 4.2, credit: 0.05}]\n"
    usage = Usage(outcomes=unit_weights({"x": ["a", "b", "c"]}), sla=MISSED)
    kwd = pricing_yaml(
        "pricing:\n  charges:\n    - {model: per_outcome, prices: {x: 0.3335}}\n" + terms % "1.500"
    )
    assert [line.amount for line in price(kwd, usage, "KWD", "half_even")] == [
        Decimal("1.000"),
        Decimal("0.500"),
        Decimal("-0.075"),
    ]
    jpy = pricing_yaml(
        "pricing:\n  charges:\n    - {model: per_outcome, prices: {x: 99.5}}\n" + terms % "1000"
    )
    period = price_period(jpy, usage, "JPY", "half_even")
    assert [line.amount for line in period.lines] == [Decimal(298), Decimal(702), Decimal(-50)]
    assert period.total == Decimal(950)


def test_fixed_amounts_must_be_whole_minor_units_of_the_currency() -> None:
    with raises(ValueError, "pricing.minimum.amount: 100.005 USD is not a whole"):
        settle("  minimum: {amount: 100.005}\n", resolutions(1))
    with raises(ValueError, "pricing.cap.amount: 100.5 JPY is not a whole"):
        settle("  cap: {amount: 100.5}\n", resolutions(1), "JPY")
    with raises(ValueError, "usage.prepaid_balance: 0.0001 KWD is not a whole"):
        settle(
            "  prepaid: {credit: 5000.00}\n",
            resolutions(1, prepaid_balance=Decimal("0.0001")),
            "KWD",
        )
    assert total(settle("  minimum: {amount: 100.5}\n", resolutions(1), "KWD")) == Decimal(
        "100.500"
    )


def test_counted_helper_and_missing_usage() -> None:
    """A charge that needs a measurement the period lacks is refused, not billed as zero."""
    uplift = pricing_yaml(
        "pricing:\n  charges:\n    - {model: uplift_share, share: 0.001, bill_on: lower_bound}\n"
    )
    with raises(ValueError, "usage.holdout is required by the uplift_share charge"):
        price(uplift, counted(), "USD", "half_even")
    savings = pricing_yaml(
        "pricing:\n  charges:\n"
        "    - {model: savings_share, baseline_cost_per_case: 4, share: 0.3}\n"
    )
    with raises(ValueError, "usage.case_costs is required by the savings_share"):
        price(savings, counted(), "USD", "half_even")

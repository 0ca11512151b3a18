"""Properties of pricing over generated terms and usage. What would break: a graduated schedule
that charges a unit at the wrong tier or charges less for more, a volume tier reached one unit
late, a total that is not the sum of its lines, a cap that raises a bill, or credits that make
it negative."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pricing import counted

from raas.core.money import Rounding, from_minor_units, quantize
from raas.core.pricing import (
    CHARGE_KINDS,
    AccuracyTier,
    AccuracyTiers,
    AttributedAmount,
    BusinessShare,
    Cap,
    CaseCosts,
    Charge,
    Graduated,
    Minimum,
    Package,
    PerOutcome,
    Prepaid,
    PricedPeriod,
    Pricing,
    Reviews,
    SavingsShare,
    SlaMeasurements,
    SlaTarget,
    Tier,
    Usage,
    Volume,
    WeightedEpisode,
    price,
    price_period,
)

CURRENCIES = ["USD", "JPY", "KWD"]
ROUNDINGS: list[Rounding] = ["half_even", "half_up", "down"]
roundings = st.sampled_from(ROUNDINGS)


@st.composite
def prices(draw: st.DrawFn, places: int | None = None) -> Decimal:
    """A price of 0 to 100, with `places` decimal places (any from 0 to 6 when None)."""
    digits = draw(st.integers(0, 6)) if places is None else places
    return Decimal(draw(st.integers(0, 100 * 10**digits))).scaleb(-digits)


@st.composite
def tiers(draw: st.DrawFn, places: int | None = None) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(1, 300), max_size=3)))
    return (
        *(Tier(up_to=bound, price=draw(prices(places))) for bound in bounds),
        Tier(price=draw(prices(places))),
    )


def tier_price(schedule: tuple[Tier, ...], unit: int) -> Decimal:
    """The price of the `unit`-th unit (1-based) under inclusive upper bounds, by definition."""
    for tier in schedule:
        if tier.up_to is None or unit <= tier.up_to:
            return tier.price
    raise AssertionError("the last tier is open-ended")


def amount_total(period: PricedPeriod) -> Decimal:
    return sum((line.amount for line in period.lines), Decimal(0))


@given(schedule=tiers(places=2), units=st.integers(0, 400))
def test_graduated_total_is_the_sum_of_each_units_tier_price(
    schedule: tuple[Tier, ...], units: int
) -> None:
    """With prices in whole cents no line needs rounding, so the total must be exactly the sum,
    over units 1..n, of the price of the tier holding each unit."""
    pricing = Pricing(charges=(Graduated(outcomes=("a",), tiers=schedule),))
    period = price_period(pricing, counted(a=units), "USD", "half_even")
    expected = sum((tier_price(schedule, unit) for unit in range(1, units + 1)), Decimal(0))
    assert period.total == expected
    assert sum(line.quantity for line in period.lines) == units
    covered = [episode for line in period.lines for episode in line.episodes]
    assert len(covered) == units == len(set(covered))


@given(
    schedule=tiers(),
    units=st.integers(0, 400),
    currency=st.sampled_from(CURRENCIES),
    rounding=roundings,
)
def test_graduated_total_never_falls_as_quantity_grows(
    schedule: tuple[Tier, ...], units: int, currency: str, rounding: Rounding
) -> None:
    pricing = Pricing(charges=(Graduated(outcomes=("a",), tiers=schedule),))
    less = price_period(pricing, counted(a=units), currency, rounding).total
    more = price_period(pricing, counted(a=units + 1), currency, rounding).total
    assert less <= more


@given(
    schedule=tiers(),
    units=st.integers(0, 400),
    currency=st.sampled_from(CURRENCIES),
    rounding=roundings,
)
def test_volume_bills_every_unit_at_the_reached_tier(
    schedule: tuple[Tier, ...], units: int, currency: str, rounding: Rounding
) -> None:
    pricing = Pricing(charges=(Volume(outcomes=("a",), tiers=schedule),))
    (line,) = price(pricing, counted(a=units), currency, rounding)
    reached = tier_price(schedule, max(units, 1))  # zero units sit in the first tier
    assert line.unit_price == reached
    assert line.amount == quantize(units * reached, currency, rounding)


# ---------------------------------------------------------------------------------------------
# Whole pricing sections, generated


def minor(currency: str, units: int) -> Decimal:
    return from_minor_units(units, currency)


SLA_TARGETS = {
    "resolution_rate": lambda credit: SlaTarget(
        metric="resolution_rate", at_least=Decimal("0.7"), credit=credit
    ),
    "p95_latency_ms": lambda credit: SlaTarget(
        metric="p95_latency_ms", at_most=Decimal(2000), credit=credit
    ),
    "csat": lambda credit: SlaTarget(metric="csat", at_least=Decimal("4.2"), credit=credit),
}


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Pricing, Usage, str, Rounding]:
    """Terms with a random selection of charges and adjustments, and usage for them."""
    currency = draw(st.sampled_from(CURRENCIES))
    rounding: Rounding = draw(roundings)
    charges: list[Charge] = [PerOutcome(prices={"a": draw(prices()), "b": draw(prices())})]
    if draw(st.booleans()):
        charges.append(Graduated(outcomes=("c",), tiers=draw(tiers())))
    if draw(st.booleans()):
        charges.append(Volume(outcomes=("v",), tiers=draw(tiers())))
    if draw(st.booleans()):
        overage = draw(st.booleans())
        charges.append(
            Package(
                outcomes=("d",),
                size=draw(st.integers(1, 50)),
                price=draw(prices()),
                partial="overage" if overage else "round_up",
                overage_price=draw(prices()) if overage else None,
            )
        )
    if draw(st.booleans()):
        charges.append(
            AccuracyTiers(
                outcomes=("e",),
                tiers=(
                    AccuracyTier(accuracy_at_least=Decimal("0.9"), price=draw(prices())),
                    AccuracyTier(accuracy_at_least=Decimal(0), price=draw(prices())),
                ),
                minimum_sample=draw(st.integers(1, 20)),
                small_sample_price=draw(prices()),
            )
        )
    if draw(st.booleans()):
        cap = draw(st.none() | prices(2))
        charges.append(BusinessShare(share=draw(prices(4)) / 100, cap_per_order=cap))
    if draw(st.booleans()):
        charges.append(
            SavingsShare(baseline_cost_per_case=draw(prices(2)), share=draw(prices(4)) / 100)
        )
    minimum_units = draw(st.none() | st.integers(0, 5_000_000))
    cap_units = draw(st.none() | st.integers(minimum_units or 0, 10_000_000))
    targets = draw(st.lists(st.sampled_from(sorted(SLA_TARGETS)), unique=True))
    sla = tuple(SLA_TARGETS[metric](Decimal(draw(st.integers(0, 33))) / 100) for metric in targets)
    prepaid = draw(st.booleans())
    credit = Prepaid(credit=minor(currency, 5_000_000)) if prepaid else None
    pricing = Pricing(
        charges=tuple(charges),
        minimum=None if minimum_units is None else Minimum(amount=minor(currency, minimum_units)),
        cap=None if cap_units is None else Cap(amount=minor(currency, cap_units)),
        sla=sla,
        prepaid=credit,
    )
    weights = st.sampled_from([Decimal(1), Decimal(1), Decimal("0.5"), Decimal("1.5"), Decimal(0)])
    outcomes: dict[str, tuple[WeightedEpisode, ...]] = {}
    for kind in "abcdev":
        count = draw(st.integers(0, 60))
        outcomes[kind] = tuple(
            WeightedEpisode(episode=f"{kind}{n}", weight=draw(weights)) for n in range(count)
        )
    reviewed = draw(st.integers(0, 40))
    order_values = draw(st.lists(prices(2), max_size=10))
    usage = Usage(
        outcomes=outcomes,
        reviews=Reviews(reviewed=reviewed, passed=draw(st.integers(0, reviewed))),
        attributed=tuple(
            AttributedAmount(order=f"o{n}", amount=value * 10, episodes=(f"a{n}",))
            for n, value in enumerate(order_values)
        ),
        case_costs=CaseCosts(cases=draw(st.integers(0, 1000)), actual_cost_per_case=draw(prices())),
        sla=SlaMeasurements(
            resolution_rate=Decimal(draw(st.integers(50, 90))) / 100,
            p95_latency_ms=Decimal(draw(st.integers(1500, 2500))),
            csat=Decimal(draw(st.integers(30, 50))) / 10,
        ),
        prepaid_balance=minor(currency, draw(st.integers(0, 5_000_000))) if prepaid else None,
    )
    return pricing, usage, currency, rounding


def replace(struct: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(struct, **changes)


@settings(max_examples=200)
@given(scenario=scenarios())
def test_the_total_is_the_sum_of_lines_each_rounded_once(
    scenario: tuple[Pricing, Usage, str, Rounding],
) -> None:
    pricing, usage, currency, rounding = scenario
    period = price_period(pricing, usage, currency, rounding)
    assert period.total == amount_total(period)
    assert period.subtotal == sum(
        (line.amount for line in period.lines if line.kind in CHARGE_KINDS), Decimal(0)
    )
    assert period.total >= 0
    for line in period.lines:
        # Whole minor units, and exactly quantity x unit price rounded once by the rule.
        assert line.amount == quantize(line.amount, currency, rounding)
        assert line.amount == quantize(Decimal(line.quantity) * line.unit_price, currency, rounding)
        assert list(line.episodes) == sorted(set(line.episodes))
    if pricing.cap is not None and not pricing.sla and pricing.prepaid is None:
        assert period.total <= pricing.cap.amount
    if pricing.prepaid is not None:
        assert period.prepaid_balance is not None and usage.prepaid_balance is not None
        drawn = usage.prepaid_balance - period.prepaid_balance
        assert 0 <= drawn <= usage.prepaid_balance


@settings(max_examples=200)
@given(scenario=scenarios(), cap_units=st.integers(0, 10_000_000))
def test_a_cap_never_raises_a_total(
    scenario: tuple[Pricing, Usage, str, Rounding], cap_units: int
) -> None:
    pricing, usage, currency, rounding = scenario
    cap = Cap(amount=minor(currency, cap_units))
    if pricing.minimum is not None and cap.amount < pricing.minimum.amount:
        cap = Cap(amount=pricing.minimum.amount)
    uncapped = price_period(replace(pricing, cap=None), usage, currency, rounding)
    capped = price_period(replace(pricing, cap=cap), usage, currency, rounding)
    assert capped.total <= uncapped.total
    assert all(line.amount <= 0 for line in capped.lines if line.kind == "cap")


@settings(max_examples=200)
@given(scenario=scenarios())
def test_credits_never_make_a_total_negative_nor_larger(
    scenario: tuple[Pricing, Usage, str, Rounding],
) -> None:
    pricing, usage, currency, rounding = scenario
    with_credits = price_period(pricing, usage, currency, rounding)
    without = price_period(
        replace(pricing, sla=(), prepaid=None),
        replace(usage, prepaid_balance=None),
        currency,
        rounding,
    )
    assert 0 <= with_credits.total <= without.total
    for line in with_credits.lines:
        if line.kind in ("sla_credit", "prepaid_drawdown", "cap"):
            assert line.amount <= 0


def brute_force_bands(
    items: list[WeightedEpisode], schedule: tuple[Tier, ...]
) -> list[tuple[str, ...]]:
    """Which episodes each tier covers, by definition: laid end to end in id order, each
    outcome spans (start, start + weight] and belongs to every tier range it overlaps over a
    positive length; an outcome of weight 0 at point p belongs to the range (lower, upper]
    holding p, or to the first range when p is 0."""
    ranges: list[tuple[Decimal, Decimal | None]] = []
    lower = Decimal(0)
    for tier in schedule:
        upper = None if tier.up_to is None else Decimal(tier.up_to)
        ranges.append((lower, upper))
        lower = upper if upper is not None else lower
    found: list[list[str]] = [[] for _ in ranges]
    position = Decimal(0)
    for item in sorted(items, key=lambda item: item.episode):
        start, end = position, position + item.weight
        for index, (low, high) in enumerate(ranges):
            top = end if high is None else min(end, high)
            if (end > start and max(start, low) < top) or (
                end == start
                and (low < start or start == low == 0)
                and (high is None or start <= high)
            ):
                found[index].append(item.episode)
        position = end
    return [tuple(episodes) for episodes in found]


@given(
    schedule=tiers(places=2),
    weights=st.lists(st.sampled_from(["0", "0.5", "1", "1.5", "2", "0.25"]), max_size=300),
)
def test_weighted_graduated_lines_cover_the_right_episodes(
    schedule: tuple[Tier, ...], weights: list[str]
) -> None:
    items = [
        WeightedEpisode(episode=f"e{number:04d}", weight=Decimal(weight))
        for number, weight in enumerate(weights)
    ]
    pricing = Pricing(charges=(Graduated(outcomes=("a",), tiers=schedule),))
    lines = price(pricing, Usage(outcomes={"a": tuple(reversed(items))}), "USD", "half_even")
    expected = brute_force_bands(items, schedule)
    reached = {int(line.basis["tier"]) - 1: line.episodes for line in lines}
    assert all(reached[index] == expected[index] for index in reached)
    assert all(index in reached for index, episodes in enumerate(expected) if episodes)
    # Every episode is behind some line, weight 0 included.
    assert {episode for line in lines for episode in line.episodes} == {
        item.episode for item in items
    }
    weight_total = sum((item.weight for item in items), Decimal(0))
    assert sum((Decimal(line.quantity) for line in lines), Decimal(0)) == weight_total

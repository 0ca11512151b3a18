"""The pricing models: one pure function per model, from its terms and the period's usage to
its invoice lines. Each line is rounded once, to the currency's minor units, by the contract's
rule; everything before that rounding is exact.

Where a line covers a range of units (a graduated tier, the full blocks of a package), the
outcomes are laid end to end in episode-id order, each as long as its weight, and a line lists
every episode that overlaps its range: the amounts depend only on the total, and the order only
decides which episodes a buyer finds behind which line, the same way on every run.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import Decimal
from typing import Final

from raas.core.money import Rounding
from raas.core.pricing.figures import EXACT, grouped, percent, words
from raas.core.pricing.lines import PricedLine, priced_line
from raas.core.pricing.terms import (
    AccuracyTiers,
    BusinessShare,
    Charge,
    Graduated,
    Package,
    PerOutcome,
    SavingsShare,
    Tier,
    UpliftShare,
    Volume,
)
from raas.core.pricing.usage import Usage, WeightedEpisode
from raas.core.uplift import MINIMUM_GROUP_UNITS, estimate_uplift

__all__ = [
    "ACCURACY_PLACES",
    "price_accuracy_tiers",
    "price_business_share",
    "price_charge",
    "price_graduated",
    "price_package",
    "price_per_outcome",
    "price_savings_share",
    "price_uplift_share",
    "price_volume",
]

# The accuracy a line shows, rounded down so that a shown figure at or above a threshold of up
# to 6 places means the exact accuracy is too. The tier is chosen on the exact fraction.
ACCURACY_PLACES: Final = 6

# A range of units (lower, upper]: upper None is open-ended.
_Range = tuple[Decimal, Decimal | None]


def _outcomes(usage: Usage, kinds: Sequence[str]) -> list[WeightedEpisode]:
    items = [item for kind in kinds for item in usage.outcomes.get(kind, ())]
    return sorted(items, key=lambda item: item.episode)


def _quantity(items: Sequence[WeightedEpisode]) -> int | Decimal:
    # A count when every outcome weighs 1, which reads as what it is; a weighted sum otherwise.
    if all(item.weight == 1 for item in items):
        return len(items)
    total = Decimal(0)
    with decimal.localcontext(EXACT):
        for item in items:
            total += item.weight
    return total


def _as_quantity(value: Decimal, counted: bool) -> int | Decimal:
    return int(value) if counted else value


def _episodes_in_ranges(
    items: Sequence[WeightedEpisode], ranges: Sequence[_Range]
) -> list[list[str]]:
    # `ranges` are in order, without overlaps, with whole-number bounds. Each outcome spans
    # (start, start + weight]; it belongs to every range it overlaps over a positive length.
    # An outcome of weight 0 is the point `start`, and belongs to the range (lower, upper]
    # holding it (the first range when it is 0): a range that holds a point at or below the
    # total always has a line, so no episode is left off every line.
    if all(item.weight == 1 for item in items):
        # Unit k (1-based) is items[k - 1]: each range is a slice (a million outcomes in
        # milliseconds, where the general walk below takes seconds).
        return [
            [item.episode for item in items[int(lower) : None if upper is None else int(upper)]]
            for lower, upper in ranges
        ]
    found: list[list[str]] = [[] for _ in ranges]
    position = Decimal(0)
    first = 0  # ranges before this one end before the current position: skip them
    with decimal.localcontext(EXACT):
        for item in items:
            start, end = position, position + item.weight
            for index in range(first, len(ranges)):
                lower, upper = ranges[index]
                if upper is not None and upper <= start and end > start:
                    first = index + 1
                    continue
                if end > start:
                    overlaps = max(start, lower) < (end if upper is None else min(end, upper))
                else:
                    after_lower = lower < start or (start.is_zero() and lower.is_zero())
                    overlaps = after_lower and (upper is None or start <= upper)
                if overlaps:
                    found[index].append(item.episode)
                elif lower >= end:
                    break
            position = end
    return found


def _tier_ranges(tiers: Sequence[Tier]) -> list[_Range]:
    ranges: list[_Range] = []
    lower = Decimal(0)
    for tier in tiers:
        upper = None if tier.up_to is None else Decimal(tier.up_to)
        ranges.append((lower, upper))
        if upper is not None:
            lower = upper
    return ranges


def _kinds(outcomes: Sequence[str]) -> str:
    return ", ".join(words(name) for name in outcomes)


def price_per_outcome(
    charge: PerOutcome, usage: Usage, currency: str, rounding: Rounding
) -> list[PricedLine]:
    """One "outcome" line per priced kind, in the contract's order, zero quantities included:
    quantity = the kind's weighted outcomes, at the kind's price."""
    lines = []
    for kind, price in charge.prices.items():
        items = _outcomes(usage, [kind])
        quantity = _quantity(items)
        lines.append(
            priced_line(
                "outcome",
                f"Outcome: {words(kind)}",
                quantity,
                price,
                currency=currency,
                rounding=rounding,
                episodes=[item.episode for item in items],
                basis={"outcomes": len(items), "weighted_quantity": quantity},
            )
        )
    return lines


def price_graduated(
    charge: Graduated, usage: Usage, currency: str, rounding: Rounding
) -> list[PricedLine]:
    """One "tier" line per tier the period's units reach, each with the units inside its
    range at its price: with ranges (0, 1000], (1000, 10000], (10000, ...) and 12,000 units,
    1000 x 0.99 + 9000 x 0.89 + 2000 x 0.79. Zero units give the first tier's line, empty."""
    items = _outcomes(usage, charge.outcomes)
    quantity = _quantity(items)
    counted = isinstance(quantity, int)
    total = Decimal(quantity)
    ranges = _tier_ranges(charge.tiers)
    episodes = _episodes_in_ranges(items, ranges)
    lines = []
    with decimal.localcontext(EXACT):
        for index, (tier, (lower, upper)) in enumerate(zip(charge.tiers, ranges, strict=True)):
            inside = max(Decimal(0), (total if upper is None else min(total, upper)) - lower)
            if inside.is_zero() and not (index == 0 and total.is_zero()):
                continue
            span = (
                f"units {grouped(int(lower) + 1)} to {grouped(int(upper))}"
                if upper is not None
                else f"units beyond {grouped(int(lower))}"
            )
            basis: dict[str, Decimal | int] = {"tier": index + 1, "above": lower}
            if upper is not None:
                basis["up_to"] = upper
            basis["total_quantity"] = total
            lines.append(
                priced_line(
                    "tier",
                    f"{_kinds(charge.outcomes)}: graduated tier {index + 1}, {span}",
                    _as_quantity(inside, counted),
                    tier.price,
                    currency=currency,
                    rounding=rounding,
                    episodes=episodes[index],
                    basis=basis,
                )
            )
    return lines


def price_volume(
    charge: Volume, usage: Usage, currency: str, rounding: Rounding
) -> list[PricedLine]:
    """One "tier" line: every unit at the price of the tier whose range holds the total (a
    total exactly at a tier's `up_to` stays in that tier)."""
    items = _outcomes(usage, charge.outcomes)
    quantity = _quantity(items)
    total = Decimal(quantity)
    ranges = _tier_ranges(charge.tiers)
    reached = next(
        index for index, (_, upper) in enumerate(ranges) if upper is None or total <= upper
    )
    lower, upper = ranges[reached]
    reach = f"up to {grouped(int(upper))}" if upper is not None else f"beyond {grouped(int(lower))}"
    basis: dict[str, Decimal | int] = {"tier": reached + 1, "above": lower}
    if upper is not None:
        basis["up_to"] = upper
    return [
        priced_line(
            "tier",
            f"{_kinds(charge.outcomes)}: volume tier {reached + 1} ({reach}) for all units",
            quantity,
            charge.tiers[reached].price,
            currency=currency,
            rounding=rounding,
            episodes=[item.episode for item in items],
            basis=basis,
        )
    ]


def price_package(
    charge: Package, usage: Usage, currency: str, rounding: Rounding
) -> list[PricedLine]:
    """A "package" line of blocks at the block price. With `round_up`, a partial block counts
    as a whole one: ceil(units / size) blocks. With `overage`, floor(units / size) blocks and a
    "package_overage" line for the units beyond them at the overage price."""
    items = _outcomes(usage, charge.outcomes)
    quantity = _quantity(items)
    counted = isinstance(quantity, int)
    total = Decimal(quantity)
    size = Decimal(charge.size)
    with decimal.localcontext(EXACT):
        full_blocks, beyond = divmod(total, size)
    kinds = _kinds(charge.outcomes)
    if charge.partial == "round_up":
        blocks = int(full_blocks) + (0 if beyond.is_zero() else 1)
        return [
            priced_line(
                "package",
                f"{kinds}: blocks of {grouped(charge.size)}, a partial block counted whole",
                blocks,
                charge.price,
                currency=currency,
                rounding=rounding,
                episodes=[item.episode for item in items],
                basis={"units": total, "size": charge.size, "blocks": blocks},
            )
        ]
    assert charge.overage_price is not None, "checked by Package"
    with decimal.localcontext(EXACT):
        in_blocks = full_blocks * size
    inside, outside = _episodes_in_ranges(items, [(Decimal(0), in_blocks), (in_blocks, None)])
    lines = [
        priced_line(
            "package",
            f"{kinds}: full blocks of {grouped(charge.size)}",
            int(full_blocks),
            charge.price,
            currency=currency,
            rounding=rounding,
            episodes=inside,
            basis={"units": total, "size": charge.size, "blocks": int(full_blocks)},
        )
    ]
    if not beyond.is_zero():
        lines.append(
            priced_line(
                "package_overage",
                f"{kinds}: units beyond {int(full_blocks)} full blocks",
                _as_quantity(beyond, counted),
                charge.overage_price,
                currency=currency,
                rounding=rounding,
                episodes=outside,
                basis={"units": total, "in_blocks": in_blocks},
            )
        )
    return lines


def price_accuracy_tiers(
    charge: AccuracyTiers, usage: Usage, currency: str, rounding: Rounding
) -> list[PricedLine]:
    """One "accuracy_tier" line: the weighted outcomes at the price of the first tier whose
    threshold the accuracy reaches (passed >= threshold x reviewed, exactly), or at the
    small-sample price when fewer than `minimum_sample` outcomes were reviewed."""
    items = _outcomes(usage, charge.outcomes)
    quantity = _quantity(items)
    reviewed, passed = usage.reviews.reviewed, usage.reviews.passed
    basis: dict[str, Decimal | int] = {
        "reviewed": reviewed,
        "passed": passed,
        "minimum_sample": charge.minimum_sample,
    }
    kinds = _kinds(charge.outcomes)
    if reviewed < charge.minimum_sample:
        price = charge.small_sample_price
        description = (
            f"{kinds}: {reviewed} reviewed, fewer than the minimum sample of "
            f"{charge.minimum_sample}: small-sample price"
        )
    else:
        # Integer arithmetic: the shown accuracy is exact to its last digit, rounded down.
        accuracy = Decimal(passed * 10**ACCURACY_PLACES // reviewed).scaleb(-ACCURACY_PLACES)
        with decimal.localcontext(EXACT):
            tier = next(
                tier for tier in charge.tiers if passed >= tier.accuracy_at_least * reviewed
            )
        price = tier.price
        basis["accuracy"] = accuracy
        basis["accuracy_at_least"] = tier.accuracy_at_least
        description = (
            f"{kinds}: accuracy {passed} of {reviewed} reviewed, tier at least "
            f"{percent(tier.accuracy_at_least)}"
        )
    return [
        priced_line(
            "accuracy_tier",
            description,
            quantity,
            price,
            currency=currency,
            rounding=rounding,
            episodes=[item.episode for item in items],
            basis=basis,
        )
    ]


def price_business_share(
    charge: BusinessShare, usage: Usage, currency: str, rounding: Rounding
) -> list[PricedLine]:
    """A "business_share" line: share x the value of the orders whose share stays within the
    cap per order; and, when some orders' share exceeds the cap, a second line charging those
    orders the cap each. Without a cap there is only the first line."""
    share, cap = charge.share, charge.cap_per_order
    under, capped = [], []
    with decimal.localcontext(EXACT):
        for order in sorted(usage.attributed, key=lambda order: order.order):
            if cap is not None and share * order.amount > cap:
                capped.append(order)
            else:
                under.append(order)
        under_value = sum((order.amount for order in under), Decimal(0))
        capped_value = sum((order.amount for order in capped), Decimal(0))
    lines = [
        priced_line(
            "business_share",
            f"{percent(share)} of the value of {len(under)} orders attributed to the AI",
            under_value,
            share,
            currency=currency,
            rounding=rounding,
            episodes=[episode for order in under for episode in order.episodes],
            basis={"orders": len(under), "attributed_value": under_value, "share": share},
        )
    ]
    if capped:
        assert cap is not None
        lines.append(
            priced_line(
                "business_share",
                f"{len(capped)} orders whose {percent(share)} share exceeds the cap: the cap "
                "per order",
                len(capped),
                cap,
                currency=currency,
                rounding=rounding,
                episodes=[episode for order in capped for episode in order.episodes],
                basis={
                    "orders": len(capped),
                    "attributed_value": capped_value,
                    "share": share,
                    "cap_per_order": cap,
                },
            )
        )
    return lines


def price_uplift_share(
    charge: UpliftShare, usage: Usage, currency: str, rounding: Rounding
) -> list[PricedLine]:
    """An "uplift_share" line: share x the uplift (the interval's lower bound or the point
    estimate, as the contract says), never below zero. With fewer than two units in either
    group there is no estimate, and the line bills zero."""
    holdout = usage.holdout
    if holdout is None:
        raise ValueError("usage.holdout is required by the uplift_share charge, found none")
    billed_on = "lower bound" if charge.bill_on == "lower_bound" else "point estimate"
    description = (
        f"{percent(charge.share)} of the net increase against the holdout "
        f"({billed_on} at {percent(charge.confidence)} confidence)"
    )
    treated, control = holdout.treated.units, holdout.control.units
    if min(treated, control) < MINIMUM_GROUP_UNITS:
        return [
            priced_line(
                "uplift_share",
                f"{description}: fewer than {MINIMUM_GROUP_UNITS} units in a group, no estimate",
                Decimal(0),
                charge.share,
                currency=currency,
                rounding=rounding,
                basis={"treated_units": treated, "control_units": control},
            )
        ]
    estimate = estimate_uplift(holdout, charge.confidence)
    figure = estimate.lower if charge.bill_on == "lower_bound" else estimate.point
    billed = max(figure, Decimal(0))
    basis: dict[str, Decimal | int] = {
        "treated_units": estimate.treated_units,
        "treated_total": holdout.treated.total,
        "control_units": estimate.control_units,
        "control_total": holdout.control.total,
        "point_estimate": estimate.point,
        "standard_error": estimate.standard_error,
        "t_critical": estimate.t_critical,
        "margin": estimate.margin,
        "lower_bound": estimate.lower,
        "upper_bound": estimate.upper,
        "confidence": charge.confidence,
        "billed_uplift": billed,
    }
    if estimate.degrees_of_freedom is not None:
        basis["degrees_of_freedom"] = estimate.degrees_of_freedom
    return [
        priced_line(
            "uplift_share",
            description,
            billed,
            charge.share,
            currency=currency,
            rounding=rounding,
            basis=basis,
        )
    ]


def price_savings_share(
    charge: SavingsShare, usage: Usage, currency: str, rounding: Rounding
) -> list[PricedLine]:
    """A "savings_share" line: share x savings, with savings = max(baseline - actual cost per
    case, 0) x cases."""
    costs = usage.case_costs
    if costs is None:
        raise ValueError("usage.case_costs is required by the savings_share charge, found none")
    with decimal.localcontext(EXACT):
        per_case = max(charge.baseline_cost_per_case - costs.actual_cost_per_case, Decimal(0))
        savings = per_case * costs.cases
    return [
        priced_line(
            "savings_share",
            f"{percent(charge.share)} of the savings against a baseline of "
            f"{charge.baseline_cost_per_case} per case",
            savings,
            charge.share,
            currency=currency,
            rounding=rounding,
            episodes=costs.episodes,
            basis={
                "baseline_cost_per_case": charge.baseline_cost_per_case,
                "actual_cost_per_case": costs.actual_cost_per_case,
                "cases": costs.cases,
                "savings_per_case": per_case,
                "savings": savings,
            },
        )
    ]


def price_charge(
    charge: Charge, usage: Usage, currency: str, rounding: Rounding
) -> list[PricedLine]:
    """The lines of one charge, by its model."""
    match charge:
        case PerOutcome():
            return price_per_outcome(charge, usage, currency, rounding)
        case Graduated():
            return price_graduated(charge, usage, currency, rounding)
        case Volume():
            return price_volume(charge, usage, currency, rounding)
        case Package():
            return price_package(charge, usage, currency, rounding)
        case AccuracyTiers():
            return price_accuracy_tiers(charge, usage, currency, rounding)
        case BusinessShare():
            return price_business_share(charge, usage, currency, rounding)
        case UpliftShare():
            return price_uplift_share(charge, usage, currency, rounding)
        case SavingsShare():
            return price_savings_share(charge, usage, currency, rounding)

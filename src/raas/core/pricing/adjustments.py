"""The adjustments after the charges, always in this order, each on the running amount the step
before left:

1. minimum true-up: when the commitment's periods were charged less than its amount, a line
   for the difference (in the last period of the commitment's run);
2. cap: when the running amount is above the cap, a negative line down to the cap;
3. SLA credit: one negative line, the sum of the credits of every missed target x the running
   amount (one line rounded once, so that the credits can never exceed what is due, and a
   lower amount due never earns a larger total);
4. prepaid drawdown: a negative line for as much of the prepaid balance as the running amount
   uses up; the rest of the balance carries over.

The order is the contract's promise: the buyer pays at least the minimum unless a cap says
otherwise, SLA credits reduce what is actually due, and prepaid credit pays what is left.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import Decimal
from typing import Literal

from raas.core.money import Rounding, quantize, to_minor_units
from raas.core.pricing.figures import EXACT, grouped, percent
from raas.core.pricing.lines import PricedLine, priced_line
from raas.core.pricing.terms import Pricing, SlaTarget
from raas.core.pricing.usage import Usage

__all__ = ["adjust", "check_whole_minor_units"]

_METRIC_WORDS = {
    "resolution_rate": "resolution rate",
    "p95_latency_ms": "p95 latency (ms)",
    "csat": "CSAT",
}


def check_whole_minor_units(amount: Decimal, field: str, currency: str) -> None:
    """Refuse a fixed amount (minimum, cap, balance) that is not a whole number of the
    currency's minor units: a line computed from it would need a second rounding."""
    try:
        to_minor_units(amount, currency)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


def _add(left: Decimal, right: Decimal) -> Decimal:
    with decimal.localcontext(EXACT):
        return left + right


def _one(
    kind: Literal["minimum_true_up", "cap", "prepaid_drawdown"],
    description: str,
    amount: Decimal,
    basis: dict[str, Decimal | int],
    currency: str,
    rounding: Rounding,
) -> PricedLine:
    # A fixed adjustment is one unit at its own amount, so that quantity x unit price = amount
    # holds on every line; the amount is already whole minor units.
    return priced_line(
        kind,
        description,
        1,
        amount,
        currency=currency,
        rounding=rounding,
        basis=basis,
    )


def _minimum_true_up(
    pricing: Pricing, usage: Usage, subtotal: Decimal, currency: str, rounding: Rounding
) -> PricedLine | None:
    minimum = pricing.minimum
    prior = usage.commitment_prior_subtotals
    if minimum is None:
        if prior:
            raise ValueError(
                "usage.commitment_prior_subtotals is given, but the contract has no minimum "
                f"commitment (found {len(prior)} subtotals)"
            )
        return None
    if len(prior) > minimum.periods - 1:
        raise ValueError(
            f"usage.commitment_prior_subtotals must hold at most {minimum.periods - 1} earlier "
            f"periods of the commitment's run of {minimum.periods}, found {len(prior)}"
        )
    if len(prior) < minimum.periods - 1:
        return None  # not the last period of the run: nothing to true up yet
    with decimal.localcontext(EXACT):
        prior_total = sum(prior, Decimal(0))
        counted = prior_total + subtotal
        shortfall = minimum.amount - counted
    if shortfall <= 0:
        return None
    over = f" over {minimum.periods} periods" if minimum.periods > 1 else ""
    return _one(
        "minimum_true_up",
        f"Minimum commitment of {grouped(minimum.amount)}{over}: true-up",
        shortfall,
        {
            "minimum": minimum.amount,
            "periods": minimum.periods,
            "prior_subtotals": prior_total,
            "subtotal": subtotal,
            "counted": counted,
        },
        currency,
        rounding,
    )


def _cap(
    pricing: Pricing, running: Decimal, currency: str, rounding: Rounding
) -> PricedLine | None:
    if pricing.cap is None or running <= pricing.cap.amount:
        return None
    with decimal.localcontext(EXACT):
        excess = running - pricing.cap.amount
    return _one(
        "cap",
        f"Cap of {grouped(pricing.cap.amount)} per period",
        -excess,
        {"cap": pricing.cap.amount, "before_cap": running},
        currency,
        rounding,
    )


def _measured(target: SlaTarget, usage: Usage) -> Decimal:
    value: Decimal | None = getattr(usage.sla, target.metric)
    if value is None:
        raise ValueError(
            f"usage.sla.{target.metric} is required by the contract's SLA target on "
            f"{target.metric}, found none"
        )
    return value


def _sla_credit(
    targets: Sequence[SlaTarget], usage: Usage, running: Decimal, currency: str, rounding: Rounding
) -> PricedLine | None:
    missed = [(target, _measured(target, usage)) for target in targets]
    missed = [(target, value) for target, value in missed if not target.is_met(value)]
    if not missed:
        return None
    basis: dict[str, Decimal | int] = {"base": running}
    parts = []
    with decimal.localcontext(EXACT):
        rate = sum((target.credit for target, _ in missed), Decimal(0))
    for target, value in missed:
        goal = target.target
        assert goal is not None
        basis[f"{target.metric}.measured"] = value
        basis[f"{target.metric}.target"] = goal
        basis[f"{target.metric}.credit"] = target.credit
        side = "below" if target.at_least is not None else "above"
        parts.append(
            f"{_METRIC_WORDS[target.metric]} {value} {side} {goal} ({percent(target.credit)})"
        )
    basis["credit"] = rate
    line = priced_line(
        "sla_credit",
        "SLA credit for missed targets: " + "; ".join(parts),
        running,
        -rate,
        currency=currency,
        rounding=rounding,
        basis=basis,
    )
    # rate <= 1 (checked by Pricing) and `running` is whole minor units, so no rounding rule
    # can take the credit past what is due.
    assert -line.amount <= running, (line.amount, running)
    return line


def _prepaid_drawdown(
    pricing: Pricing, usage: Usage, running: Decimal, currency: str, rounding: Rounding
) -> tuple[PricedLine | None, Decimal | None]:
    balance = usage.prepaid_balance
    if pricing.prepaid is None:
        if balance is not None:
            raise ValueError(
                f"usage.prepaid_balance is given ({balance}), but the contract has no prepaid "
                "credits (no pricing.prepaid)"
            )
        return None, None
    if balance is None:
        raise ValueError(
            "usage.prepaid_balance is required when the contract states pricing.prepaid: the "
            "credit left from earlier periods (raas.core.prepaid)"
        )
    drawn = min(balance, max(running, Decimal(0)))
    with decimal.localcontext(EXACT):
        after = balance - drawn
    after = quantize(after, currency, rounding)  # whole minor units already; fixes the exponent
    if drawn <= 0:
        return None, after
    return (
        _one(
            "prepaid_drawdown",
            f"Prepaid credits drawn: {grouped(drawn)} of {grouped(balance)}",
            -drawn,
            {"balance_before": balance, "drawn": drawn, "balance_after": after},
            currency,
            rounding,
        ),
        after,
    )


def adjust(
    pricing: Pricing, usage: Usage, subtotal: Decimal, currency: str, rounding: Rounding
) -> tuple[list[PricedLine], Decimal | None]:
    """The adjustment lines for a period whose charges came to `subtotal` (whole minor units),
    in the order of this module's docstring, and the prepaid balance left after them (None when
    the contract has no prepaid credits)."""
    if pricing.minimum is not None:
        check_whole_minor_units(pricing.minimum.amount, "pricing.minimum.amount", currency)
    if pricing.cap is not None:
        check_whole_minor_units(pricing.cap.amount, "pricing.cap.amount", currency)
    if pricing.prepaid is not None:
        check_whole_minor_units(pricing.prepaid.credit, "pricing.prepaid.credit", currency)
    if usage.prepaid_balance is not None:
        check_whole_minor_units(usage.prepaid_balance, "usage.prepaid_balance", currency)
    for index, prior in enumerate(usage.commitment_prior_subtotals):
        check_whole_minor_units(prior, f"usage.commitment_prior_subtotals[{index}]", currency)

    lines: list[PricedLine] = []
    running = subtotal

    def apply(line: PricedLine | None) -> None:
        nonlocal running
        if line is not None:
            lines.append(line)
            running = _add(running, line.amount)

    apply(_minimum_true_up(pricing, usage, subtotal, currency, rounding))
    apply(_cap(pricing, running, currency, rounding))
    if pricing.sla:
        apply(_sla_credit(pricing.sla, usage, running, currency, rounding))
    drawdown, balance = _prepaid_drawdown(pricing, usage, running, currency, rounding)
    apply(drawdown)
    assert running >= 0, f"adjustments took the total below zero: {running}"
    return lines, balance

"""Priced lines: what pricing gives the invoice, each with the figures it was computed from.

A line's amount is quantity x unit price, rounded once to the currency's minor units by the
contract's rule; `basis` holds the figures behind the quantity and the price, so that a buyer
can redo the arithmetic without the vendor's help.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from decimal import Decimal
from itertools import groupby
from typing import Literal

import msgspec

from raas.core.money import Rounding, quantize
from raas.core.pricing.figures import EXACT

LineKind = Literal[
    "outcome",
    "tier",
    "package",
    "package_overage",
    "accuracy_tier",
    "business_share",
    "uplift_share",
    "savings_share",
    "minimum_true_up",
    "cap",
    "sla_credit",
    "prepaid_drawdown",
]
# Lines that charge for what the period measured; the others adjust their subtotal.
CHARGE_KINDS: tuple[LineKind, ...] = (
    "outcome",
    "tier",
    "package",
    "package_overage",
    "accuracy_tier",
    "business_share",
    "uplift_share",
    "savings_share",
)
ADJUSTMENT_KINDS: tuple[LineKind, ...] = (
    "minimum_true_up",
    "cap",
    "sla_credit",
    "prepaid_drawdown",
)


class PricedLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of an invoice: `amount` = quantity x unit_price rounded to the currency's minor
    units by the contract's rule. Credits (cap, SLA credit, prepaid drawdown) have a negative
    unit price and amount. `episodes` are the episodes behind the quantity, sorted."""

    kind: LineKind
    description: str
    quantity: int | Decimal  # int when it counts things (outcomes, blocks, orders)
    unit_price: Decimal
    amount: Decimal
    episodes: tuple[str, ...] = ()
    basis: dict[str, Decimal] = {}


class PricedPeriod(msgspec.Struct, frozen=True, kw_only=True):
    """A period priced: the lines (charges in contract order, then adjustments in their fixed
    order), the subtotal of the charges, the total (exactly the sum of all lines), and the
    prepaid balance left after the drawdown (None when the contract has no prepaid credits)."""

    lines: tuple[PricedLine, ...]
    subtotal: Decimal
    total: Decimal
    prepaid_balance: Decimal | None = None


def priced_line(
    kind: LineKind,
    description: str,
    quantity: int | Decimal,
    unit_price: Decimal,
    *,
    currency: str,
    rounding: Rounding,
    episodes: Iterable[str] = (),
    basis: Mapping[str, Decimal | int] | None = None,
) -> PricedLine:
    """A line whose amount is quantity x unit price, computed exactly and rounded once."""
    with decimal.localcontext(EXACT):
        exact = Decimal(quantity) * unit_price
    return PricedLine(
        kind=kind,
        description=description,
        quantity=quantity,
        unit_price=unit_price,
        amount=quantize(exact, currency, rounding),
        # Sorted, each once (two orders can share an episode). Sorting first and dropping
        # neighbours is linear on the already sorted lists most lines get.
        episodes=tuple(episode for episode, _ in groupby(sorted(episodes))),
        basis={name: Decimal(value) for name, value in (basis or {}).items()},
    )


def sum_amounts(lines: Iterable[PricedLine]) -> Decimal:
    """The exact sum of the lines' amounts (already whole minor units, so no rounding)."""
    total = Decimal(0)
    with decimal.localcontext(EXACT):
        for line in lines:
            total += line.amount
    return total

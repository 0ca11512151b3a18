"""Pricing a period: the charges in contract order, their subtotal, then the adjustments in
their fixed order, and a total that is exactly the sum of the lines. Pure."""

from __future__ import annotations

from raas.core.money import ROUNDING_MODES, Rounding, minor_units, quantize
from raas.core.pricing.adjustments import adjust
from raas.core.pricing.lines import PricedLine, PricedPeriod, sum_amounts
from raas.core.pricing.models import price_charge
from raas.core.pricing.terms import Pricing
from raas.core.pricing.usage import Usage

__all__ = ["price", "price_period"]


def price_period(pricing: Pricing, usage: Usage, currency: str, rounding: Rounding) -> PricedPeriod:
    """The period's lines, subtotal, total and the prepaid balance left after it.

    `currency` is an ISO 4217 code (its minor units decide every line's decimal places) and
    `rounding` the contract's rule, applied once per line. Raises ValueError for an unknown
    currency or rounding, a fixed amount (minimum, cap, balance) that is not whole minor units
    of the currency, or usage that a charge needs and the period did not measure."""
    minor_units(currency)  # refuses an unknown currency before any line is built
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"rounding must be one of {list(ROUNDING_MODES)}, found {rounding!r}")
    charges = [
        line
        for charge in pricing.charges
        for line in price_charge(charge, usage, currency, rounding)
    ]
    subtotal = sum_amounts(charges)
    adjustments, balance = adjust(pricing, usage, subtotal, currency, rounding)
    lines = (*charges, *adjustments)
    total = sum_amounts(lines)
    # Each line is whole minor units, so their sum is too: the total needs no rounding of its own.
    assert total == quantize(total, currency, rounding), total
    assert total >= 0, total
    return PricedPeriod(lines=lines, subtotal=subtotal, total=total, prepaid_balance=balance)


def price(pricing: Pricing, usage: Usage, currency: str, rounding: Rounding) -> list[PricedLine]:
    """The period's invoice lines: `price_period(...).lines` as a list."""
    return list(price_period(pricing, usage, currency, rounding).lines)

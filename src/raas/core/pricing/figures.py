"""Checks and exact arithmetic for the figures in pricing terms and usage.

Every check raises TypeError (a wrong type: a float where a Decimal belongs) or ValueError (a
wrong value), naming the field and the value found.
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal
from typing import Final

# Bounds far beyond any real figure, and small enough that every product and sum of them stays
# exact in `EXACT` (the same bounds as the contract's unit prices).
PRICE_EXCLUSIVE_MAX: Final = Decimal(10) ** 12
AMOUNT_EXCLUSIVE_MAX: Final = Decimal(10) ** 15  # order values, balances, minimums, caps
WEIGHT_EXCLUSIVE_MAX: Final = Decimal(10) ** 6
PLACES_MAX: Final = 12
COUNT_MAX: Final = 10**12
# Accuracy thresholds and SLA targets are stated figures like 0.98 or 4.2, never long fractions.
THRESHOLD_PLACES_MAX: Final = 6

# Pricing only adds, subtracts and multiplies bounded figures, so every result is exact: a
# rounding anywhere but in quantize would be a second, unstated rounding rule, and is trapped.
EXACT: Final = decimal.Context(
    prec=200,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow, decimal.Inexact],
)

_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")


def decimal_places(value: Decimal) -> int:
    """Digits after the decimal point as written (0.990 has 3)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int), "only finite figures have decimal places"
    return max(-exponent, 0)


def check_decimal(
    value: object,
    field: str,
    *,
    maximum_exclusive: Decimal,
    places: int = PLACES_MAX,
) -> Decimal:
    """`value`, when it is a finite Decimal with at most `places` decimal places, below
    `maximum_exclusive`, and not negative."""
    if isinstance(value, float) or not isinstance(value, Decimal):
        raise TypeError(f"{field} must be a Decimal, found {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise ValueError(f"{field} must be a finite Decimal, found {value}")
    # -0 compares equal to 0 but prints as -0.00 on an invoice.
    if value.is_signed():
        raise ValueError(f"{field} must not be negative, found {value}")
    if abs(value) >= maximum_exclusive:
        raise ValueError(f"{field} must be below {_power_of_ten(maximum_exclusive)}, found {value}")
    if decimal_places(value) > places:
        raise ValueError(f"{field} must have at most {places} decimal places, found {value}")
    return value


def _power_of_ten(bound: Decimal) -> str:
    # 10^12 reads better than 1E+12 or 1000000000000 in an error message.
    exponent = bound.adjusted()
    return f"10^{exponent}" if bound == Decimal(10) ** exponent and exponent > 1 else str(bound)


def check_price(value: object, field: str) -> Decimal:
    """A unit price: non-negative, below 10^12, at most 12 decimal places."""
    return check_decimal(value, field, maximum_exclusive=PRICE_EXCLUSIVE_MAX)


def check_amount(value: object, field: str) -> Decimal:
    """A money amount that is not a unit price (order value, balance): below 10^15."""
    return check_decimal(value, field, maximum_exclusive=AMOUNT_EXCLUSIVE_MAX)


def check_fraction(value: object, field: str, places: int = PLACES_MAX) -> Decimal:
    """A share or a rate, from 0 to 1 inclusive (0.08 for 8%)."""
    checked = check_decimal(value, field, maximum_exclusive=AMOUNT_EXCLUSIVE_MAX, places=places)
    if checked > 1:
        raise ValueError(f"{field} must be between 0 and 1 (1 is 100%), found {value}")
    return checked


def check_count(value: object, field: str, minimum: int = 0) -> int:
    """A whole number from `minimum` to 10^12."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int, found {type(value).__name__} {value!r}")
    if not minimum <= value <= COUNT_MAX:
        raise ValueError(f"{field} must be an integer {minimum}..10^12, found {value}")
    return value


def check_name(value: object, field: str) -> str:
    """An outcome kind as the judge names it: lower case letters, digits and underscores."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(
            f"{field} must be a name like confirmed_resolution ([a-z][a-z0-9_]*), found {value!r}"
        )
    return value


def check_identifier(value: object, field: str) -> str:
    """An episode or order id: non-empty text."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be non-empty text, found {value!r}")
    return value


def words(name: str) -> str:
    """An outcome kind in words for a line's description: confirmed_resolution -> confirmed
    resolution."""
    return name.replace("_", " ")


def percent(fraction: Decimal) -> str:
    """A share as a percentage without trailing zeros: 0.0005 -> 0.05%, 0.08 -> 8%."""
    with decimal.localcontext(EXACT):
        value = fraction * 100
    text = f"{value.normalize():f}"
    return f"{text}%"


def grouped(value: Decimal | int) -> str:
    """A figure with thousands separators, as written (1000 -> 1,000; 1234.50 -> 1,234.50)."""
    return f"{value:,}" if isinstance(value, int) else f"{value:,f}"

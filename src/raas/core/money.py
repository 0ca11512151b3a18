"""Exact money: ISO 4217 minor units, and rounding an amount to them by a contract's rule.

Amounts are `Decimal` (or integers of minor units) from end to end; a float is refused on entry.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Final, Literal

Rounding = Literal["half_even", "half_up", "down"]

ROUNDING_MODES: Final[dict[str, str]] = {
    "half_even": decimal.ROUND_HALF_EVEN,  # banker's rounding: no upward drift over many lines
    "half_up": decimal.ROUND_HALF_UP,  # what most people do by hand: 0.005 -> 0.01
    "down": decimal.ROUND_DOWN,  # towards zero: the buyer never pays a fraction it did not owe
}

# Digits after the decimal point of each ISO 4217 currency in circulation (list of 2025). Fund
# codes (BOV, CLF, USN...), precious metals and other X-codes without minor units are left out:
# nobody is invoiced in them. XAF, XOF, XPF, XCD and XCG are real currencies and are kept.
MINOR_UNITS: Final[dict[str, int]] = {
    "AED": 2, "AFN": 2, "ALL": 2, "AMD": 2, "ANG": 2, "AOA": 2, "ARS": 2, "AUD": 2, "AWG": 2,
    "AZN": 2, "BAM": 2, "BBD": 2, "BDT": 2, "BGN": 2, "BHD": 3, "BIF": 0, "BMD": 2, "BND": 2,
    "BOB": 2, "BRL": 2, "BSD": 2, "BTN": 2, "BWP": 2, "BYN": 2, "BZD": 2, "CAD": 2, "CDF": 2,
    "CHF": 2, "CLP": 0, "CNY": 2, "COP": 2, "CRC": 2, "CUP": 2, "CVE": 2, "CZK": 2, "DJF": 0,
    "DKK": 2, "DOP": 2, "DZD": 2, "EGP": 2, "ERN": 2, "ETB": 2, "EUR": 2, "FJD": 2, "FKP": 2,
    "GBP": 2, "GEL": 2, "GHS": 2, "GIP": 2, "GMD": 2, "GNF": 0, "GTQ": 2, "GYD": 2, "HKD": 2,
    "HNL": 2, "HTG": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "IQD": 3, "IRR": 2, "ISK": 0,
    "JMD": 2, "JOD": 3, "JPY": 0, "KES": 2, "KGS": 2, "KHR": 2, "KMF": 0, "KPW": 2, "KRW": 0,
    "KWD": 3, "KYD": 2, "KZT": 2, "LAK": 2, "LBP": 2, "LKR": 2, "LRD": 2, "LSL": 2, "LYD": 3,
    "MAD": 2, "MDL": 2, "MGA": 2, "MKD": 2, "MMK": 2, "MNT": 2, "MOP": 2, "MRU": 2, "MUR": 2,
    "MVR": 2, "MWK": 2, "MXN": 2, "MYR": 2, "MZN": 2, "NAD": 2, "NGN": 2, "NIO": 2, "NOK": 2,
    "NPR": 2, "NZD": 2, "OMR": 3, "PAB": 2, "PEN": 2, "PGK": 2, "PHP": 2, "PKR": 2, "PLN": 2,
    "PYG": 0, "QAR": 2, "RON": 2, "RSD": 2, "RUB": 2, "RWF": 0, "SAR": 2, "SBD": 2, "SCR": 2,
    "SDG": 2, "SEK": 2, "SGD": 2, "SHP": 2, "SLE": 2, "SOS": 2, "SRD": 2, "SSP": 2, "STN": 2,
    "SVC": 2, "SYP": 2, "SZL": 2, "THB": 2, "TJS": 2, "TMT": 2, "TND": 3, "TOP": 2, "TRY": 2,
    "TTD": 2, "TWD": 2, "TZS": 2, "UAH": 2, "UGX": 0, "USD": 2, "UYU": 2, "UZS": 2, "VED": 2,
    "VES": 2, "VND": 0, "VUV": 0, "WST": 2, "XAF": 0, "XCD": 2, "XCG": 2, "XOF": 0, "XPF": 0,
    "YER": 2, "ZAR": 2, "ZMW": 2, "ZWG": 2,
}  # fmt: skip

# Digits kept beyond what an amount needs, so that quantize never runs out of precision.
_PRECISION_MARGIN_DIGITS: Final = 4


def is_known_currency(currency: str) -> bool:
    """True when `currency` is an ISO 4217 code in `MINOR_UNITS` (upper case, as written)."""
    return currency in MINOR_UNITS


def minor_units(currency: str) -> int:
    """Digits after the decimal point in `currency` (USD 2, JPY 0, KWD 3)."""
    try:
        return MINOR_UNITS[currency]
    except KeyError:
        raise ValueError(
            f"unknown currency {currency!r}: expected an ISO 4217 code such as USD, EUR or JPY"
        ) from None


def _require_finite_decimal(amount: Decimal) -> None:
    # Only Decimal: a float has already lost the exact amount, and an int or bool here is a
    # sign of a caller mixing up amounts and counts.
    if not isinstance(amount, Decimal):
        raise TypeError(f"amount must be a Decimal, found {type(amount).__name__} {amount!r}")
    if not amount.is_finite():
        raise ValueError(f"amount must be a finite Decimal, found {amount}")


def _context_for(amount: Decimal, places: int, rounding: str) -> decimal.Context:
    # Enough digits for every digit of the amount and of its minor units: under the default
    # 28-digit context quantize raises InvalidOperation on large amounts, and scaleb rounds.
    integer_digits = max(amount.adjusted() + 1, 1)
    coefficient_digits = len(amount.as_tuple().digits)
    precision = max(28, integer_digits + places, coefficient_digits)
    return decimal.Context(
        prec=precision + _PRECISION_MARGIN_DIGITS,
        rounding=rounding,
        traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
    )


def quantize(amount: Decimal, currency: str, rounding: Rounding) -> Decimal:
    """`amount` rounded to the minor unit of `currency` by `rounding`, with exactly that many
    decimal places (USD: 2, so Decimal("1.5") gives Decimal("1.50")). A result of zero is
    always positive zero."""
    _require_finite_decimal(amount)
    try:
        mode = ROUNDING_MODES[rounding]
    except KeyError:
        expected = ", ".join(ROUNDING_MODES)
        raise ValueError(f"unknown rounding {rounding!r}: expected one of {expected}") from None
    places = minor_units(currency)
    unit = Decimal(1).scaleb(-places)
    rounded = amount.quantize(unit, context=_context_for(amount, places, mode))
    # -0.004 rounds to -0.00, which equals 0.00 but prints (and hashes as text) differently.
    return rounded.copy_abs() if rounded.is_zero() else rounded


def to_minor_units(amount: Decimal, currency: str) -> int:
    """`amount` as an integer count of minor units (USD 12.34 -> 1234).

    The amount must already be a whole number of minor units (quantize it first): silently
    rounding here would hide a second, unstated rounding rule.
    """
    _require_finite_decimal(amount)
    places = minor_units(currency)
    context = _context_for(amount, places, decimal.ROUND_HALF_EVEN)
    scaled = amount.scaleb(places, context=context)
    if scaled != scaled.to_integral_value(context=context):
        raise ValueError(
            f"{amount} {currency} is not a whole number of minor units ({places} decimal "
            "places); quantize it with the contract's rounding first"
        )
    return int(scaled)


def from_minor_units(units: int, currency: str) -> Decimal:
    """An integer count of minor units as a Decimal amount (1234 USD cents -> Decimal("12.34"))."""
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError(f"units must be an int, found {type(units).__name__} {units!r}")
    return Decimal(units).scaleb(-minor_units(currency))

"""Money: minor units per ISO 4217 and rounding to them. What would break: a wrong number of
decimals for a currency (JPY billed in cents, KWD in cents instead of fils), a rounding mode
mapped to the wrong rule, a float slipping in, or a large amount silently losing digits."""

from __future__ import annotations

from decimal import MAX_PREC, Context, Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from raas.core.money import (
    MINOR_UNITS,
    ROUNDING_MODES,
    from_minor_units,
    is_known_currency,
    minor_units,
    quantize,
    to_minor_units,
)

CURRENCIES = ["USD", "EUR", "GBP", "JPY", "KRW", "KWD", "BHD", "CHF", "INR", "CNY", "BRL", "CLP"]


def test_minor_units_of_the_common_currencies() -> None:
    expected = {
        "USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KRW": 0, "KWD": 3, "BHD": 3, "CHF": 2, "INR": 2,
        "CNY": 2, "BRL": 2, "CAD": 2, "AUD": 2, "MXN": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2,
        "ZAR": 2, "SGD": 2, "HKD": 2, "NZD": 2, "TRY": 2, "ILS": 2, "AED": 2, "SAR": 2, "THB": 2,
        "IDR": 2, "MYR": 2, "PHP": 2, "VND": 0, "CLP": 0, "ISK": 0, "HUF": 2, "CZK": 2, "RON": 2,
        "JOD": 3, "OMR": 3, "TND": 3, "IQD": 3, "LYD": 3, "TWD": 2, "COP": 2, "ARS": 2, "EGP": 2,
        "NGN": 2, "KES": 2, "PKR": 2, "UGX": 0, "XOF": 0, "XAF": 0, "XPF": 0, "PYG": 0,
    }  # fmt: skip
    for currency, places in expected.items():
        assert minor_units(currency) == places, currency
    assert len(MINOR_UNITS) >= 150
    assert all(len(code) == 3 and code.isupper() and code.isalpha() for code in MINOR_UNITS)
    assert set(MINOR_UNITS.values()) == {0, 2, 3}


def test_unknown_currencies_are_refused_by_name() -> None:
    for code in ["usd", "XXX", "XAU", "US", ""]:
        assert not is_known_currency(code)
        with pytest.raises(ValueError, match="unknown currency"):
            minor_units(code)
    with pytest.raises(ValueError, match="ISO 4217"):
        quantize(Decimal(1), "ABC", "half_even")


@pytest.mark.parametrize(
    ("amount", "currency", "rounding", "expected"),
    [
        ("0.125", "USD", "half_even", "0.12"),
        ("0.135", "USD", "half_even", "0.14"),
        ("0.125", "USD", "half_up", "0.13"),
        ("0.129", "USD", "down", "0.12"),
        ("-0.125", "USD", "half_even", "-0.12"),
        ("-0.125", "USD", "half_up", "-0.13"),
        ("-1.239", "USD", "down", "-1.23"),
        ("1.5", "USD", "half_even", "1.50"),
        ("100.5", "JPY", "half_even", "100"),
        ("101.5", "JPY", "half_even", "102"),
        ("100.5", "JPY", "half_up", "101"),
        ("100.99", "KRW", "down", "100"),
        ("1.2345", "KWD", "half_even", "1.234"),
        ("1.2345", "BHD", "half_up", "1.235"),
        ("-0.004", "USD", "half_even", "0.00"),  # never -0.00
        ("12345678901234567890123456789.995", "USD", "half_up", "12345678901234567890123456790.00"),
    ],
)
def test_quantize_examples(amount: str, currency: str, rounding: str, expected: str) -> None:
    result = quantize(Decimal(amount), currency, rounding)  # type: ignore[arg-type]
    assert str(result) == expected


def test_quantize_refuses_floats_non_finite_amounts_and_unknown_modes() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        quantize(0.1, "USD", "half_even")  # type: ignore[arg-type]
    for special in ["NaN", "Infinity", "-Infinity", "sNaN"]:
        with pytest.raises(ValueError, match="finite"):
            quantize(Decimal(special), "USD", "half_even")
    with pytest.raises(ValueError, match="unknown rounding"):
        quantize(Decimal(1), "USD", "ceiling")  # type: ignore[arg-type]


def test_minor_units_round_trip() -> None:
    assert to_minor_units(Decimal("12.34"), "USD") == 1234
    assert to_minor_units(Decimal("12.340000"), "USD") == 1234
    assert to_minor_units(Decimal("-0.01"), "EUR") == -1
    assert to_minor_units(Decimal("500"), "JPY") == 500
    assert to_minor_units(Decimal("1.234"), "KWD") == 1234
    assert to_minor_units(Decimal("1E+30"), "USD") == 10**32
    assert from_minor_units(1234, "USD") == Decimal("12.34")
    assert str(from_minor_units(1234, "KWD")) == "1.234"
    assert str(from_minor_units(-5, "JPY")) == "-5"
    with pytest.raises(ValueError, match="whole number of minor units"):
        to_minor_units(Decimal("0.125"), "USD")
    with pytest.raises(ValueError, match="whole number of minor units"):
        to_minor_units(Decimal("1." + "0" * 40 + "1"), "USD")  # beyond 28 digits, still seen
    with pytest.raises(TypeError):
        to_minor_units(12.34, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_minor_units(True, "USD")


amounts = st.decimals(
    min_value=Decimal("-1e15"), max_value=Decimal("1e15"), allow_nan=False, allow_infinity=False
)
currencies = st.sampled_from(CURRENCIES)
modes = st.sampled_from(sorted(ROUNDING_MODES))


@given(amounts, currencies, modes)
def test_quantize_is_idempotent(amount: Decimal, currency: str, rounding: str) -> None:
    once = quantize(amount, currency, rounding)  # type: ignore[arg-type]
    assert quantize(once, currency, rounding) == once  # type: ignore[arg-type]
    assert once.as_tuple().exponent == -minor_units(currency)


@given(amounts, currencies, modes)
@example(Decimal("7629394531.24999999999999999999999999999950000083745864776"), "USD", "down")
def test_quantize_stays_within_its_rounding_bound(
    amount: Decimal, currency: str, rounding: str
) -> None:
    result = quantize(amount, currency, rounding)  # type: ignore[arg-type]
    unit = Decimal(1).scaleb(-minor_units(currency))
    # Exact: in the default 28 digits, 0.00999...9995 (an amount of 40 digits) rounds to 0.01.
    error = result.fma(1, amount.copy_negate(), Context(prec=MAX_PREC)).copy_abs()
    if rounding == "down":
        assert error < unit
        assert abs(result) <= abs(amount)  # towards zero: never more than owed
    else:
        assert error <= unit / 2


@given(amounts, currencies, modes)
def test_quantize_preserves_sign(amount: Decimal, currency: str, rounding: str) -> None:
    result = quantize(amount, currency, rounding)  # type: ignore[arg-type]
    if result.is_zero():
        assert not result.is_signed()
    else:
        assert (result > 0) == (amount > 0)


@given(amounts, currencies)
def test_half_modes_differ_only_on_exact_halves(amount: Decimal, currency: str) -> None:
    even = quantize(amount, currency, "half_even")
    up = quantize(amount, currency, "half_up")
    if even != up:
        unit = Decimal(1).scaleb(-minor_units(currency))
        assert abs(amount - even) == unit / 2 == abs(amount - up)


@given(st.integers(-(10**18), 10**18), currencies)
def test_minor_units_conversions_are_inverse(units: int, currency: str) -> None:
    amount = from_minor_units(units, currency)
    assert to_minor_units(amount, currency) == units
    assert quantize(amount, currency, "half_even") == amount

"""Prepaid credit over time (`raas.core.prepaid`): what earlier invoices drew (their drawdown
lines and corrections of them), the balance each version starts from (a top-up raises it), and
refusals that name the period or the version. What would break: a credit drawn twice or past
its amount, a missing earlier invoice taken as drawing nothing, a top-up lost in a split period.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_minimum_runs import contract_text, invoice, line, months

from raas.core.contract import Contract, parse_contract
from raas.core.invoice import Correction, InvoiceLine
from raas.core.periods import Period
from raas.core.prepaid import drawn, prepaid_drawn_before
from raas.core.pricing import Usage
from raas.core.pricing.adjustments import adjust
from raas.core.settle import Settlement, SettlementReport
from raas.core.versions import Subtotals, settle_versions, starting_balance
from raas.errors import ContractError, SettlementError


def contract(
    version: int = 1, effective_from: str = "2026-11-01", credit: str | None = "3.00"
) -> Contract:
    return parse_contract(text(version, effective_from, credit))


def text(version: int = 1, effective_from: str = "2026-11-01", credit: str | None = "3.00") -> str:
    terms = f"  prepaid: {{credit: {credit}}}\n" if credit is not None else ""
    return contract_text(version, effective_from, terms)


def correction(invoice_id: str, index: int | None, amount: str, outcome: str) -> InvoiceLine:
    corrects = Correction(invoice=invoice_id, line=index, reason="late_events")
    value = Decimal(amount)
    return InvoiceLine(
        outcome=outcome,
        description="correction",
        quantity=1,
        unit_price=value,
        amount=value,
        episodes=(),
        kind="adjustment",
        corrects=corrects,
    )


def test_the_credit_is_stated_as_a_mapping_and_true_is_refused_with_the_way_out() -> None:
    assert contract().effective_pricing().prepaid is not None
    with pytest.raises(ContractError) as raised:
        parse_contract(text().replace("{credit: 3.00}", "true"))
    assert "pricing.prepaid" in str(raised.value)
    assert "credit" in str(raised.value)


def test_earlier_invoices_draw_with_the_corrections_of_their_drawdowns() -> None:
    nov, dec, jan = months(3)
    november = invoice(
        nov, line("outcome", "2.00", "ai_resolution"), line("prepaid_drawdown", "-2.00")
    )
    # December's invoice corrects November's drawdown (late events drew 0.50 more there) and
    # one of its charges; only the drawdown's correction is credit drawn.
    fixes = (
        correction(november.id, 1, "-0.50", "prepaid_drawdown"),
        correction(november.id, 0, "0.50", "ai_resolution"),
    )
    december = invoice(
        dec,
        line("outcome", "3.00", "ai_resolution"),
        line("prepaid_drawdown", "-0.50"),
        adjustments=fixes,
    )
    assert drawn(november) == Decimal("2.00")
    assert drawn(november, fixes) == Decimal("2.50")
    assert prepaid_drawn_before([contract()], nov, []) == Decimal(0)
    assert prepaid_drawn_before([contract()], dec, [november]) == Decimal("2.00")
    assert prepaid_drawn_before([contract()], jan, [december, november]) == Decimal("3.00")
    # Corrections the invoice being settled carries count too (a drawdown line November lacked).
    added = correction(november.id, None, "-0.25", "prepaid_drawdown")
    assert prepaid_drawn_before(
        [contract()], jan, [december, november], corrections=(added,)
    ) == Decimal("3.25")
    assert prepaid_drawn_before([contract(credit=None)], jan, [december, november]) is None


def test_a_missing_earlier_invoice_is_refused_unless_that_period_could_not_draw() -> None:
    _, dec, jan = months(3)
    with pytest.raises(SettlementError) as raised:
        prepaid_drawn_before([contract()], jan, [invoice(dec)])
    assert "no invoice was issued for the earlier period 2026-11" in str(raised.value)
    assert "settle 2026-11 first" in str(raised.value)
    # Prepaid credit bought from December on: November could not draw, so it is not needed.
    later = [contract(credit=None), contract(2, "2026-12-01", "3.00")]
    assert prepaid_drawn_before(later, dec, []) == Decimal(0)
    with pytest.raises(SettlementError, match="earlier period 2026-12"):
        prepaid_drawn_before(later, jan, [])


def test_a_top_up_raises_the_credit_and_a_lower_credit_is_refused() -> None:
    nov, dec, _ = months(3)
    topped = [contract(), contract(2, "2026-12-01", "5.00")]
    spent = [invoice(nov, line("prepaid_drawdown", "-3.00"))]
    drawn_before = prepaid_drawn_before(topped, dec, spent)
    assert starting_balance(topped[1], drawn_before, dec) == Decimal("2.00")
    lower = [contract(), contract(2, "2026-12-01", "2.00")]
    with pytest.raises(SettlementError, match=r"v2 states prepaid credit 2\.00, less than v1's"):
        prepaid_drawn_before(lower, dec, spent)
    with pytest.raises(SettlementError, match="what the periods before 2026-12 drew"):
        starting_balance(topped[1], None, dec)


def test_a_top_up_inside_a_period_reaches_its_later_part() -> None:
    """v1 (3.00) until 15 November, v2 (5.00) after: each part draws 2.00; the second starts
    from 5.00 less the 2.00 the first drew."""
    (nov,) = months(1)
    versions = [contract(), contract(2, "2026-11-15", "5.00")]
    received: list[Decimal | None] = []

    def settle_one(
        version: Contract, part: Period, moment: datetime, balance: Decimal | None, prior: Subtotals
    ) -> Settlement:
        received.append(balance)
        assert balance is not None
        lines, left = adjust(
            version.effective_pricing(),
            Usage(prepaid_balance=balance),
            Decimal("2.00"),
            "USD",
            "half_even",
        )
        priced = [line("outcome", "2.00", "ai_resolution")]
        priced += [line(each.kind, str(each.amount)) for each in lines]
        made = msgspec.structs.replace(invoice(part, *priced), prepaid_balance=left)
        return Settlement(invoice=made, report=SettlementReport())

    joined = settle_versions(versions, nov, settle_one, prepaid_drawn=Decimal(0)).invoice
    assert received == [Decimal("3.00"), Decimal("3.00")]
    assert joined.prepaid_balance == Decimal("1.00")


@given(
    credit=st.integers(0, 5_000),
    cents=st.lists(st.integers(0, 2_000), min_size=1, max_size=8),
    top_up=st.integers(0, 3_000),
)
def test_balances_never_go_negative_and_drawdowns_add_up_to_at_most_the_credit(
    credit: int, cents: list[int], top_up: int
) -> None:
    """Month by month, each invoice drawn from what the issued ones left (a top-up in the
    third month): the credit pays min(what was charged, what was bought), in charge order."""
    bought = Decimal(credit).scaleb(-2)
    topped = bought + Decimal(top_up).scaleb(-2)
    periods = months(len(cents))
    versions = [contract(credit=str(bought))]
    if len(periods) > 2:
        versions.append(contract(2, periods[2].start.strftime("%Y-%m-%d"), str(topped)))
    issued = []
    charged = Decimal(0)
    for period, amount in zip(periods, cents, strict=True):
        version = max(
            (each for each in versions if each.effective_from_utc() <= period.start),
            key=lambda each: each.version,
        )
        before = prepaid_drawn_before(versions, period, issued)
        balance = starting_balance(version, before, period)
        assert balance is not None and balance >= 0
        subtotal = Decimal(amount).scaleb(-2)
        lines, left = adjust(
            version.effective_pricing(),
            Usage(prepaid_balance=balance),
            subtotal,
            "USD",
            "half_even",
        )
        assert left is not None and 0 <= left <= balance
        issued.append(
            invoice(
                period,
                line("outcome", str(subtotal), "ai_resolution"),
                *(line(each.kind, str(each.amount)) for each in lines),
                version=version.version,
            )
        )
        charged += subtotal
    total_drawn = sum((drawn(each) for each in issued), Decimal(0))
    credit_bought = topped if len(periods) > 2 else bought
    assert 0 <= total_drawn <= credit_bought
    # Each period draws what it can, so the credit runs out only once charges reach it (the
    # top-up counts from the third month: what was charged before it may outrun the credit).
    if len(periods) <= 2 or top_up == 0:
        assert total_drawn == min(charged, credit_bought)

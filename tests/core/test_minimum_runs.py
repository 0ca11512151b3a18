"""Runs of a minimum commitment over several periods (`raas.core.minimum_runs`): which periods
form a run, what its earlier periods count (their issued invoices' charges and the corrections
of them), and refusals that name the period. What would break: a true-up outside a run's last
period, a run counted from the wrong month or across a changed minimum, a cap or credit counted
as spending, a missing invoice taken as zero."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raas.core.contract import Contract, parse_contract
from raas.core.invoice import Correction, Invoice, InvoiceLine, LedgerPoint
from raas.core.minimum_runs import (
    charged,
    commitment_prior_subtotals,
    first_billing_period,
    minimum_of,
)
from raas.core.periods import Period, month_period, next_period
from raas.core.pricing import Usage
from raas.core.pricing.adjustments import adjust
from raas.core.settle import Settlement, SettlementReport
from raas.core.versions import Subtotals, settle_versions
from raas.errors import SettlementError

ZONE = "Europe/Berlin"
NOV = month_period(ZONE, 2026, 11)


def contract(
    version: int = 1,
    effective_from: str = "2026-11-01",
    minimum: str | None = "{amount: 10.00, periods: 3}",
) -> Contract:
    terms = f"  minimum: {minimum}\n" if minimum is not None else ""
    return parse_contract(contract_text(version, effective_from, terms))


def contract_text(version: int, effective_from: str, terms: str) -> str:
    """The contract `committed` at 1.00 per resolution, with these pricing `terms` lines."""
    return (
        f"contract: committed\nversion: {version}\neffective_from: {effective_from}\n"
        "vendor: helpdesk-ai\nbuyer: acme\ncurrency: USD\ntime_zone: Europe/Berlin\n"
        "window: 72h\noutcomes:\n  ai_resolution:\n"
        "    when: ai_answered and not handed_off and not recontact_within(72h)\n"
        "pricing:\n  charges:\n    - model: per_outcome\n"
        "      prices: {ai_resolution: 1.00}\n" + terms
    )


def line(kind: str, amount: str, outcome: str | None = None) -> InvoiceLine:
    value = Decimal(amount)
    return InvoiceLine(
        outcome=outcome or kind,
        description=kind,
        quantity=1,
        unit_price=value,
        amount=value,
        episodes=(),
        kind=kind,
    )


def invoice(
    period: Period,
    *lines: InvoiceLine,
    version: int = 1,
    adjustments: tuple[InvoiceLine, ...] = (),
) -> Invoice:
    return Invoice(
        id=f"committed-v{version}-{period.label}",
        contract="committed",
        contract_version=version,
        vendor="helpdesk-ai",
        buyer="acme",
        currency="USD",
        time_zone=ZONE,
        period=period.label,
        period_start=period.start,
        period_end=period.end,
        as_of=period.end,
        ledger=LedgerPoint(tenant="acme", size=0),
        rounding="half_even per line",
        lines=lines,
        total=sum((each.amount for each in lines), Decimal(0)),
        not_billed={},
        provisional=0,
        adjustments=adjustments,
    )


def months(count: int, start: Period = NOV) -> list[Period]:
    found = [start]
    while len(found) < count:
        found.append(next_period(found[-1]))
    return found


@given(
    periods=st.integers(1, 4),
    count=st.integers(1, 9),
    amount=st.integers(0, 5_000),
    cents=st.lists(st.integers(0, 2_000), min_size=9, max_size=9),
)
def test_each_whole_run_pays_at_least_the_minimum_and_only_its_last_period_trues_up(
    periods: int, count: int, amount: int, cents: list[int]
) -> None:
    version = contract(minimum=f"{{amount: {Decimal(amount).scaleb(-2)}, periods: {periods}}}")
    pricing = version.effective_pricing()
    issued: list[Invoice] = []
    for index, period in enumerate(months(count)):
        subtotal = Decimal(cents[index]).scaleb(-2)
        prior = commitment_prior_subtotals([version], period, issued)
        lines, _ = adjust(
            pricing, Usage(commitment_prior_subtotals=prior), subtotal, "USD", "half_even"
        )
        true_ups = [each for each in lines if each.kind == "minimum_true_up"]
        last = index % periods == periods - 1
        assert len(prior) == (periods - 1 if last else 0)
        if not last:
            assert true_ups == []
        issued.append(
            invoice(
                period,
                line("outcome", str(subtotal), "ai_resolution"),
                *(line("minimum_true_up", str(each.amount)) for each in true_ups),
            )
        )
    for first in range(0, count - periods + 1, periods):
        run = issued[first : first + periods]
        charges = sum((charged(each) for each in run), Decimal(0))
        paid = sum((each.total for each in run), Decimal(0))
        assert paid == max(charges, Decimal(amount).scaleb(-2))


def test_the_run_closing_period_reads_its_earlier_invoices_charges_only() -> None:
    nov, dec, jan = months(3)
    issued = [
        # A cap and an SLA credit adjust the charges; they are not spending.
        invoice(nov, line("outcome", "2.00", "ai_resolution"), line("sla_credit", "-0.10")),
        invoice(dec, line("outcome", "3.00", "ai_resolution"), line("cap", "-1.00")),
    ]
    assert commitment_prior_subtotals([contract()], nov, []) == ()
    assert commitment_prior_subtotals([contract()], dec, issued[:1]) == ()
    assert commitment_prior_subtotals([contract()], jan, issued) == (
        Decimal("2.00"),
        Decimal("3.00"),
    )
    # Another contract's invoices never count.
    other = msgspec.structs.replace(issued[0], contract="other", id="other-v1-2026-11")
    with pytest.raises(SettlementError, match="no invoice was issued for period 2026-11"):
        commitment_prior_subtotals([contract()], jan, [other, issued[1]])


def test_a_missing_earlier_invoice_is_refused_naming_the_period() -> None:
    nov, dec, jan = months(3)
    with pytest.raises(SettlementError) as raised:
        commitment_prior_subtotals([contract()], jan, [invoice(nov, line("outcome", "1.00"))])
    message = str(raised.value)
    assert "period 2026-12" in message and "settle 2026-12 first" in message
    assert "2026-11 to 2027-01" in message
    twice = [invoice(nov), invoice(dec), invoice(dec, version=2)]
    with pytest.raises(SettlementError, match="several invoices"):
        commitment_prior_subtotals([contract(), contract(2, "2026-12-01")], jan, twice)


def test_corrections_of_charges_count_and_corrections_of_adjustments_do_not() -> None:
    nov, dec, jan = months(3)
    first = invoice(nov, line("outcome", "2.00", "ai_resolution"), line("cap", "-0.50"))

    def correction(index: int | None, amount: str, outcome: str) -> InvoiceLine:
        made = line("adjustment", amount, outcome)
        return msgspec.structs.replace(
            made, corrects=Correction(invoice=first.id, line=index, reason="late_events")
        )

    later = invoice(
        dec,
        line("outcome", "1.00", "ai_resolution"),
        adjustments=(
            correction(0, "1.00", "ai_resolution"),  # a late resolution: counts
            correction(1, "-0.25", "cap"),  # the cap's correction: does not
            correction(None, "0.40", "ai_resolution"),  # a charge the invoice did not have
            correction(None, "-0.30", "sla_credit"),  # a credit it did not have: does not
        ),
    )
    assert charged(first, later.adjustments) == Decimal("3.40")
    assert commitment_prior_subtotals([contract()], jan, [first, later]) == (
        Decimal("3.40"),
        Decimal("1.00"),
    )


def test_a_version_with_the_same_minimum_continues_the_run() -> None:
    nov, dec, jan = months(3)
    versions = [contract(), contract(2, "2027-01-01")]
    issued = [invoice(nov, line("outcome", "1.00")), invoice(dec, line("outcome", "2.00"))]
    assert commitment_prior_subtotals(versions, jan, issued) == (Decimal("1.00"), Decimal("2.00"))


def test_a_changed_minimum_ends_the_run_and_starts_a_new_one() -> None:
    nov, dec, jan, feb = months(4)
    versions = [contract(), contract(2, "2026-12-01", "{amount: 20.00, periods: 3}")]
    five = line("outcome", "5.00")
    issued = [invoice(nov), invoice(dec, version=2), invoice(jan, five, version=2)]
    # The first run (November alone) ends without a true-up; the new one is Dec, Jan, Feb.
    assert commitment_prior_subtotals(versions, jan, issued[:2]) == ()
    assert commitment_prior_subtotals(versions, feb, issued) == (Decimal(0), Decimal("5.00"))
    # Dropping the minimum and bringing it back starts afresh as well.
    again = [contract(), contract(2, "2026-12-01", None), contract(3, "2027-01-01")]
    assert minimum_of(again, dec) is None
    assert commitment_prior_subtotals(again, feb, issued) == ()


def test_a_minimum_changed_inside_a_period_is_refused() -> None:
    versions = [contract(), contract(2, "2026-11-15", "{amount: 20.00, periods: 3}")]
    with pytest.raises(SettlementError) as raised:
        minimum_of(versions, NOV)
    message = str(raised.value)
    assert "v2 takes effect 2026-11-15, inside period 2026-11" in message
    assert "from 10.00 over 3 periods to 20.00 over 3 periods" in message
    # A minimum per period may change inside one: each part has its own (as before).
    per_period = [contract(minimum="{amount: 5.00}"), contract(2, "2026-11-15", "{amount: 6}")]
    assert minimum_of(per_period, NOV) == per_period[1].effective_pricing().minimum


def test_runs_count_from_the_first_whole_period_and_need_every_version() -> None:
    late = contract(effective_from="2026-11-10")
    assert first_billing_period([late]).label == "2026-12"
    dec, jan, feb = months(3, month_period(ZONE, 2026, 12))
    assert commitment_prior_subtotals([late], jan, [invoice(dec)]) == ()
    assert commitment_prior_subtotals([late], feb, [invoice(dec), invoice(jan)]) == (
        Decimal(0),
        Decimal(0),
    )
    # Settling with the second version alone would count the runs from its date: refused.
    with pytest.raises(SettlementError, match="issued under v1, which is not among the versions"):
        commitment_prior_subtotals([contract(2, "2027-01-01")], feb, [invoice(dec), invoice(jan)])


def test_a_split_period_closing_the_run_trues_up_in_its_last_part() -> None:
    """Versions that keep the minimum split January; the earlier part's charges count with the
    run's earlier periods, so only the last part trues up, once."""
    nov, dec, jan = months(3)
    versions = [contract(), contract(2, "2027-01-15")]
    received: list[tuple[int, tuple[Decimal, ...]]] = []

    def settle_one(
        version: Contract, part: Period, moment: datetime, balance: Decimal | None, prior: Subtotals
    ) -> Settlement:
        received.append((version.version, prior))
        lines = (line("outcome", "1.50", "ai_resolution"),)
        return Settlement(invoice=invoice(part, *lines), report=SettlementReport())

    prior = commitment_prior_subtotals(
        versions, jan, [invoice(nov, line("outcome", "1.00")), invoice(dec)]
    )
    settle_versions(versions, jan, settle_one, commitment_prior_subtotals=prior)
    assert received == [(1, ()), (2, (Decimal("1.00"), Decimal("1.50")))]

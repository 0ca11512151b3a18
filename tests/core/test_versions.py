"""Contract versions with effective dates: a version that takes effect inside a period splits
it, and each part is rated by its own version.

What would break: an outcome rated by the version not in force when it became final, a part
rated twice or not at all, lines that do not say their version and part, or an invoice of one
version that changes because versions exist."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from test_adjust import NOV, by_customer, settle_one_from
from test_judge import rules_contract

from factories import NOVEMBER, conversation
from raas.core.contract import OutcomeTerms
from raas.core.invoice import LedgerPoint, invoice_json
from raas.core.settle import settle
from raas.core.versions import contract_parts, settle_versions
from raas.errors import SettlementError


def priced(version: int, effective_from: date, price: str, **changes: object):  # type: ignore[no-untyped-def]
    outcomes = {
        "handoff": OutcomeTerms(when="handed_off", billable=False, final_at="handoff_at"),
        "confirmed_resolution": OutcomeTerms(
            when="ai_answered and confirmed and not recontact_within(72h)", price=Decimal(price)
        ),
        "unresolved": OutcomeTerms(when="true", billable=False),
    }
    return rules_contract(
        version=version, effective_from=effective_from, outcomes=outcomes, **changes
    )


def problems() -> list:  # type: ignore[type-arg]
    """Confirmed resolutions started on Nov 2, 9, 16, 23 (final three days later)."""
    return [
        event
        for week in range(4)
        for event in conversation(
            f"w{week}", customer=f"c{week}", start=NOVEMBER + timedelta(weeks=week), confirm=True
        )
    ]


def test_a_version_taking_effect_mid_period_rates_its_part() -> None:
    v1 = priced(1, date(2026, 11, 1), "1.00")
    v2 = priced(2, date(2026, 11, 15), "2.00")
    events = problems()
    invoice = settle_versions([v2, v1], NOV, settle_one_from(events)).invoice

    assert invoice.id == "rules-v1+v2-2026-11" and invoice.contract_version == 2
    assert [(line.part.version, line.quantity, line.amount) for line in invoice.lines] == [  # type: ignore[union-attr]
        (1, 2, Decimal("2.00")),
        (2, 2, Decimal("4.00")),
    ]
    first, second = (line.part for line in invoice.lines)
    assert first is not None and second is not None
    assert first.start == NOV.start and first.end == second.start
    assert second.start.isoformat() == "2026-11-15T00:00:00+01:00" and second.end == NOV.end
    assert invoice.total == Decimal("6.00")
    assert invoice.lines[0].episodes == ("w0#refund", "w1#refund")


def test_one_version_in_force_gives_the_invoice_settle_gives() -> None:
    v1 = priced(1, date(2026, 11, 1), "1.00", effective_until=date(2026, 12, 1))
    v2 = priced(2, date(2026, 12, 1), "2.00")
    events = problems()
    alone = settle(v1, by_customer(events), period=NOV, ledger=LedgerPoint(tenant="acme", size=0))
    both = settle_versions([v1, v2], NOV, settle_one_from(events))
    assert invoice_json(both.invoice) == invoice_json(alone.invoice)
    assert all(line.part is None for line in both.invoice.lines)


def test_versions_must_cover_the_period_and_agree_on_the_invoice() -> None:
    v1 = priced(1, date(2026, 11, 1), "1.00", effective_until=date(2026, 11, 10))
    v2 = priced(2, date(2026, 11, 15), "2.00")
    with pytest.raises(SettlementError, match="no version applies from 2026-11-10"):
        contract_parts([v1, v2], NOV)
    with pytest.raises(SettlementError, match="no version applies to all of period 2026-11"):
        contract_parts([priced(1, date(2026, 11, 3), "1.00")], NOV)
    other = priced(2, date(2026, 11, 15), "2.00", currency="EUR")
    with pytest.raises(SettlementError, match="expected the same currency"):
        contract_parts([priced(1, date(2026, 11, 1), "1.00"), other], NOV)
    with pytest.raises(SettlementError, match="must take effect later"):
        contract_parts(
            [priced(1, date(2026, 11, 15), "1.00"), priced(2, date(2026, 11, 1), "2.00")], NOV
        )


def test_adjusting_an_invoice_needs_the_versions_in_force_in_its_period() -> None:
    from test_adjust import DEC, next_invoice

    from raas.core.adjust import settle_with_adjustments

    v1 = priced(1, date(2026, 11, 1), "1.00")
    v2 = priced(2, date(2026, 12, 1), "2.00")
    events = problems()
    november = next_invoice(v1, NOV, events)
    with pytest.raises(SettlementError, match="every version of contract rules in force since"):
        settle_with_adjustments([v2], DEC, settle_one_from(events), issued=[november])
    both = settle_with_adjustments([v1, v2], DEC, settle_one_from(events), issued=[november])
    assert both.invoice.adjustments == () and both.invoice.contract_version == 2

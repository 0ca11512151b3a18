"""Prepaid credit over time: what a contract's invoices issued for earlier periods drew down of
the credit its versions state, hence the balance the next invoice starts from. Pure; every
engine, the service's runs and the auditor take the balance from here.

The rule (`raas.core.pricing.terms.Prepaid` states it for the contract's reader):

- A version that states `prepaid: {credit: ...}` states the total credit bought so far: a later
  version may raise it (a top-up), never lower it.
- What an earlier period drew is its issued invoice's `prepaid_drawdown` lines, plus the
  adjustment lines that correct them (issued since, or on the invoice being settled): a late
  event that raises an earlier period's charges draws more there, and the periods after it,
  settled again with the balance that leaves, draw less.
- The balance before a part of a period is the credit its version states minus what earlier
  periods and the period's earlier parts drew (`raas.core.versions.settle_versions`). A period
  is refused, naming the period, while an earlier period that could have drawn (a version in
  force during it states prepaid credit) has no issued invoice: settle that period first.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping, Sequence
from decimal import Decimal
from itertools import pairwise

from raas.core.contract import Contract
from raas.core.invoice import Invoice, InvoiceLine
from raas.core.minimum_runs import first_billing_period
from raas.core.periods import Period, next_period
from raas.core.pricing.figures import EXACT
from raas.core.versions import (
    contract_parts,
    corrected_total,
    invoice_of_period,
    issued_before,
    prepaid_credit,
)
from raas.errors import SettlementError

__all__ = ["DRAWDOWN", "drawn", "prepaid_drawn_before"]

DRAWDOWN = "prepaid_drawdown"


def drawn(invoice: Invoice, corrections: Sequence[InvoiceLine] = ()) -> Decimal:
    """What `invoice` drew of the prepaid credit (positive): its drawdown lines, plus those of
    `corrections` (adjustment lines of later invoices) that correct one of them or a drawdown
    line it did not have."""
    return -corrected_total(invoice, corrections, lambda kind: kind == DRAWDOWN)


def _check_credits(versions: Sequence[Contract]) -> None:
    stating = [
        (version, credit)
        for version in sorted(versions, key=lambda version: version.version)
        for credit in [prepaid_credit(version)]
        if credit is not None
    ]
    for (earlier, before), (later, after) in pairwise(stating):
        if after < before:
            raise SettlementError(
                f"contract {later.contract} v{later.version} states prepaid credit {after}, "
                f"less than v{earlier.version}'s {before}: each version states the total credit "
                "bought so far, which can only grow (a top-up raises it)"
            )


def prepaid_drawn_before(
    versions: Sequence[Contract],
    period: Period,
    issued: Sequence[Invoice],
    *,
    corrections: Sequence[InvoiceLine] = (),
    hindsight: Mapping[str, Invoice] | None = None,
) -> Decimal | None:
    """What the contract's invoices issued for periods before `period` drew of its prepaid
    credit, or None when no version taking effect before `period` ends states prepaid credit.
    `issued` are the invoices the store has issued (any contract's). `corrections` are
    adjustment lines to count besides those of `issued` (the invoice being settled carries
    them); an invoice whose id is in `hindsight` counts what its period settled again now drew
    instead (`raas.core.adjust`).

    Raises SettlementError naming the period when an earlier period that could have drawn has
    no issued invoice (or several), when an issued invoice names a version that is not among
    `versions`, or when a version states less credit than an earlier one."""
    _check_credits(versions)
    if not any(
        prepaid_credit(version) is not None and version.effective_from_utc() < period.end
        for version in versions
    ):
        return None
    name = versions[0].contract
    before = issued_before(versions, period, issued, "its prepaid credit is drawn down")
    cursor = first_billing_period(versions)
    while cursor.start < period.start:
        could_draw = any(
            prepaid_credit(version) is not None for version, _ in contract_parts(versions, cursor)
        )
        found, what = invoice_of_period(before, cursor.label)
        if could_draw and found is None:
            raise SettlementError(
                f"contract {name}, period {period.label} draws down prepaid credit, but {what} "
                f"issued for the earlier period {cursor.label}, which could have drawn from "
                f"it: settle {cursor.label} first (an auditor needs its invoice in the bundle)"
            )
        cursor = next_period(cursor)
    every = [*(line for invoice in before for line in invoice.adjustments), *corrections]
    again = {} if hindsight is None else hindsight
    with decimal.localcontext(EXACT):
        return sum(
            (
                drawn(again[invoice.id]) if invoice.id in again else drawn(invoice, every)
                for invoice in before
            ),
            Decimal(0),
        )

"""Runs of a minimum commitment over several periods: which billing periods form the run a period
closes, and what the run's earlier periods were charged, read from the invoices issued for them.
Pure; every engine and the auditor take the run's subtotals from here.

The rule (`raas.core.pricing.terms.Minimum` states it for the contract's reader):

- Runs are consecutive blocks of `periods` billing periods (months of the contract's zone),
  counted from the contract's first billing period: the first one that starts on or after its
  first version's `effective_from`.
- A later version that states the same minimum (amount and periods) continues the run. A
  version that changes it (or adds or drops it) ends the run it takes effect in, without a
  true-up (the new terms replace the old commitment), and a new run starts with the first
  period it rates; such a version must take effect at the start of a period, or settlement
  refuses to guess which commitment the period belongs to. A period split by versions that keep
  the minimum counts once, with the charges of all its parts.
- What an earlier period of the run was charged is its issued invoice's charges (its lines of
  a charge kind: not the true-up, cap, SLA credit or prepaid drawdown), plus the corrections of
  those charges (`adjustments` of kind late events, reopened, dispute) that the contract's
  invoices issued before the period being settled carry. An earlier period of the run with no
  issued invoice is refused, naming the period: settle it first.

Only the last period of a run needs the subtotals; `commitment_prior_subtotals` gives none
for the others, since no true-up can fall in them.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from itertools import pairwise

from raas.core.contract import Contract
from raas.core.invoice import Invoice, InvoiceLine
from raas.core.periods import Period, next_period, period_containing, previous_period
from raas.core.pricing import Minimum
from raas.core.pricing.lines import CHARGE_KINDS
from raas.core.versions import (
    contract_parts,
    corrected_total,
    invoice_of_period,
    issued_before,
)
from raas.errors import SettlementError

__all__ = ["charged", "commitment_prior_subtotals", "first_billing_period", "minimum_of"]


def first_billing_period(versions: Sequence[Contract]) -> Period:
    """The contract's first billing period: the first month of its zone that starts on or after
    the first version's `effective_from` (a month it starts inside has no version for all of
    it, so it is never settled)."""
    first = min(versions, key=lambda version: version.version)
    start = first.effective_from_utc()
    period = period_containing(start, first.time_zone)
    return period if period.start == start else next_period(period)


def minimum_of(versions: Sequence[Contract], period: Period) -> Minimum | None:
    """The minimum commitment that `period` counts towards: its versions' (one, when versions
    split the period). Raises SettlementError when a version taking effect inside the period
    changes a minimum over several periods."""
    parts = contract_parts(versions, period)
    last, _ = parts[-1]
    minimum = last.effective_pricing().minimum
    for (earlier, _), (later, _) in pairwise(parts):
        before, after = earlier.effective_pricing().minimum, later.effective_pricing().minimum
        several = any(each is not None and each.periods > 1 for each in (before, after))
        if before != after and several:
            raise SettlementError(
                f"contract {later.contract} v{later.version} takes effect "
                f"{later.effective_from}, inside period {period.label}, and changes the minimum "
                f"commitment over several periods (from {_terms(before)} to {_terms(after)}): "
                "a version may change such a minimum only from the start of a billing period"
            )
    return minimum


def _terms(minimum: Minimum | None) -> str:
    if minimum is None:
        return "none"
    return f"{minimum.amount} over {minimum.periods} periods"


def charged(invoice: Invoice, corrections: Sequence[InvoiceLine] = ()) -> Decimal:
    """What `invoice` charged towards a minimum: its charge lines, plus those of `corrections`
    (adjustment lines of later invoices) that correct one of its charge lines or a charge line
    it did not have."""
    return corrected_total(invoice, corrections, lambda kind: kind in CHARGE_KINDS)


def commitment_prior_subtotals(
    versions: Sequence[Contract], period: Period, issued: Sequence[Invoice]
) -> tuple[Decimal, ...]:
    """What the earlier periods of `period`'s run were charged, oldest first, when `period` is
    the last of a run of a minimum over several periods; otherwise none (see the module's
    docstring for the rule). `issued` are the invoices the store has issued (any contract's).

    Raises SettlementError naming the period when an earlier period of the run has no issued
    invoice (or several), or when an issued invoice of the contract names a version that is not
    among `versions` (the runs count from the first version: pass them all)."""
    minimum = minimum_of(versions, period)
    if minimum is None or minimum.periods == 1:
        return ()
    name = versions[0].contract
    before = issued_before(versions, period, issued, "the runs of its minimum commitment count")
    first = first_billing_period(versions)
    run_start, position = period, 0
    while run_start.start > first.start:
        earlier = previous_period(run_start)
        if minimum_of(versions, earlier) != minimum:
            break
        run_start, position = earlier, position + 1
    if position % minimum.periods != minimum.periods - 1:
        return ()
    labels = []
    cursor = period
    for _ in range(minimum.periods - 1):
        cursor = previous_period(cursor)
        labels.append(cursor.label)
    labels.reverse()
    corrections = [line for invoice in before for line in invoice.adjustments]
    subtotals = []
    for label in labels:
        invoice, what = invoice_of_period(before, label)
        if invoice is None:
            raise SettlementError(
                f"contract {name}, period {period.label} closes a run of {minimum.periods} "
                f"periods of its minimum commitment ({labels[0]} to {period.label}), but "
                f"{what} issued for period {label}: its charges count towards the minimum, "
                f"so settle {label} first (an auditor needs its invoice in the bundle)"
            )
        subtotals.append(charged(invoice, corrections))
    return tuple(subtotals)

"""Contract versions over time: which version rates which part of a period. Pure.

A contract is a sequence of versions (each its own file, as before), each effective from its
first day until the first day of the next version (or its own `effective_until`). When a new
version takes effect inside a billing period, the period is split at that instant and each
part is settled and rated by its own version, as if it were a period of its own (per-period
terms such as a cap, SLA targets or a minimum per period apply to each part); an outcome belongs
to the part in which it becomes final. The parts' lines make one invoice, each line naming its
part. A minimum over several periods counts the split period once (`raas.core.minimum_runs`):
when the period closes the run, its last part trues up what the run's earlier periods and the
period's earlier parts were charged. Prepaid credit (`raas.core.prepaid`) carries from part to
part: each part starts from the credit its version states less what was drawn before it.

`settle_versions` takes the settlement of one version over one part as a function, so every
engine (reference, DuckDB, Spark) splits periods the same way without knowing about versions.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

import msgspec

from raas.core.contract import Contract
from raas.core.invoice import ContractPart, Invoice, InvoiceLine
from raas.core.periods import Period
from raas.core.pricing.figures import EXACT
from raas.core.pricing.lines import ADJUSTMENT_KINDS, CHARGE_KINDS
from raas.core.settle import Settlement, SettlementReport
from raas.errors import SettlementError

__all__ = [
    "SettleOne",
    "Subtotals",
    "contract_parts",
    "issued_before",
    "prepaid_credit",
    "settle_versions",
    "starting_balance",
]

# What the earlier periods of a minimum commitment's run were charged, oldest first.
Subtotals = tuple[Decimal, ...]
# Settle one version over one part: (version, part, as_of, prepaid balance before, the
# commitment's prior subtotals (`raas.core.pricing.Usage`)) -> settlement.
SettleOne = Callable[[Contract, Period, datetime, Decimal | None, Subtotals], Settlement]

# Fields every version of one contract must share: an invoice has one of each.
_SHARED = ("contract", "vendor", "buyer", "currency", "time_zone", "period")
_NOT_ADDED = ("provisional", "earlier_periods", "later_periods", "model_cost_per_resolution")


def _ordered(versions: Sequence[Contract]) -> list[Contract]:
    if not versions:
        raise SettlementError("expected at least one contract version, found none")
    ordered = sorted(versions, key=lambda version: version.version)
    first = ordered[0]
    for earlier, later in pairwise(ordered):
        for name in _SHARED:
            if getattr(later, name) != getattr(first, name):
                raise SettlementError(
                    f"contract {first.contract} v{later.version}: expected the same {name} as "
                    f"v{first.version} ({getattr(first, name)!r}), found {getattr(later, name)!r}"
                )
        if later.version == earlier.version:
            raise SettlementError(
                f"contract {first.contract}: version {later.version} is given twice"
            )
        if later.effective_from <= earlier.effective_from:
            raise SettlementError(
                f"contract {first.contract} v{later.version} takes effect "
                f"{later.effective_from}, not after v{earlier.version} "
                f"({earlier.effective_from}): a later version must take effect later"
            )
        until = earlier.effective_until
        if until is not None and until < later.effective_from:
            raise SettlementError(
                f"contract {first.contract}: no version applies from {until} (v"
                f"{earlier.version} ends) to {later.effective_from} (v{later.version} begins)"
            )
    return ordered


def contract_parts(versions: Sequence[Contract], period: Period) -> list[tuple[Contract, Period]]:
    """The parts of `period` and the version that rates each, in time order; a part is a
    `Period` with the period's label and its own [start, end). Raises SettlementError when the
    versions disagree on what an invoice has one of, or leave part of the period uncovered."""
    ordered = _ordered(versions)
    parts: list[tuple[Contract, Period]] = []
    covered = period.start
    for index, version in enumerate(ordered):
        start = version.effective_from_utc()
        end = version.effective_until_utc()
        if index + 1 < len(ordered):
            following = ordered[index + 1].effective_from_utc()
            end = following if end is None else min(end, following)
        start, end = max(start, period.start), period.end if end is None else min(end, period.end)
        if start >= end:
            continue
        if start > covered:
            break
        parts.append((version, Period(period.label, period.time_zone, start, end)))
        covered = end
    if covered < period.end or not parts or parts[0][1].start > period.start:
        raise SettlementError(
            f"contract {ordered[0].contract}: no version applies to all of period "
            f"{period.label} (versions {', '.join(f'v{v.version}' for v in ordered)})"
        )
    return parts


def issued_before(
    versions: Sequence[Contract], period: Period, issued: Sequence[Invoice], counted: str
) -> list[Invoice]:
    """The contract's invoices in `issued` (any contract's) for periods before `period`.
    Raises SettlementError when one names a version that is not among `versions`: what
    `counted` says counts from the first version, so every version must be given."""
    name = versions[0].contract
    given = {version.version for version in versions}
    before = [
        invoice
        for invoice in issued
        if invoice.contract == name and invoice.period_end <= period.start
    ]
    for invoice in before:
        if invoice.contract_version not in given:
            raise SettlementError(
                f"contract {name}: invoice {invoice.id} was issued under "
                f"v{invoice.contract_version}, which is not among the versions given "
                f"({', '.join(f'v{each}' for each in sorted(given))}); {counted} from its "
                "first version: give every version of the contract"
            )
    return before


def invoice_of_period(before: Sequence[Invoice], label: str) -> tuple[Invoice | None, str]:
    """The one invoice among `before` issued for the period `label`, or None with what is
    wrong, in words for an error ("no invoice was" / "several invoices (a, b) were")."""
    found = sorted((each for each in before if each.period == label), key=lambda each: each.id)
    if len(found) == 1:
        return found[0], ""
    if not found:
        return None, "no invoice was"
    return None, f"several invoices ({', '.join(invoice.id for invoice in found)}) were"


def corrected_total(
    invoice: Invoice, corrections: Sequence[InvoiceLine], counts: Callable[[str], bool]
) -> Decimal:
    """The amounts of `invoice`'s lines of a kind that `counts`, plus those of `corrections`
    (adjustment lines of later invoices) that correct one of them, or a line of such a kind
    the invoice did not have: that line names its kind as its outcome when the kind bills no
    outcome (an adjustment kind), else the outcomes it charges for."""
    amounts = [line.amount for line in invoice.lines if counts(line.kind)]
    for line in corrections:
        corrects = line.corrects
        if corrects is None or corrects.invoice != invoice.id:
            continue
        if corrects.line is not None:
            kind = invoice.lines[corrects.line].kind
        else:
            # A charge line names the outcomes it bills: any charge kind stands for it.
            kind = line.outcome if line.outcome in ADJUSTMENT_KINDS else "outcome"
        if counts(kind):
            amounts.append(line.amount)
    with decimal.localcontext(EXACT):
        return sum(amounts, Decimal(0))


def prepaid_credit(version: Contract) -> Decimal | None:
    """The total prepaid credit bought that `version` states, or None when it states none."""
    prepaid = version.effective_pricing().prepaid
    return None if prepaid is None else prepaid.credit


def starting_balance(version: Contract, drawn: Decimal | None, period: Period) -> Decimal | None:
    """The prepaid balance `version` starts a part of `period` with, when `drawn` was drawn
    before it (None when the version states no prepaid credit). Raises SettlementError when
    `drawn` is needed but not given, or is more than the credit."""
    credit = prepaid_credit(version)
    if credit is None:
        return None
    if drawn is None:
        raise SettlementError(
            f"contract {version.contract} v{version.version} states prepaid credit, but what "
            f"the periods before {period.label} drew of it was not given: settle with the "
            "invoices issued (raas.core.prepaid.prepaid_drawn_before)"
        )
    balance = credit - drawn
    if balance < 0:
        raise SettlementError(
            f"contract {version.contract} v{version.version}: the periods before "
            f"{period.label} drew {drawn} of prepaid credit, more than the {credit} it states"
        )
    return balance


def settle_versions(
    versions: Sequence[Contract],
    period: Period,
    settle_one: SettleOne,
    *,
    as_of: datetime | None = None,
    prepaid_drawn: Decimal | None = None,
    commitment_prior_subtotals: Sequence[Decimal] = (),
) -> Settlement:
    """Settle `period` under the versions in force during it: one version settles as before;
    several settle their parts and make one invoice whose lines name their part.

    `prepaid_drawn` is what the earlier periods drew of the contract's prepaid credit
    (`raas.core.prepaid.prepaid_drawn_before`; needed when a version in force states prepaid
    credit): each part starts from the credit its version states less that and what the
    period's earlier parts drew. `commitment_prior_subtotals` are what the earlier periods of
    the run of a minimum over several periods were charged, when `period` closes the run
    (`raas.core.minimum_runs.commitment_prior_subtotals`); the period's earlier parts are
    counted into the last of them for its last part, which alone can true up."""
    as_of = period.end if as_of is None else as_of
    parts = contract_parts(versions, period)
    prior = tuple(commitment_prior_subtotals)
    if len(parts) == 1:
        version, _ = parts[0]
        return settle_one(
            version, period, as_of, starting_balance(version, prepaid_drawn, period), prior
        )
    settlements: list[Settlement] = []
    drawn = prepaid_drawn
    for index, (version, part) in enumerate(parts):
        counted: Subtotals = ()
        if prior and index == len(parts) - 1:
            # The run counts the period once: its earlier parts' charges go with the last
            # earlier period, so the run still holds `periods - 1` subtotals before this part.
            before = sum(
                (
                    line.amount
                    for each in settlements
                    for line in each.invoice.lines
                    if line.kind in CHARGE_KINDS
                ),
                Decimal(0),
            )
            counted = (*prior[:-1], prior[-1] + before)
        balance = starting_balance(version, drawn, period)
        settlement = settle_one(version, part, as_of, balance, counted)
        settlements.append(settlement)
        left = settlement.invoice.prepaid_balance
        if balance is not None and left is not None and drawn is not None:
            drawn += balance - left
    return _joined(parts, settlements, period)


def _joined(
    parts: list[tuple[Contract, Period]], settlements: list[Settlement], period: Period
) -> Settlement:
    invoices = [settlement.invoice for settlement in settlements]
    last_version, _ = parts[-1]
    zone = last_version.zone
    lines = tuple(
        msgspec.structs.replace(
            line,
            part=ContractPart(
                version=version.version,
                start=part.start.astimezone(zone),
                end=part.end.astimezone(zone),
            ),
        )
        for (version, part), issued in zip(parts, invoices, strict=True)
        for line in issued.lines
    )
    not_billed: dict[str, int] = {}
    for each in invoices:
        for key, count in each.not_billed.items():
            not_billed[key] = not_billed.get(key, 0) + count
    versions = "+".join(f"v{version.version}" for version, _ in parts)
    invoice: Invoice = msgspec.structs.replace(
        invoices[-1],
        id=f"{last_version.contract}-{versions}-{period.label}",
        period_start=period.start.astimezone(zone),
        period_end=period.end.astimezone(zone),
        lines=lines,
        total=sum((each.total for each in invoices), Decimal(0)),
        not_billed=dict(sorted(not_billed.items())),
    )
    assert invoice.total == sum((line.amount for line in lines), Decimal(0))
    return Settlement(invoice=invoice, report=_joined_report([s.report for s in settlements]))


def _joined_report(reports: list[SettlementReport]) -> SettlementReport:
    """The parts' reports added up; `provisional` is the same in every part (one `as_of`), and
    what was final before or after the period is what was before the first or after the last."""
    joined = SettlementReport()
    for report in reports:
        for name in SettlementReport.__struct_fields__:
            value = getattr(report, name)
            if name == "outcomes":
                for key, count in value.items():
                    joined.outcomes[key] = joined.outcomes.get(key, 0) + count
            elif name in _NOT_ADDED:
                continue
            else:
                setattr(joined, name, getattr(joined, name) + value)
    joined.provisional = reports[-1].provisional
    joined.earlier_periods = reports[0].earlier_periods
    joined.later_periods = reports[-1].later_periods
    if joined.ai_resolutions:
        joined.model_cost_per_resolution = (joined.model_cost / joined.ai_resolutions).quantize(
            Decimal("0.0001")
        )
    return joined

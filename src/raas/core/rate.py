"""The rater: what a period's final outcomes measured + the contract's pricing -> invoice. Pure.

The measurements arrive as a `raas.core.pricing.Usage` (the reference settlement in
`raas.core.settle` fills it; a SQL engine fills the same from its tables) and are priced by
`raas.core.pricing`: each charge in contract order, then the adjustments in their fixed order.
Every line is rounded once, to the currency's minor units by the contract's rule, and the total
is exactly the sum of the lines.

Where the period measured nothing that a term needs, rating does not guess, and does not fail:
an SLA target with nothing to measure (no episodes, no latency, no CSAT answer) is met; an
uplift share without a holdout sees two empty groups and bills zero; a savings share without
cases bills zero.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

import msgspec

from raas.core.contract import Contract
from raas.core.invoice import Invoice, InvoiceLine, LedgerPoint
from raas.core.money import quantize
from raas.core.periods import Period
from raas.core.pricing import (
    AccuracyTiers,
    CaseCosts,
    Graduated,
    GroupMeasurement,
    Holdout,
    Package,
    PerOutcome,
    PricedLine,
    Pricing,
    SavingsShare,
    UpliftShare,
    Usage,
    Volume,
)
from raas.core.pricing.adjustments import adjust
from raas.core.pricing.figures import EXACT
from raas.core.pricing.models import price_charge
from raas.errors import SettlementError

__all__ = ["rate"]

_OUTCOME_CHARGES = (PerOutcome, Graduated, Volume, Package, AccuracyTiers)


def rate(
    contract: Contract,
    usage: Usage,
    *,
    not_billed: Mapping[str, int],
    provisional: int,
    period: Period,
    as_of: datetime,
    ledger: LedgerPoint,
    unit_episodes: Mapping[str, Iterable[str]] | None = None,
) -> Invoice:
    """The invoice for `period`: one line per priced line of the contract's pricing.

    `usage.outcomes` holds the period's final billable outcomes by name; when the contract
    counts per conversation, each is listed under the id the conversation is counted under, and
    `unit_episodes` maps that id to all the conversation's episodes, which its lines list.
    `not_billed` counts the final outcomes that carry no charge, `provisional` those not yet
    final at `as_of`. Raises SettlementError when pricing refuses the usage.
    """
    pricing = contract.effective_pricing()
    usage = _complete(pricing, usage)
    currency, rounding = contract.currency, contract.rounding
    expand = {key: tuple(value) for key, value in (unit_episodes or {}).items()}
    lines: list[InvoiceLine] = []
    try:
        for charge in pricing.charges:
            priced = price_charge(charge, usage, currency, rounding)
            if isinstance(charge, PerOutcome):
                # One line per priced kind, in the charge's order.
                for kind, line in zip(charge.prices, priced, strict=True):
                    described = contract.outcomes[kind].description or line.description
                    lines.append(_line(line, kind, expand, description=described))
            elif isinstance(charge, _OUTCOME_CHARGES):
                outcome = ",".join(charge.outcomes)
                lines += [_line(line, outcome, expand) for line in priced]
            else:
                lines += [_line(line, line.kind, {}) for line in priced]
        subtotal = _sum(line.amount for line in lines)
        adjustments, balance = adjust(pricing, usage, subtotal, currency, rounding)
    except ValueError as error:
        raise SettlementError(
            f"contract {contract.contract} v{contract.version}, period {period.label}: {error}"
        ) from error
    lines += [_line(line, line.kind, {}) for line in adjustments]
    total = _sum(line.amount for line in lines)
    # Line amounts are already in minor units, so their sum needs no rounding of its own.
    assert total == quantize(total, currency, rounding), total
    assert total >= 0, total
    zone = contract.zone
    return Invoice(
        id=f"{contract.contract}-v{contract.version}-{period.label}",
        contract=contract.contract,
        contract_version=contract.version,
        vendor=contract.vendor,
        buyer=contract.buyer,
        currency=currency,
        time_zone=contract.time_zone,
        period=period.label,
        period_start=period.start.astimezone(zone),
        period_end=period.end.astimezone(zone),
        as_of=as_of.astimezone(zone),
        ledger=ledger,
        rounding=f"{rounding} per line",
        lines=tuple(lines),
        total=total,
        not_billed=dict(sorted(not_billed.items())),
        provisional=provisional,
        prepaid_balance=balance,
    )


def _line(
    line: PricedLine,
    outcome: str,
    expand: Mapping[str, tuple[str, ...]],
    *,
    description: str | None = None,
) -> InvoiceLine:
    episodes = line.episodes
    if expand:
        episodes = tuple(sorted({e for unit in episodes for e in expand.get(unit, (unit,))}))
    basis = dict(line.basis)
    if line.kind == "outcome" and all(value == line.quantity for value in basis.values()):
        # Unweighted outcomes: the basis would only repeat the quantity.
        basis = {}
    return InvoiceLine(
        outcome=outcome,
        description=description if description is not None else line.description,
        quantity=line.quantity,
        unit_price=line.unit_price,
        amount=line.amount,
        episodes=episodes,
        kind=line.kind,
        basis=basis,
    )


def _sum(amounts: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    with decimal.localcontext(EXACT):
        for amount in amounts:
            total += amount
    return total


def _complete(pricing: Pricing, usage: Usage) -> Usage:
    """The usage with what the pricing needs and the period did not measure filled in as this
    module's docstring says."""
    changes: dict[str, object] = {}
    charges = pricing.charges
    if usage.holdout is None and any(isinstance(charge, UpliftShare) for charge in charges):
        empty = GroupMeasurement(units=0, total=Decimal(0), total_of_squares=Decimal(0))
        changes["holdout"] = Holdout(treated=empty, control=empty)
    if usage.case_costs is None and any(isinstance(charge, SavingsShare) for charge in charges):
        changes["case_costs"] = CaseCosts(cases=0, actual_cost_per_case=Decimal(0))
    measured = {
        target.metric: target.target
        for target in pricing.sla
        if getattr(usage.sla, target.metric) is None
    }
    if measured:
        changes["sla"] = msgspec.structs.replace(usage.sla, **measured)
    if not changes:
        return usage
    return msgspec.structs.replace(usage, **changes)

"""The rater: final outcomes in a period + the contract's prices -> invoice lines and total. Pure.

Each line's amount is quantity x unit price rounded once, per line, to the currency's minor
units by the contract's rounding rule; the total is the exact sum of the line amounts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from raas.core.contract import Contract
from raas.core.invoice import Invoice, InvoiceLine, LedgerPoint
from raas.core.judge import OUTCOME_KINDS
from raas.core.money import quantize
from raas.core.periods import Period

LINE_DESCRIPTIONS = {
    "ai_resolution": "Problems resolved by the AI",
    "handoff": "Problems handed off to a human",
}


def priced_outcomes(contract: Contract) -> dict[str, Decimal]:
    """The outcome kinds that appear as invoice lines, with their unit prices."""
    return {
        "ai_resolution": contract.outcomes.ai_resolution.price,
        "handoff": contract.outcomes.handoff.price,
    }


def rate(
    contract: Contract,
    episodes_by_kind: Mapping[str, Iterable[str]],
    not_billed: Mapping[str, int],
    provisional: int,
    *,
    period: Period,
    as_of: datetime,
    ledger: LedgerPoint,
) -> Invoice:
    """Lines for each priced outcome kind (quantity = number of its final episodes)."""
    zone = contract.zone
    prices = priced_outcomes(contract)
    lines = []
    for kind, unit_price in prices.items():
        episodes = tuple(sorted(episodes_by_kind.get(kind, ())))
        amount = quantize(unit_price * len(episodes), contract.currency, contract.rounding)
        lines.append(
            InvoiceLine(
                outcome=kind,
                description=LINE_DESCRIPTIONS[kind],
                quantity=len(episodes),
                unit_price=unit_price,
                amount=amount,
                episodes=episodes,
            )
        )
    total = sum((line.amount for line in lines), Decimal(0))
    # Line amounts are already in minor units, so their sum needs no rounding of its own.
    assert total == quantize(total, contract.currency, contract.rounding)
    return Invoice(
        id=f"{contract.contract}-v{contract.version}-{period.label}",
        contract=contract.contract,
        contract_version=contract.version,
        vendor=contract.vendor,
        buyer=contract.buyer,
        currency=contract.currency,
        time_zone=contract.time_zone,
        period=period.label,
        period_start=period.start.astimezone(zone),
        period_end=period.end.astimezone(zone),
        as_of=as_of.astimezone(zone),
        ledger=ledger,
        rounding=f"{contract.rounding} per line",
        lines=tuple(lines),
        total=total,
        not_billed={kind: not_billed.get(kind, 0) for kind in OUTCOME_KINDS if kind not in prices},
        provisional=provisional,
    )

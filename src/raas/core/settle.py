"""Settlement: one contract, one period, one ledger state -> invoice and the vendor's report. Pure.

A short pipeline of pure steps per customer (entries -> episodes -> outcomes), folded into a
tally, then rated. Customers are independent, so the caller can stream them from any store.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

import msgspec

from raas.core.contract import Contract
from raas.core.episodes import Entry, derive_episodes
from raas.core.invoice import Invoice, LedgerPoint
from raas.core.judge import judge_episode
from raas.core.periods import Period
from raas.core.rate import rate
from raas.errors import SettlementError


class SettlementReport(msgspec.Struct, kw_only=True):
    """What the vendor sees beside the invoice; model cost never appears on the buyer's bill."""

    conversations: int = 0
    episodes: int = 0  # final in the period
    ai_resolutions: int = 0
    confirmed_resolutions: int = 0
    assumed_resolutions: int = 0
    handoffs: int = 0
    handoffs_with_context: int = 0
    recontacts_inside_window: int = 0  # the "reopened" outcomes
    recontacts_outside_window: int = 0
    unresolved: int = 0
    provisional: int = 0  # window still open at as_of
    earlier_periods: int = 0  # final before the period started
    later_periods: int = 0  # final after it ended (as_of past the period)
    billed: Decimal = Decimal(0)
    model_cost: Decimal = Decimal(0)  # of the episodes final in the period
    model_cost_per_resolution: Decimal | None = None
    margin: Decimal = Decimal(0)


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """What settling a period gives: the buyer's invoice and the vendor's report."""

    invoice: Invoice
    report: SettlementReport


def check_contract_covers(contract: Contract, period: Period) -> None:
    if contract.effective_from_utc() > period.start:
        raise SettlementError(
            f"contract {contract.contract} v{contract.version} takes effect "
            f"{contract.effective_from}, after the start of period {period.label}"
        )
    until = contract.effective_until_utc()
    if until is not None and until < period.end:
        raise SettlementError(
            f"contract {contract.contract} v{contract.version} ends "
            f"{contract.effective_until}, before the end of period {period.label}"
        )


def settle(
    contract: Contract,
    customers: Iterable[Iterable[Entry]],
    *,
    period: Period,
    ledger: LedgerPoint,
    as_of: datetime | None = None,
) -> Settlement:
    """Settle `period` from the buyer's entries, grouped by customer (any order of groups).

    `as_of` defaults to the end of the period: outcomes whose window closes later stay
    provisional and are billed in the period in which their window closes.
    """
    check_contract_covers(contract, period)
    as_of = period.end if as_of is None else as_of
    link_horizon = timedelta(hours=contract.outcomes.ai_resolution.recontact_window_hours)
    report = SettlementReport()
    episodes_by_kind: dict[str, list[str]] = {"ai_resolution": [], "handoff": []}
    not_billed: dict[str, int] = {"reopened": 0, "unresolved": 0}

    for entries in customers:
        conversations_in_period: set[str] = set()
        for episode in derive_episodes(entries, link_horizon=link_horizon):
            if episode.tenant != contract.buyer:
                raise SettlementError(
                    f"episode {episode.id} belongs to tenant {episode.tenant!r}, "
                    f"not to the contract's buyer {contract.buyer!r}"
                )
            outcome = judge_episode(contract, episode)
            if outcome.final_at > as_of:
                report.provisional += 1
                continue
            if outcome.final_at < period.start:
                report.earlier_periods += 1
                continue
            if outcome.final_at >= period.end:
                report.later_periods += 1
                continue
            report.episodes += 1
            report.model_cost += episode.model_cost
            conversations_in_period.update(episode.conversations)
            if episode.recontact_at is not None and outcome.basis == "assumed":
                report.recontacts_outside_window += 1
            if outcome.kind in episodes_by_kind:
                episodes_by_kind[outcome.kind].append(episode.id)
            else:
                not_billed[outcome.kind] += 1
            if outcome.kind == "ai_resolution":
                report.ai_resolutions += 1
                if outcome.basis == "confirmed":
                    report.confirmed_resolutions += 1
                else:
                    report.assumed_resolutions += 1
            elif outcome.kind == "handoff":
                report.handoffs += 1
                report.handoffs_with_context += bool(episode.context_passed)
            elif outcome.kind == "reopened":
                report.recontacts_inside_window += 1
            else:
                report.unresolved += 1
        report.conversations += len(conversations_in_period)

    invoice = rate(
        contract,
        episodes_by_kind,
        not_billed,
        report.provisional,
        period=period,
        as_of=as_of,
        ledger=ledger,
    )
    report.billed = invoice.total
    if report.ai_resolutions:
        report.model_cost_per_resolution = (report.model_cost / report.ai_resolutions).quantize(
            Decimal("0.0001")
        )
    report.margin = invoice.total - report.model_cost
    return Settlement(invoice=invoice, report=report)

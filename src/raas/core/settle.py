"""Settlement: one contract, one period, one ledger state -> invoice and the vendor's report. Pure.

The reference meaning of a settlement, which every engine must reproduce. Per customer: entries
-> episodes (linked across conversations within the contract's window) -> verdicts by the
contract's plan, each with the moment it becomes final. The unit counted is the episode, or,
when the contract counts per conversation, the conversation (its episodes' verdicts folded by
`CompiledPlan.conversation_verdict`, final when the last of them is). A unit final inside the
period is measured; one not yet final at `as_of` is provisional and billed in the period in
which it becomes final.

What the period's final units measure, for pricing (`raas.core.pricing.Usage`):

- outcomes: the billable units by outcome name, each with its difficulty weight;
- reviews: the episodes of the matched units (not excluded, some rule matched) that were
  reviewed, and how many passed;
- attributed: the business events (orders, subscriptions, less refunds; in the contract's
  currency) inside the episodes of billable units, one amount per order reference (the event's
  id when it has none), never below zero;
- holdout: per customer with a holdout group, the net business amount of the episodes of its
  non-excluded units; treatment customers are the treated group, control the control group (a
  customer with no episode final in the period is not measured);
- case_costs: the units whose outcome states a `case_cost`, and their average cost;
- SLA: resolution rate = units billed without any human takeover / non-excluded units; p95
  latency = the nearest-rank 95th percentile of the slowest model call of each episode that
  made one; CSAT = the mean score of the episodes that have one. Rates and means are rounded
  down to 12 places, which never turns a missed "at least" target into a met one.

Customers are independent, so the caller can stream them from any store; the fold is
commutative, so neither their order nor the order of events changes the invoice.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final

import msgspec

from raas.core.contract import Contract
from raas.core.episodes import Entry, Episode, derive_episodes
from raas.core.events import BusinessEvent
from raas.core.invoice import Invoice, LedgerPoint
from raas.core.judge import Judge
from raas.core.periods import Period
from raas.core.plan import EXCLUDED, NO_OUTCOME, Verdict
from raas.core.pricing import (
    AttributedAmount,
    CaseCosts,
    GroupMeasurement,
    Holdout,
    Reviews,
    SlaMeasurements,
    Usage,
    WeightedEpisode,
)
from raas.core.rate import rate
from raas.errors import SettlementError

__all__ = ["Settlement", "SettlementReport", "check_contract_covers", "settle"]

MEASURE_PLACES: Final = 12
_QUANTUM: Final = Decimal(1).scaleb(-MEASURE_PLACES)
_DOWN: Final = decimal.Context(prec=100, rounding=decimal.ROUND_DOWN)
_UP: Final = decimal.Context(prec=100, rounding=decimal.ROUND_UP)


class SettlementReport(msgspec.Struct, kw_only=True):
    """What the vendor sees beside the invoice; model cost never appears on the buyer's bill.

    `units`, `outcomes` and `billable` count what is counted (episodes, or conversations when
    the contract counts per conversation). The summary counts below them are of the episodes
    final in the period and not excluded, whatever the contract calls their outcomes, each
    episode in exactly one of: `handoffs` (a human took over before the outcome was final),
    `ai_resolutions` (billable otherwise; confirmed or assumed by whether the customer said
    so; `recontacts_outside_window` of them came back after the window),
    `recontacts_inside_window` (not billable, the customer came back inside the window) and
    `unresolved` (the rest).
    """

    conversations: int = 0
    episodes: int = 0  # final in the period
    units: int = 0  # final in the period: episodes, or conversations
    outcomes: dict[str, int] = msgspec.field(default_factory=dict)  # units by outcome name
    billable: int = 0  # units billed
    ai_resolutions: int = 0
    confirmed_resolutions: int = 0
    assumed_resolutions: int = 0
    handoffs: int = 0
    handoffs_with_context: int = 0
    recontacts_inside_window: int = 0
    recontacts_outside_window: int = 0
    unresolved: int = 0
    business_events_other_currency: int = 0  # not in the contract's currency: not counted
    provisional: int = 0  # units not yet final at as_of
    earlier_periods: int = 0  # units final before the period started
    later_periods: int = 0  # units final after it ended (as_of past the period)
    billed: Decimal = Decimal(0)
    model_cost: Decimal = Decimal(0)  # of the episodes final in the period
    model_cost_per_resolution: Decimal | None = None
    margin: Decimal = Decimal(0)


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """What settling a period gives: the buyer's invoice and the vendor's report."""

    invoice: Invoice
    report: SettlementReport


def check_contract_covers(contract: Contract, period: Period) -> None:
    """Refuse to settle a period the contract version does not cover entirely."""
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


@dataclass
class _Judged:
    episode: Episode
    verdict: Verdict
    final_at: datetime
    business: list[tuple[str, Decimal]]  # (order key, signed amount) in the contract's currency


@dataclass
class _Unit:
    """What is counted: an episode, or a conversation with all its episodes."""

    id: str
    verdict: Verdict
    final_at: datetime
    members: list[_Judged]


@dataclass
class _Tally:
    """The fold over the period's final units, in the order-free form the module docstring
    describes."""

    outcomes: dict[str, list[WeightedEpisode]] = field(default_factory=dict)
    unit_episodes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    not_billed: dict[str, int] = field(default_factory=dict)
    reviewed: int = 0
    passed: int = 0
    orders: dict[str, tuple[Decimal, set[str]]] = field(default_factory=dict)
    holdout: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # customer -> group
    cases: int = 0
    case_cost: Decimal = Decimal(0)
    case_episodes: list[str] = field(default_factory=list)
    measured_units: int = 0
    resolved_units: int = 0
    latencies: list[int] = field(default_factory=list)
    csat_total: int = 0
    csat_answers: int = 0


def settle(
    contract: Contract,
    customers: Iterable[Iterable[Entry]],
    *,
    period: Period,
    ledger: LedgerPoint,
    as_of: datetime | None = None,
    prepaid_balance: Decimal | None = None,
    commitment_prior_subtotals: Sequence[Decimal] = (),
) -> Settlement:
    """Settle `period` from the buyer's entries, grouped by customer (any order of groups).

    `as_of` defaults to the end of the period: outcomes that become final later stay
    provisional and are billed in the period in which they become final. A prepaid contract
    needs the buyer's `prepaid_balance` before this invoice (`raas.core.prepaid` reads it from
    the earlier invoices), and a minimum commitment over several periods the subtotals of the
    run's earlier periods (oldest first).
    """
    check_contract_covers(contract, period)
    as_of = period.end if as_of is None else as_of
    judge = Judge(contract)
    plan, compiled = judge.plan, judge.compiled
    report = SettlementReport(outcomes={rule.name: 0 for rule in plan.rules})
    tally = _Tally(not_billed={kind: 0 for kind in plan.not_billed_kinds()})
    window_seconds = plan.window_seconds
    per_conversation = plan.count == "per_conversation"

    for entries in customers:
        entries = list(entries)
        # Most customers buy nothing: the business events are looked for once per customer.
        business = [
            (entry.leaf_hash.hex(), entry)
            for entry in entries
            if isinstance(entry.event.data, BusinessEvent)
        ]
        judged = [
            _judge(judge, episode, business, contract, report)
            for episode in derive_episodes(entries, link_horizon=contract.window)
        ]
        units = _units(judged, compiled.conversation_verdict, per_conversation)
        conversations: set[str] = set()
        for unit in units:
            if unit.final_at > as_of:
                report.provisional += 1
            elif unit.final_at < period.start:
                report.earlier_periods += 1
            elif unit.final_at >= period.end:
                report.later_periods += 1
            else:
                _count(unit, contract, tally, report, window_seconds, per_conversation)
                for member in unit.members:
                    conversations.update(member.episode.conversations)
        report.conversations += len(conversations)

    invoice = rate(
        contract,
        _usage(tally, prepaid_balance, commitment_prior_subtotals),
        not_billed=tally.not_billed,
        provisional=report.provisional,
        period=period,
        as_of=as_of,
        ledger=ledger,
        unit_episodes=tally.unit_episodes or None,
    )
    report.billed = invoice.total
    if report.ai_resolutions:
        report.model_cost_per_resolution = (report.model_cost / report.ai_resolutions).quantize(
            Decimal("0.0001")
        )
    report.margin = invoice.total - report.model_cost
    return Settlement(invoice=invoice, report=report)


def _judge(
    judge: Judge,
    episode: Episode,
    business: list[tuple[str, Entry]],
    contract: Contract,
    report: SettlementReport,
) -> _Judged:
    if episode.tenant != contract.buyer:
        raise SettlementError(
            f"episode {episode.id} belongs to tenant {episode.tenant!r}, "
            f"not to the contract's buyer {contract.buyer!r}"
        )
    _, verdict, final_at = judge.classify(episode)
    found = _business(episode, business, contract, report) if business else []
    return _Judged(episode, verdict, final_at, found)


def _business(
    episode: Episode,
    business: list[tuple[str, Entry]],
    contract: Contract,
    report: SettlementReport,
) -> list[tuple[str, Decimal]]:
    """The episode's business events as (order key, signed amount): an order or subscription
    adds, a refund subtracts. A business event names an intent (or follows one), so it belongs
    to exactly one episode: the one whose entries hold it."""
    inside = set(episode.event_hashes)
    found = []
    for leaf, entry in business:
        data = entry.event.data
        if leaf not in inside:
            continue
        assert isinstance(data, BusinessEvent)
        if data.currency != contract.currency:
            report.business_events_other_currency += 1
            continue
        sign = -1 if data.kind == "refund" else 1
        found.append((data.reference or entry.event.id, sign * data.amount))
    return found


def _units(
    judged: list[_Judged],
    fold: Callable[[Sequence[tuple[str, Verdict]]], tuple[str, Verdict]],
    per_conversation: bool,
) -> list[_Unit]:
    if not per_conversation:
        return [_Unit(item.episode.id, item.verdict, item.final_at, [item]) for item in judged]
    # An episode belongs to the conversation it started in (its id's), once.
    by_conversation: dict[str, list[_Judged]] = {}
    for item in judged:
        by_conversation.setdefault(item.episode.conversations[0], []).append(item)
    units = []
    for members in by_conversation.values():
        counted, verdict = fold([(item.episode.id, item.verdict) for item in members])
        final_at = max(item.final_at for item in members)
        units.append(_Unit(counted, verdict, final_at, members))
    return units


def _count(
    unit: _Unit,
    contract: Contract,
    tally: _Tally,
    report: SettlementReport,
    window_seconds: int,
    per_conversation: bool,
) -> None:
    """Add one unit final in the period to the tally and the report."""
    verdict = unit.verdict
    report.units += 1
    report.episodes += len(unit.members)
    for member in unit.members:
        report.model_cost += member.episode.model_cost
    if verdict.outcome == EXCLUDED:
        tally.not_billed[EXCLUDED] += 1
        return
    nobody_took_over = not any(member.episode.handed_off for member in unit.members)
    for member in unit.members:
        _report_episode(member, report, window_seconds)
    if verdict.outcome in report.outcomes:
        report.outcomes[verdict.outcome] += 1
    if verdict.billable:
        report.billable += 1
        tally.outcomes.setdefault(verdict.outcome, []).append(
            WeightedEpisode(episode=unit.id, weight=verdict.weight)
        )
        if per_conversation:
            tally.unit_episodes[unit.id] = tuple(sorted(m.episode.id for m in unit.members))
        for member in unit.members:
            for order, amount in member.business:
                total, episodes = tally.orders.get(order, (Decimal(0), set()))
                tally.orders[order] = (total + amount, episodes | {member.episode.id})
    else:
        key = verdict.gate or verdict.outcome
        tally.not_billed[key] = tally.not_billed.get(key, 0) + 1
    tally.measured_units += 1
    tally.resolved_units += verdict.billable and nobody_took_over
    terms = contract.outcomes.get(verdict.outcome)
    if terms is not None and terms.case_cost is not None:
        tally.cases += 1
        tally.case_cost += terms.case_cost
        tally.case_episodes += [member.episode.id for member in unit.members]
    for member in unit.members:
        episode = member.episode
        if verdict.outcome != NO_OUTCOME and episode.review_passed is not None:
            tally.reviewed += 1
            tally.passed += episode.review_passed
        if episode.model_calls:
            tally.latencies.append(episode.latency_ms_max)
        if episode.csat is not None:
            tally.csat_total += episode.csat
            tally.csat_answers += 1
        if episode.holdout_group is not None:
            _, total = tally.holdout.get(episode.customer, (episode.holdout_group, Decimal(0)))
            net = sum((amount for _, amount in member.business), Decimal(0))
            tally.holdout[episode.customer] = (episode.holdout_group, total + net)


def _report_episode(member: _Judged, report: SettlementReport, window_seconds: int) -> None:
    """The vendor's summary counts for one episode; see `SettlementReport`."""
    episode, billable = member.episode, member.verdict.billable
    recontact = episode.recontact_delay_seconds
    taken_over = episode.handoff_at is not None and episode.handoff_at <= member.final_at
    if taken_over:
        report.handoffs += 1
        report.handoffs_with_context += bool(episode.context_passed)
    elif billable:
        report.ai_resolutions += 1
        if episode.confirmed is True:
            report.confirmed_resolutions += 1
        else:
            report.assumed_resolutions += 1
        if recontact is not None and recontact >= window_seconds:
            report.recontacts_outside_window += 1
    elif recontact is not None and recontact < window_seconds:
        report.recontacts_inside_window += 1
    else:
        report.unresolved += 1


def _ratio(numerator: int | Decimal, denominator: int, *, up: bool = False) -> Decimal:
    # Rounded down (see the module docstring), or up where a smaller figure would favour the
    # vendor; exact when the quotient has 12 places or fewer.
    context = _UP if up else _DOWN
    quotient = context.divide(Decimal(numerator), Decimal(denominator)).quantize(
        _QUANTUM, context=context
    )
    # Without the trailing zeros of the quantum: 1.05, not 1.050000000000, on the invoice.
    if quotient == quotient.to_integral_value():
        return quotient.quantize(Decimal(1))
    return quotient.normalize(context)


def _usage(tally: _Tally, prepaid_balance: Decimal | None, prior: Sequence[Decimal]) -> Usage:
    attributed = tuple(
        AttributedAmount(order=order, amount=total, episodes=tuple(sorted(episodes)))
        for order, (total, episodes) in sorted(tally.orders.items())
        if total > 0
    )
    groups: dict[str, list[Decimal]] = {"treatment": [], "control": []}
    for group, total in tally.holdout.values():
        groups[group].append(total)
    holdout = None
    if tally.holdout:
        holdout = Holdout(
            treated=GroupMeasurement.from_values(groups["treatment"]),
            control=GroupMeasurement.from_values(groups["control"]),
        )
    case_costs = None
    if tally.cases:
        case_costs = CaseCosts(
            cases=tally.cases,
            # Rounded up: a savings share never bills savings the cases did not make.
            actual_cost_per_case=_ratio(tally.case_cost, tally.cases, up=True),
            episodes=tuple(sorted(tally.case_episodes)),
        )
    latencies = sorted(tally.latencies)
    sla = SlaMeasurements(
        resolution_rate=(
            _ratio(tally.resolved_units, tally.measured_units) if tally.measured_units else None
        ),
        # Nearest rank: the smallest value with at least 95% of the values at or below it.
        p95_latency_ms=(
            Decimal(latencies[-(-95 * len(latencies) // 100) - 1]) if latencies else None
        ),
        csat=_ratio(tally.csat_total, tally.csat_answers) if tally.csat_answers else None,
    )
    return Usage(
        outcomes={kind: tuple(items) for kind, items in tally.outcomes.items()},
        reviews=Reviews(reviewed=tally.reviewed, passed=tally.passed),
        attributed=attributed,
        holdout=holdout,
        case_costs=case_costs,
        sla=sla,
        prepaid_balance=prepaid_balance,
        commitment_prior_subtotals=tuple(prior),
    )

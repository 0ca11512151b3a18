"""Adjustments: what changed since earlier invoices were issued, as credit and debit lines on
the next invoice. Pure, over plain data, so every engine gives the same adjustments.

An issued invoice never changes. Settling period N+1 compares each earlier issued invoice of
the contract with what it should now say, and bills the difference, line by line:

- `late_events`: the invoice's period settled again with what the ledger holds now (the
  "hindsight" invoice, from any engine): events that arrived after the invoice was issued, and
  review verdicts, change its lines; each line of the hindsight invoice is matched to the
  issued line of the same kind, outcome and contract part (in order), and a line the issued
  invoice did not have is corrected as line None;
- `reopened`: a billed episode whose customer came back within the contract's `reopen` after
  its window closed (wrote again in its conversation, or a recontact named it) is credited;
- `dispute`: an upheld dispute credits the episodes it names, or what is left of the lines it
  names (`raas.core.disputes`).

Episode credits take the line's amount apart by units (episodes, or conversations when the
contract counts per conversation): with n units on the line, taking off the first c costs the
line's amount x c / n, rounded by the contract's rule, so crediting every unit credits exactly
the line's amount (on a flat per-outcome line, each unit is its unit price). A unit is credited
once, for the first reason in the order above.

Each correction has a target (what it should have credited or debited in all) and what earlier
invoices already adjusted for it (their adjustment lines with the same `corrects`); a line is
written only for the difference. Hence adjusting again never adjusts twice, a dispute upheld
and then re-settled never credits twice, and the issued invoice plus all its adjustments is
what settling its period with full hindsight gives (less what disputes and reopens credit).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

import msgspec

from raas.core.contract import Contract
from raas.core.disputes import Dispute, audit_sample, disputes_of
from raas.core.events import Event
from raas.core.features import INACTIVITY_UNBOUNDED_SECONDS
from raas.core.invoice import AuditSample, Correction, Invoice, InvoiceLine
from raas.core.minimum_runs import commitment_prior_subtotals
from raas.core.money import quantize
from raas.core.periods import Period, parse_period
from raas.core.prepaid import prepaid_drawn_before
from raas.core.settle import Settlement
from raas.core.versions import SettleOne, settle_versions
from raas.errors import SettlementError

__all__ = [
    "DISPUTE",
    "LATE_EVENTS",
    "REOPENED",
    "EpisodeRows",
    "adjustments",
    "reopened_episodes",
    "resettle_horizon",
    "settle_with_adjustments",
]

# Episode ids -> their features rows (`raas.core.features`), read from whatever the engine reads.
EpisodeRows = Callable[[Collection[str]], Mapping[str, Mapping[str, object]]]

LATE_EVENTS: Final = "late_events"
REOPENED: Final = "reopened"
DISPUTE: Final = "dispute"
_REASON_WORDS: Final = {
    LATE_EVENTS: "correction with what the ledger holds now",
    REOPENED: "credit for outcomes reopened after billing",
    DISPUTE: "credit for upheld dispute",
}
_ZERO: Final = Decimal(0)

# (invoice, line, reason, dispute, the line's identity when the issued invoice did not have it)
_Key = tuple[str, int | None, str, str | None, str]


def settle_with_adjustments(
    versions: Sequence[Contract],
    period: Period,
    settle_one: SettleOne,
    *,
    issued: Sequence[Invoice],
    dispute_events: Iterable[Event] = (),
    episode_rows: EpisodeRows | None = None,
    as_of: datetime | None = None,
) -> Settlement:
    """Settle `period` under its contract versions, then adjust the contract's earlier issued
    invoices (`issued`, of any contract: the others are left alone): each is settled again
    with `settle_one` at `as_of` and compared (`adjustments`), reopened episodes are looked up
    with `episode_rows` (needed only when the contract states `reopen`), and the disputes and
    rulings in `dispute_events` up to `as_of` are applied. The invoice carries the adjustment
    lines and any audit sample the disputes trigger. A period that closes the run of a minimum
    over several periods trues up what `issued` says the run's earlier periods were charged
    (`raas.core.minimum_runs`); prepaid credit is drawn from what `issued` and this invoice's
    adjustments say the earlier periods drew (`raas.core.prepaid`), and each earlier period
    settled again starts from what the periods before it drew, settled again too."""
    as_of = period.end if as_of is None else as_of
    prior = commitment_prior_subtotals(versions, period, issued)
    # Refuses a missing earlier invoice before any period is settled again.
    prepaid_drawn = prepaid_drawn_before(versions, period, issued)
    contract = max(versions, key=lambda version: version.version)
    earlier = sorted(
        (
            invoice
            for invoice in issued
            if invoice.contract == contract.contract and invoice.period_end <= period.start
        ),
        key=lambda invoice: (invoice.period_start, invoice.id),
    )
    lines: tuple[InvoiceLine, ...] = ()
    audits: tuple[AuditSample, ...] = ()
    if earlier:
        lines, audits = _adjusted(
            versions, period, settle_one, issued, earlier, dispute_events, episode_rows, as_of
        )
    if prepaid_drawn is not None and lines:
        # This invoice's corrections of earlier drawdowns count before its own drawdown.
        prepaid_drawn = prepaid_drawn_before(versions, period, issued, corrections=lines)
    settlement = settle_versions(
        versions,
        period,
        settle_one,
        as_of=as_of,
        prepaid_drawn=prepaid_drawn,
        commitment_prior_subtotals=prior,
    )
    invoice = msgspec.structs.replace(settlement.invoice, adjustments=lines, audits=audits)
    return msgspec.structs.replace(settlement, invoice=invoice)


def _adjusted(
    versions: Sequence[Contract],
    period: Period,
    settle_one: SettleOne,
    issued: Sequence[Invoice],
    earlier: Sequence[Invoice],
    dispute_events: Iterable[Event],
    episode_rows: EpisodeRows | None,
    as_of: datetime,
) -> tuple[tuple[InvoiceLine, ...], tuple[AuditSample, ...]]:
    """The adjustment lines and audit samples of `period`'s invoice for the contract's
    `earlier` invoices (oldest first): see `settle_with_adjustments`."""
    contract = max(versions, key=lambda version: version.version)
    disputes = disputes_of(
        (event for event in dispute_events if event.time <= as_of),
        contract,
        {invoice.id: invoice for invoice in earlier},
    )
    horizon = resettle_horizon(versions)
    late_rulings = {
        dispute.invoice_id
        for dispute in disputes
        if dispute.upheld and dispute.ruled_at is not None
        for invoice in earlier
        if invoice.id == dispute.invoice_id and dispute.ruled_at >= invoice.period_end + horizon
    }
    hindsight: dict[str, Invoice] = {}
    for invoice in earlier:  # oldest first: each draws prepaid credit after those before it
        if period.start >= invoice.period_end + horizon and invoice.id not in late_rulings:
            continue  # nothing can change its outcomes any more: see `resettle_horizon`
        try:
            again = parse_period(invoice.period, contract.time_zone)
            hindsight[invoice.id] = settle_versions(
                versions,
                again,
                settle_one,
                as_of=as_of,
                prepaid_drawn=prepaid_drawn_before(versions, again, issued, hindsight=hindsight),
                # The run's earlier invoices as they were when this one was issued: its
                # true-up changes only with what changed in its own period.
                commitment_prior_subtotals=commitment_prior_subtotals(versions, again, issued),
            ).invoice
        except SettlementError as error:
            raise SettlementError(
                f"cannot adjust the issued invoice {invoice.id} ({error}): settle with every "
                f"version of contract {contract.contract} in force since period {invoice.period}"
            ) from error
    reopened: set[str] = set()
    if contract.reopen is not None:
        if episode_rows is None:
            raise ValueError("a contract that states `reopen` needs the episodes' rows")
        billed = {
            episode
            for invoice in earlier
            if invoice.id in hindsight
            for line in invoice.lines
            for episode in line.episodes
        }
        reopened = reopened_episodes(contract, episode_rows(billed))
    lines = adjustments(contract, earlier, hindsight, reopened=reopened, disputes=disputes)
    audited = {audit.invoice for invoice in issued for audit in invoice.audits}
    audits = tuple(
        sample
        for invoice in earlier
        if invoice.id not in audited
        for sample in [audit_sample(contract, invoice, disputes)]
        if sample is not None
    )
    return lines, audits


def resettle_horizon(versions: Sequence[Contract]) -> timedelta:
    """How long after its period ends an issued invoice is still settled again for adjustments:
    as long as its outcomes can still change under the contract's own terms.

    - Late events and reopens: an outcome final in the period had its window close by the
      period's end; a customer coming back reopens it up to `reopen` after that, and events of
      the period delivered late are looked for as long (one `window` at least, when the
      contract states no `reopen`). Hence window + reopen.
    - Disputes: the buyer may file until `disputes.deadline` after the period's end.

    The longest of these over the contract's versions (an earlier one may state longer terms).
    Settling a period that starts at or after an invoice's period end + this horizon leaves
    that invoice alone, unless a dispute of it was upheld after the horizon (a ruling may come
    after the deadline the filing met): then it is settled again so the credit is billed. Events
    delivered later than the horizon no longer adjust the invoice: the terms end there."""
    return max(
        max(
            version.window + (version.reopen or timedelta(0)),
            version.disputes.deadline,
        )
        for version in versions
    )


def _billed(invoice: Invoice) -> set[str]:
    return {episode for line in invoice.lines for episode in line.episodes}


def reopened_episodes(contract: Contract, rows: Mapping[str, Mapping[str, object]]) -> set[str]:
    """The episodes (of `rows`: episode id -> features, see `raas.core.features`) whose
    customer first came back after the window closed and within the contract's `reopen` after
    it. None without `reopen` in the contract."""
    if contract.reopen is None:
        return set()
    window = int(contract.window.total_seconds())
    limit = window + int(contract.reopen.total_seconds())
    found = set()
    for episode, row in rows.items():
        returns = [
            value
            for value in (row.get("inactivity"), row.get("recontact_delay"))
            if isinstance(value, int) and value < INACTIVITY_UNBOUNDED_SECONDS
        ]
        if returns and window <= min(returns) < limit:
            found.add(episode)
    return found


def adjustments(
    contract: Contract,
    issued: Sequence[Invoice],
    hindsight: Mapping[str, Invoice],
    *,
    reopened: Collection[str] = (),
    disputes: Sequence[Dispute] = (),
) -> tuple[InvoiceLine, ...]:
    """The adjustment lines of the next invoice.

    `issued` are the contract's earlier issued invoices (their `adjustments` are what was
    already corrected); `hindsight` maps the id of each invoice to correct to its period
    settled again now; `reopened` are episodes reopened after billing (`reopened_episodes`);
    `disputes` the disputes with their rulings (`raas.core.disputes.disputes_of`)."""
    already: dict[_Key, Decimal] = {}
    for invoice in issued:
        for line in invoice.adjustments:
            assert line.corrects is not None, line
            key = _key_of(line.corrects, line)
            already[key] = already.get(key, _ZERO) + line.amount
    lines: list[InvoiceLine] = []
    reopened_set = set(reopened)
    for invoice in sorted(issued, key=lambda invoice: (invoice.period_start, invoice.id)):
        again = hindsight.get(invoice.id)
        if again is None:
            continue
        upheld = sorted(
            (d for d in disputes if d.invoice_id == invoice.id and d.upheld),
            key=lambda d: (d.ruled_at, d.dispute_id),
        )
        matched, new = _match(invoice.lines, again.lines)
        for index, line in enumerate(invoice.lines):
            targets = _targets(contract, line, matched[index], index, reopened_set, upheld)
            lines += _written(invoice.id, index, line, targets, already)
        for line, amount, episodes in _by_identity(new):
            target = (LATE_EVENTS, None, amount, episodes)
            lines += _written(invoice.id, None, line, [target], already)
    return tuple(lines)


def _key_of(corrects: Correction, line: InvoiceLine) -> _Key:
    identity = ""
    if corrects.line is None:
        identity = f"{line.outcome}|{None if line.part is None else line.part.version}"
    return (corrects.invoice, corrects.line, corrects.reason, corrects.dispute, identity)


def _by_identity(
    new: Sequence[InvoiceLine],
) -> list[tuple[InvoiceLine, Decimal, tuple[str, ...]]]:
    """The lines an issued invoice did not have, one per outcome and part (corrections of a
    line that was not there are found again by these two alone)."""
    grouped: dict[tuple[str, int | None], tuple[InvoiceLine, Decimal, set[str]]] = {}
    for line in new:
        key = (line.outcome, None if line.part is None else line.part.version)
        first, amount, episodes = grouped.get(key, (line, _ZERO, set()))
        grouped[key] = (first, amount + line.amount, episodes | set(line.episodes))
    return [(line, amount, tuple(sorted(episodes))) for line, amount, episodes in grouped.values()]


def _identity(line: InvoiceLine) -> tuple[str, str, int | None]:
    return (line.kind, line.outcome, None if line.part is None else line.part.version)


def _match(
    issued: Sequence[InvoiceLine], again: Sequence[InvoiceLine]
) -> tuple[list[InvoiceLine | None], list[InvoiceLine]]:
    """For each issued line its hindsight line (the n-th of the same identity), and the
    hindsight lines no issued line matches."""
    pending: dict[tuple[str, str, int | None], list[InvoiceLine]] = {}
    for line in again:
        pending.setdefault(_identity(line), []).append(line)
    matched: list[InvoiceLine | None] = []
    for line in issued:
        candidates = pending.get(_identity(line))
        matched.append(candidates.pop(0) if candidates else None)
    new = [line for candidates in pending.values() for line in candidates]
    return matched, sorted(new, key=lambda line: again.index(line))


_Target = tuple[str, str | None, Decimal, tuple[str, ...]]  # reason, dispute, amount, episodes


def _targets(
    contract: Contract,
    line: InvoiceLine,
    again: InvoiceLine | None,
    index: int,
    reopened: set[str],
    upheld: Sequence[Dispute],
) -> list[_Target]:
    now = again.amount if again is not None else _ZERO
    changed = set(line.episodes) ^ set(again.episodes if again is not None else ())
    targets: list[_Target] = [(LATE_EVENTS, None, now - line.amount, tuple(sorted(changed)))]
    units = _units(contract, again.episodes if again is not None else ())
    credited = _Credits(contract, now, len(units))
    reopened_units = {unit for unit, members in units.items() if members & reopened}
    targets.append(credited.take(REOPENED, None, reopened_units, units))
    for dispute in upheld:
        if index in dispute.lines:
            chosen = set(units) if units else {""}
        else:
            chosen = {unit for unit, members in units.items() if members & set(dispute.episodes)}
        targets.append(credited.take(DISPUTE, dispute.dispute_id, chosen, units))
    return targets


class _Credits:
    """Units taken off one line, cumulatively, so that the credits add up to the amount."""

    def __init__(self, contract: Contract, amount: Decimal, units: int) -> None:
        self.contract, self.amount, self.units = contract, amount, units
        self.taken: set[str] = set()

    def _share(self, count: int) -> Decimal:
        if self.units == 0:
            return self.amount if count else _ZERO  # a line without units is taken whole
        share = self.amount * count / self.units
        return quantize(share, self.contract.currency, self.contract.rounding)

    def take(
        self, reason: str, dispute: str | None, chosen: set[str], units: Mapping[str, set[str]]
    ) -> _Target:
        fresh = chosen - self.taken
        before = self._share(len(self.taken))
        self.taken |= fresh
        credit = self._share(len(self.taken)) - before
        episodes = tuple(sorted(episode for unit in fresh for episode in units.get(unit, ())))
        return (reason, dispute, -credit, episodes)


def _units(contract: Contract, episodes: Iterable[str]) -> dict[str, set[str]]:
    """The line's units: its episodes, or per conversation the conversations their ids start
    with ("<first conversation>#<intent>")."""
    units: dict[str, set[str]] = {}
    per_conversation = contract.count == "per_conversation"
    for episode in episodes:
        unit = episode.rpartition("#")[0] or episode if per_conversation else episode
        units.setdefault(unit, set()).add(episode)
    return units


def _written(
    invoice: str,
    index: int | None,
    line: InvoiceLine,
    targets: Iterable[_Target],
    already: Mapping[_Key, Decimal],
) -> list[InvoiceLine]:
    written = []
    for reason, dispute, target, episodes in targets:
        corrects = Correction(invoice=invoice, line=index, reason=reason, dispute=dispute)
        delta = target - already.get(_key_of(corrects, line), _ZERO)
        if not delta:
            continue
        what = _REASON_WORDS[reason] + (f" {dispute}" if dispute else "")
        # Invoices number their lines from 1 for people; `corrects.line` keeps the index.
        where = f"line {index + 1}" if index is not None else "a line it did not have"
        written.append(
            InvoiceLine(
                outcome=line.outcome,
                description=f"{line.description}: {what} (invoice {invoice}, {where})",
                quantity=1,
                unit_price=delta,
                amount=delta,
                episodes=episodes,
                kind="adjustment",
                part=line.part,
                corrects=corrects,
            )
        )
    return written

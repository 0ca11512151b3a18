"""Disputes: the buyer contests lines or episodes of an issued invoice; a reviewer rules. Pure.

Both are events in the buyer's ledger (`DisputeFiled`, `DisputeRuled`), so a dispute and its
ruling are as tamper-evident as the work they contest. Their envelope names the customer
`DISPUTE_CUSTOMER` and the dispute id as its conversation; episodes never include them.

The rules, stated once here and applied by `check_filing`, `check_ruling` and `disputes_of`:
- a dispute names an issued invoice, and lines of it (by position) or episodes it bills;
- it is filed before the contract's `disputes.deadline` has passed since the end of the
  invoice's period; a later filing is refused (and one found in the ledger anyway is ignored);
- a dispute is ruled once, upheld or rejected; an upheld dispute is credited on the next
  invoice (`raas.core.adjust`);
- when the episodes disputed on one invoice are more than `disputes.audit_rate` of the episodes
  it bills, the next invoice names an audit sample: `disputes.audit_sample` of its billed
  episodes, the ones with the smallest SHA-256 of "<invoice id>/<episode id>" (the same invoice
  always gives the same sample, and neither side can pick it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final, Literal

import msgspec

from raas.core.contract import Contract
from raas.core.events import DISPUTE_CUSTOMER, DisputeFiled, DisputeRuled, Event, make_event
from raas.core.invoice import AuditSample, Invoice
from raas.errors import RaasError

__all__ = [
    "DISPUTE_CUSTOMER",
    "Dispute",
    "DisputeError",
    "DisputeLate",
    "audit_sample",
    "billed_episodes",
    "check_deadline",
    "check_filing",
    "check_ruling",
    "dispute_deadline",
    "dispute_event",
    "disputes_of",
]

RATE_PLACES: Final = 6


class DisputeError(RaasError):
    """A dispute or a ruling cannot be accepted: which dispute, and why."""


class DisputeLate(DisputeError):
    """A filing after the contract's dispute deadline, `deadline` (UTC)."""

    def __init__(self, message: str, deadline: datetime) -> None:
        super().__init__(message)
        self.deadline = deadline


class Dispute(msgspec.Struct, frozen=True, kw_only=True):
    """A filed dispute and its ruling, if any, as the ledger holds them."""

    dispute_id: str
    invoice_id: str
    lines: tuple[int, ...]
    episodes: tuple[str, ...]
    reason: str
    filed_by: str
    filed_at: datetime
    ruling: Literal["upheld", "rejected"] | None = None
    ruled_by: str | None = None
    ruled_at: datetime | None = None
    note: str | None = None

    @property
    def upheld(self) -> bool:
        return self.ruling == "upheld"


def dispute_event(
    data: DisputeFiled | DisputeRuled, *, id: str, source: str, time: datetime, tenant: str
) -> Event:
    """The ledger event of a filing or a ruling, its envelope filled as ingest requires."""
    return make_event(
        data,
        id=id,
        source=source,
        time=time,
        tenant=tenant,
        customer=DISPUTE_CUSTOMER,
        conversation=data.dispute_id,
    )


def dispute_deadline(contract: Contract, invoice: Invoice) -> datetime:
    """The first instant at which a dispute of `invoice` is too late (UTC)."""
    return invoice.period_end.astimezone(UTC) + contract.disputes.deadline


def check_deadline(
    contract: Contract, invoice: Invoice, filed_at: datetime, where: str = ""
) -> None:
    """Refuse a filing of `invoice` at `filed_at` once the contract's deadline has passed,
    naming both instants in the contract's zone; `where` names the filing in the message."""
    deadline = dispute_deadline(contract, invoice)
    if filed_at >= deadline:
        zone = contract.zone
        raise DisputeLate(
            f"{where or f'a dispute of invoice {invoice.id}'}: filed "
            f"{filed_at.astimezone(zone).isoformat()}, after the deadline "
            f"{deadline.astimezone(zone).isoformat()} ({contract.disputes.deadline.days} days "
            f"after the end of period {invoice.period}, as contract {contract.contract} states)",
            deadline,
        )


def billed_episodes(invoice: Invoice) -> tuple[str, ...]:
    """Every episode the invoice's lines bill, sorted."""
    return tuple(sorted({episode for line in invoice.lines for episode in line.episodes}))


def check_filing(
    contract: Contract,
    invoice: Invoice,
    filing: DisputeFiled,
    filed_at: datetime,
    earlier: Iterable[Dispute] = (),
) -> None:
    """Refuse a filing that is late, names what the invoice does not hold, or reuses an id."""
    where = f"dispute {filing.dispute_id!r} of invoice {invoice.id}"
    if filing.invoice_id != invoice.id:
        raise DisputeError(f"{where}: names invoice {filing.invoice_id!r}")
    if invoice.contract != contract.contract:
        raise DisputeError(f"{where}: the invoice is of contract {invoice.contract!r}")
    if any(dispute.dispute_id == filing.dispute_id for dispute in earlier):
        raise DisputeError(f"{where}: a dispute with this id was already filed")
    check_deadline(contract, invoice, filed_at, where)
    for line in filing.lines:
        if line >= len(invoice.lines):
            raise DisputeError(
                f"{where}: line {line} does not exist; the invoice has lines 0 to "
                f"{len(invoice.lines) - 1}"
            )
    billed = set(billed_episodes(invoice))
    for episode in filing.episodes:
        if episode not in billed:
            raise DisputeError(f"{where}: episode {episode!r} is not billed on the invoice")


def check_ruling(disputes: Iterable[Dispute], ruling: DisputeRuled) -> Dispute:
    """The filed dispute a ruling rules on; refuse a ruling on an unknown or ruled dispute."""
    for dispute in disputes:
        if dispute.dispute_id != ruling.dispute_id:
            continue
        if dispute.ruling is not None:
            raise DisputeError(
                f"dispute {ruling.dispute_id!r} was already ruled {dispute.ruling} by "
                f"{dispute.ruled_by}"
            )
        return dispute
    raise DisputeError(f"dispute {ruling.dispute_id!r} was never filed")


def disputes_of(
    events: Iterable[Event], contract: Contract, invoices: Mapping[str, Invoice]
) -> list[Dispute]:
    """The disputes of the contract's `invoices` (by id) that the ledger's events file and
    rule, sorted by filing time and id. A filing of another invoice, a late or invalid one, a
    second filing under one id, a ruling before its filing and one after the first are ignored,
    as `check_filing` and `check_ruling` would have refused them."""
    events = list(events)
    filings = sorted(
        (event for event in events if isinstance(event.data, DisputeFiled)),
        key=lambda event: (event.time, event.source, event.id),
    )
    found: dict[str, Dispute] = {}
    for event in filings:
        data = event.data
        assert isinstance(data, DisputeFiled)
        invoice = invoices.get(data.invoice_id)
        if invoice is None:
            continue
        try:
            check_filing(contract, invoice, data, event.time, found.values())
        except DisputeError:
            continue
        found[data.dispute_id] = Dispute(
            dispute_id=data.dispute_id,
            invoice_id=data.invoice_id,
            lines=data.lines,
            episodes=data.episodes,
            reason=data.reason,
            filed_by=data.filed_by,
            filed_at=event.time,
        )
    ordered = sorted(found.values(), key=lambda dispute: (dispute.filed_at, dispute.dispute_id))
    return _with_rulings(ordered, events)


def _with_rulings(disputes: list[Dispute], events: Iterable[Event]) -> list[Dispute]:
    """`disputes` with the first ruling on each, by time; a ruling before its filing does not
    count."""
    by_id = {dispute.dispute_id: dispute for dispute in disputes}
    rulings = sorted(
        (event for event in events if isinstance(event.data, DisputeRuled)),
        key=lambda event: (event.time, event.source, event.id),
    )
    for event in rulings:
        data = event.data
        assert isinstance(data, DisputeRuled)
        dispute = by_id.get(data.dispute_id)
        if dispute is None or dispute.ruling is not None or event.time < dispute.filed_at:
            continue
        by_id[data.dispute_id] = msgspec.structs.replace(
            dispute, ruling=data.ruling, ruled_by=data.ruled_by, ruled_at=event.time, note=data.note
        )
    return [by_id[dispute.dispute_id] for dispute in disputes]


def audit_sample(
    contract: Contract, invoice: Invoice, disputes: Iterable[Dispute]
) -> AuditSample | None:
    """The audit sample the disputes of `invoice` trigger, or None below the contract's rate.

    The disputed episodes are those named by its disputes (upheld, rejected or not yet ruled:
    the rate measures how much the buyer contests) and those of the lines they name."""
    terms = contract.disputes
    billed = billed_episodes(invoice)
    if terms.audit_rate is None or not billed:
        return None
    disputed: set[str] = set()
    for dispute in disputes:
        if dispute.invoice_id != invoice.id:
            continue
        disputed.update(dispute.episodes)
        for line in dispute.lines:
            disputed.update(invoice.lines[line].episodes)
    rate = (Decimal(len(disputed & set(billed))) / Decimal(len(billed))).quantize(
        Decimal(1).scaleb(-RATE_PLACES)
    )
    if Decimal(len(disputed & set(billed))) <= terms.audit_rate * len(billed):
        return None
    ranked = sorted(
        billed, key=lambda episode: hashlib.sha256(f"{invoice.id}/{episode}".encode()).digest()
    )
    return AuditSample(
        invoice=invoice.id,
        dispute_rate=rate,
        episodes=tuple(sorted(ranked[: terms.audit_sample])),
    )

"""Disputes as the dashboard shows them: each filing folded with its ruling, if any. Pure.

Filings and rulings are ledger events (`raas.core.disputes`); a dispute is open until a ruling
names it, and the first ruling stands (a later one for the same dispute is ignored and shown
as such nowhere: the vendor's page offers no second ruling).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from raas.core.events import DisputeFiled, DisputeRuled, Event


class Dispute(msgspec.Struct, frozen=True, kw_only=True):
    dispute_id: str
    invoice_id: str
    lines: tuple[int, ...]  # positions in the invoice's lines, from 0
    episodes: tuple[str, ...]
    reason: str
    filed_by: str
    filed_at: datetime
    ruling: str | None = None  # "upheld" or "rejected"; None while open
    ruled_by: str | None = None
    note: str | None = None
    ruled_at: datetime | None = None

    @property
    def status(self) -> str:
        return self.ruling or "open"


def fold_disputes(events: Iterable[Event]) -> list[Dispute]:
    """The disputes in `events` (any order), each with its first ruling; newest filing first.
    A ruling whose filing is not among the events is left out."""
    ordered = sorted(events, key=lambda event: (event.time, event.id))
    disputes: dict[str, Dispute] = {}
    for event in ordered:
        data = event.data
        if isinstance(data, DisputeFiled) and data.dispute_id not in disputes:
            disputes[data.dispute_id] = Dispute(
                dispute_id=data.dispute_id,
                invoice_id=data.invoice_id,
                lines=tuple(data.lines),
                episodes=tuple(data.episodes),
                reason=data.reason,
                filed_by=data.filed_by,
                filed_at=event.utc_time,
            )
    for event in ordered:
        data = event.data
        if isinstance(data, DisputeRuled):
            filed = disputes.get(data.dispute_id)
            if filed is not None and filed.ruling is None:
                disputes[data.dispute_id] = msgspec.structs.replace(
                    filed,
                    ruling=data.ruling,
                    ruled_by=data.ruled_by,
                    note=data.note,
                    ruled_at=event.utc_time,
                )
    return sorted(
        disputes.values(), key=lambda item: (item.filed_at, item.dispute_id), reverse=True
    )

"""Disputes: the buyer contests lines or episodes of an issued invoice; a reviewer rules.

Both are events in the buyer's ledger (`DisputeFiled`, `DisputeRuled`), so a dispute and its
ruling are as tamper-evident as the work they contest. Their envelope names the customer
`DISPUTE_CUSTOMER` and the dispute id as its conversation; episodes never include them.
"""

from __future__ import annotations

from datetime import datetime

from raas.core.events import DISPUTE_CUSTOMER, DisputeFiled, DisputeRuled, Event, make_event

__all__ = ["DISPUTE_CUSTOMER", "dispute_event"]


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

"""Invoices: the settlement of one contract for one period, and its byte-exact JSON form.

Every line carries its quantity, unit price, amount and the episodes behind it, so a buyer can
check each line down to the conversation. Times are rendered in the contract's time zone.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec


class LedgerPoint(msgspec.Struct, frozen=True, kw_only=True):
    """The ledger state a settlement read: the buyer's log up to `size` entries."""

    tenant: str
    size: int


class InvoiceLine(msgspec.Struct, frozen=True, kw_only=True):
    """Quantity x unit price = amount, and the episodes that make up the quantity."""

    outcome: str
    description: str
    quantity: int
    unit_price: Decimal
    amount: Decimal
    episodes: tuple[str, ...]


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    """One contract, one period, one ledger state: lines, their total, and what was not billed."""

    id: str
    contract: str
    contract_version: int
    vendor: str
    buyer: str
    currency: str
    time_zone: str
    period: str
    period_start: datetime  # in the contract's zone
    period_end: datetime  # exclusive
    as_of: datetime
    ledger: LedgerPoint
    rounding: str
    lines: tuple[InvoiceLine, ...]
    total: Decimal
    not_billed: dict[str, int]  # final outcomes in the period that carry no charge
    provisional: int  # episodes whose window was still open at `as_of`


def invoice_json(invoice: Invoice) -> bytes:
    """The invoice as indented JSON with sorted keys: the same invoice gives the same bytes."""
    compact = msgspec.json.encode(invoice, order="sorted")
    return msgspec.json.format(compact, indent=2) + b"\n"


def invoice_from_json(data: bytes) -> Invoice:
    return msgspec.json.decode(data, type=Invoice)

"""Invoices: the settlement of one contract for one period, and its byte-exact JSON form.

Every line carries its quantity, unit price, amount, the figures behind them and the episodes
behind it, so a buyer can check each line down to the conversation. Times are rendered in the
contract's time zone. The vendor's costs (model calls) never appear here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from urllib.parse import quote

import msgspec


class LedgerPoint(msgspec.Struct, frozen=True, kw_only=True):
    """The ledger state a settlement read: the buyer's log up to `size` entries.

    `root` is the Merkle root of that log at `size`, base64 as on the root line of the signed
    checkpoint the settlement read, so the invoice names the checkpoint, not only its size.
    None when the settlement read no checkpoint, and on invoices issued before the root was
    recorded (they still read; `raas verify` then checks the size alone).
    """

    tenant: str
    size: int
    root: str | None = None


class ContractPart(msgspec.Struct, frozen=True, kw_only=True):
    """The part of a period one contract version rated, when a new version took effect inside
    the period: [start, end) in the contract's zone."""

    version: int
    start: datetime
    end: datetime


class Correction(msgspec.Struct, frozen=True, kw_only=True):
    """What an adjustment line corrects: a line of an issued invoice (its position in that
    invoice's `lines`, from 0; None for a line the invoice did not have), and why:
    `late_events` (the period settled again with what the ledger holds now), `reopened` (a
    billed outcome whose customer came back within the contract's `reopen`) or `dispute` (an
    upheld dispute, named by `dispute`)."""

    invoice: str
    line: int | None
    reason: str
    dispute: str | None = None


class AuditSample(msgspec.Struct, frozen=True, kw_only=True):
    """Disputes on `invoice` passed the contract's audit rate: these of its billed episodes
    are to be reviewed (review verdicts in the ledger; a failed one un-bills the episode under
    a review gate on the next settlement)."""

    invoice: str
    dispute_rate: Decimal
    episodes: tuple[str, ...]


class InvoiceLine(msgspec.Struct, frozen=True, kw_only=True):
    """Quantity x unit price = amount (rounded once, by the contract's rule), the figures the
    quantity and the price were computed from, and the episodes behind the line.

    `kind` is the pricing line's kind (`outcome`, `tier`, `package`, `accuracy_tier`,
    `business_share`, `uplift_share`, `savings_share`, and the adjustments `minimum_true_up`,
    `cap`, `sla_credit`, `prepaid_drawdown`, whose amounts are negative when they credit; and
    `adjustment`, in an invoice's `adjustments`, with what it `corrects`).
    `outcome` names the outcomes the line bills (comma-separated when a charge prices several),
    or the line's kind when it bills no outcome. `quantity` is a whole number when it counts
    things, a decimal when it is weighted or an amount (the value of orders, savings). When the
    contract counts per conversation, the quantity counts conversations and `episodes` lists
    every episode of them."""

    outcome: str
    description: str
    quantity: int | Decimal
    unit_price: Decimal
    amount: Decimal
    episodes: tuple[str, ...]
    kind: str = "outcome"
    basis: dict[str, Decimal] = {}
    part: ContractPart | None = None  # when contract versions split the period
    corrects: Correction | None = None  # on adjustment lines


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
    not_billed: dict[str, int]  # final outcomes in the period that carry no charge, by kind
    provisional: int  # outcomes (episodes, or conversations) not yet final at `as_of`
    prepaid_balance: Decimal | None = None  # left after this invoice, for prepaid contracts
    # What changed since earlier invoices were issued (`raas.core.adjust`); not part of `total`.
    adjustments: tuple[InvoiceLine, ...] = ()
    audits: tuple[AuditSample, ...] = ()

    @property
    def prepaid_balance_before(self) -> Decimal | None:
        """The prepaid credit left before this invoice: what it left plus what it drew down
        (None when its contract has no prepaid credit)."""
        if self.prepaid_balance is None:
            return None
        drawn = [line.amount for line in self.lines if line.kind == "prepaid_drawdown"]
        return self.prepaid_balance - sum(drawn, Decimal(0))

    @property
    def due(self) -> Decimal:
        """What the buyer owes for this invoice: its total and its adjustments (negative when
        the credits are larger)."""
        return sum((line.amount for line in self.adjustments), self.total)


def invoice_json(invoice: Invoice) -> bytes:
    """The invoice as indented JSON with sorted keys: the same invoice gives the same bytes."""
    compact = msgspec.json.encode(invoice, order="sorted")
    return msgspec.json.format(compact, indent=2) + b"\n"


def invoice_file_stem(invoice: Invoice) -> str:
    """What files of this invoice are named, before the extension: "invoice-<buyer>_<id>".

    Ids repeat across buyers (a vendor names every buyer's contract alike), so the buyer is in
    the name. An id has no "_" (contract names are [a-z0-9-], then -v<version>-<YYYY-MM>), so
    the last "_" parts buyer and id; the buyer is percent-encoded, so it names no other folder
    and no two (buyer, id) share a name ("acme-eu" + "support-..." vs "acme" + "eu-support-...").
    """
    return f"invoice-{quote(invoice.buyer, safe='')}_{invoice.id}"


def invoice_from_json(data: bytes) -> Invoice:
    """The invoice in `invoice_json`'s bytes."""
    return msgspec.json.decode(data, type=Invoice)

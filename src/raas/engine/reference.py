"""The reference executor: streams one buyer's ledger, customer by customer, through the pure
judge and rater. Slow but obviously right; every other engine is tested against it."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Callable, Iterator
from datetime import datetime

from raas.core.contract import Contract
from raas.core.episodes import Entry
from raas.core.invoice import LedgerPoint
from raas.core.periods import Period
from raas.core.settle import Settlement, settle
from raas.ledger.store import LedgerStore


def settle_from_ledger(
    ledger: LedgerStore,
    contract: Contract,
    period: Period,
    *,
    as_of: datetime | None = None,
    size: int | None = None,
    root: bytes | None = None,
    on_customer: Callable[[int], None] | None = None,
) -> Settlement:
    """Settle `contract` for `period` from the buyer's log, read up to `size` entries.

    `size` pins the ledger state (default: the log as it is now), so settling again at the
    same size gives the same invoice byte for byte whatever arrives meanwhile. `root` is the
    root hash of the signed checkpoint at `size` being read: the invoice records it.
    """
    tenant = contract.buyer
    size = ledger.head(tenant) if size is None else size

    def customers() -> Iterator[list[Entry]]:
        for _customer, stored in ledger.iter_customers(tenant, upto_size=size):
            if on_customer is not None:
                on_customer(len(stored))
            yield [Entry(item.event, item.leaf_hash) for item in stored]

    return settle(
        contract,
        customers(),
        period=period,
        ledger=LedgerPoint(
            tenant=tenant, size=size, root=None if root is None else b64encode(root).decode()
        ),
        as_of=as_of,
    )

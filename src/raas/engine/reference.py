"""The reference executor: streams one buyer's ledger, customer by customer, through the pure
judge and rater. Slow but obviously right; every other engine is tested against it.

`settle_over_time_from_ledger` is the same over time: the contract's versions, and adjustments
of the invoices the ledger's store has issued (`raas.core.adjust`), all at one ledger size."""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from decimal import Decimal

from raas.core.adjust import settle_with_adjustments
from raas.core.contract import Contract
from raas.core.episodes import Entry, derive_episodes
from raas.core.events import DisputeFiled, DisputeRuled, Event
from raas.core.features import episode_features
from raas.core.invoice import Invoice, LedgerPoint, invoice_from_json
from raas.core.periods import Period
from raas.core.settle import Settlement, settle
from raas.core.versions import Subtotals
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
    prepaid_balance: Decimal | None = None,
    commitment_prior_subtotals: Sequence[Decimal] = (),
) -> Settlement:
    """Settle `contract` for `period` from the buyer's log, read up to `size` entries.

    `size` pins the ledger state (default: the log as it is now), so settling again at the
    same size gives the same invoice byte for byte whatever arrives meanwhile. `root` is the
    root hash of the signed checkpoint at `size` being read: the invoice records it.
    `commitment_prior_subtotals`: see `raas.core.minimum_runs`.
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
        prepaid_balance=prepaid_balance,
        commitment_prior_subtotals=commitment_prior_subtotals,
    )


def issued_invoices(ledger: LedgerStore, tenant: str) -> list[Invoice]:
    """Every invoice the store has issued for the buyer `tenant`."""
    found = []
    for invoice_id in ledger.list_invoices(tenant):
        body = ledger.get_invoice(tenant, invoice_id)
        if body is not None:
            found.append(invoice_from_json(body))
    return found


def dispute_events(ledger: LedgerStore, tenant: str, size: int) -> list[Event]:
    """The filings and rulings of disputes in the buyer's log up to `size` entries."""
    return [
        stored.event
        for stored in ledger.iter_events(tenant, upto_size=size)
        if isinstance(stored.event.data, DisputeFiled | DisputeRuled)
    ]


def settle_over_time_from_ledger(
    ledger: LedgerStore,
    versions: Sequence[Contract],
    period: Period,
    *,
    as_of: datetime | None = None,
    size: int | None = None,
    root: bytes | None = None,
    on_customer: Callable[[int], None] | None = None,
) -> Settlement:
    """Settle `period` under the contract's `versions` at one ledger size, with adjustments of
    the contract's invoices the store has issued for earlier periods (which also say what the
    earlier periods drew of any prepaid credit)."""
    tenant = versions[0].buyer
    size = ledger.head(tenant) if size is None else size

    def settle_one(
        version: Contract, part: Period, moment: datetime, balance: Decimal | None, prior: Subtotals
    ) -> Settlement:
        return settle_from_ledger(
            ledger,
            version,
            part,
            as_of=moment,
            size=size,
            root=root,
            on_customer=on_customer,
            prepaid_balance=balance,
            commitment_prior_subtotals=prior,
        )

    def episode_rows(ids: Collection[str]) -> dict[str, dict[str, object]]:
        wanted = set(ids)
        rows = {}
        latest = max(versions, key=lambda version: version.version)
        for _customer, stored in ledger.iter_customers(tenant, upto_size=size):
            group = [Entry(item.event, item.leaf_hash) for item in stored]
            for episode in derive_episodes(group, link_horizon=latest.window):
                if episode.id in wanted:
                    rows[episode.id] = episode_features(episode)
        return rows

    return settle_with_adjustments(
        versions,
        period,
        settle_one,
        issued=issued_invoices(ledger, tenant),
        dispute_events=dispute_events(ledger, tenant, size),
        episode_rows=episode_rows,
        as_of=as_of,
    )

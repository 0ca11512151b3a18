"""Evidence from a ledger store: the bundle behind an issued invoice, a receipt for one billed line
or episode, and the consistency proof between two checkpoints, for `raas.audit` to verify offline.

The store is read through `EvidenceSource`, the few methods of `LedgerStore` this needs, so any
store (SQLite, PostgreSQL, a test fake) can back it. Episodes are found the way settlement finds
them: each customer's entries up to the invoice's checkpoint, through the pure `derive_episodes`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from raas.audit.bundle import Bundle, BundleEntry, Scope, assemble_bundle
from raas.audit.consistency import ConsistencyProof
from raas.audit.receipt import Receipt, make_receipt
from raas.core.commitments import EMPTY_DISCLOSURES
from raas.core.contract import Contract, parse_contract
from raas.core.episodes import Entry, Episode, derive_episodes
from raas.core.invoice import Invoice, invoice_from_json
from raas.errors import RaasError
from raas.ledger.store import StoredEvent

__all__ = [
    "EvidenceError",
    "EvidenceSource",
    "export_bundle",
    "export_consistency",
    "export_receipt",
]


class EvidenceError(RaasError):
    """Evidence cannot be exported as asked: an unknown invoice, a contract that is not the
    invoice's, a checkpoint the store does not hold, an episode that is not there."""


class EvidenceSource(Protocol):
    """What exporting evidence reads from a ledger store (a part of `LedgerStore`)."""

    def get_invoice(self, tenant: str, invoice_id: str) -> bytes | None:
        """The JSON bytes of the invoice issued to the buyer `tenant` under this id, or None."""
        ...

    def list_invoices(self, tenant: str) -> list[str]:
        """The ids of the invoices issued for the buyer `tenant`."""
        ...

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        """The signed checkpoint note of the tenant's log at `size`, if one was signed."""
        ...

    def iter_customers(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        """Each customer's events, bounded by the log's first `upto_size` entries."""
        ...

    def inclusion_proofs(self, tenant: str, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """The inclusion proof of each leaf index in the tree of `size`."""
        ...

    def consistency_proof(self, tenant: str, old_size: int, new_size: int) -> list[bytes]:
        """The consistency proof from the tree of `old_size` to that of `new_size`."""
        ...


class _Issued:
    """An issued invoice with the contract it was settled under and the checkpoint it names.

    The invoice is looked up in the log of the contract's buyer: ids repeat across buyers.
    """

    def __init__(self, source: EvidenceSource, invoice_id: str, contract_text: str) -> None:
        self.contract_text = contract_text
        self.contract: Contract = parse_contract(contract_text, "the contract")
        buyer = self.contract.buyer
        body = source.get_invoice(buyer, invoice_id)
        if body is None:
            raise EvidenceError(
                f"no invoice {invoice_id!r} was issued to buyer {buyer!r} from this ledger"
            )
        self.body = body
        self.invoice: Invoice = invoice_from_json(body)
        _check_contract(self.contract, self.invoice)
        self.tenant = self.invoice.ledger.tenant
        self.size = self.invoice.ledger.size
        note = source.checkpoint_at(self.tenant, self.size)
        if note is None:
            raise EvidenceError(
                f"invoice {invoice_id!r} was settled at size {self.size} of the log of "
                f"{self.tenant!r}, but the ledger holds no checkpoint signed at that size"
            )
        self.checkpoint = note
        self.link_horizon = self.contract.window

    def episodes_of(self, stored: Sequence[StoredEvent]) -> list[Episode]:
        entries = [Entry(item.event, item.leaf_hash) for item in stored]
        return derive_episodes(entries, link_horizon=self.link_horizon)


def _check_contract(contract: Contract, invoice: Invoice) -> None:
    stated = (invoice.contract, invoice.contract_version, invoice.buyer)
    given = (contract.contract, contract.version, contract.buyer)
    if stated != given:
        raise EvidenceError(
            f"the contract file is {given[0]} v{given[1]} for buyer {given[2]!r}; invoice "
            f"{invoice.id!r} was settled under {stated[0]} v{stated[1]} for buyer {stated[2]!r}"
        )


def _bundle_entries(
    source: EvidenceSource, tenant: str, size: int, stored: Sequence[StoredEvent]
) -> list[BundleEntry]:
    ordered = sorted(stored, key=lambda item: item.log_index)
    indexes = [item.log_index for item in ordered]
    proofs = source.inclusion_proofs(tenant, indexes, size) if indexes else []
    if len(proofs) != len(indexes):
        raise EvidenceError(f"the store gave {len(proofs)} proofs for {len(indexes)} entries")
    return [
        BundleEntry(
            index=item.log_index,
            entry=bytes(item.entry),
            proof=tuple(bytes(node) for node in proof),
            disclosures=_disclosures(item),
        )
        for item, proof in zip(ordered, proofs, strict=True)
    ]


def _disclosures(stored: StoredEvent) -> bytes | None:
    # An entry without personal fields has nothing to disclose: the bundle leaves the field out.
    value = bytes(stored.disclosures)
    return None if value == EMPTY_DISCLOSURES else value


def export_bundle(
    source: EvidenceSource,
    invoice_id: str,
    contract_text: str,
    *,
    redact: bool = False,
    scope: Scope = "customers",
    on_customer: Callable[[int], None] | None = None,
    versions: Sequence[str] = (),
) -> Bundle:
    """The evidence bundle of an issued invoice (see `raas.audit.bundle` for what it holds).

    `redact` leaves out every disclosure (the entries keep their commitments, so every proof
    still verifies). `on_customer` is told how many entries each customer read had.
    `versions` are the contract's other versions' texts, for an invoice split by versions or
    adjusting periods settled under them. The invoices of the contract issued for earlier
    periods go with an invoice that has adjustments or audits (what they correct), or whose
    contract states a minimum over several periods (what the run's earlier periods were
    charged, `raas.core.minimum_runs`) or prepaid credit (what the earlier periods drew of it,
    `raas.core.prepaid`).
    """
    issued = _Issued(source, invoice_id, contract_text)
    billed = {episode for line in issued.invoice.lines for episode in line.episodes}
    # An episode's id starts with its first conversation and "#", and that conversation is its
    # customer's: a customer is needed when one of its conversations starts a billed id. (A
    # conversation id may itself hold "#": every prefix before a "#" is a candidate.)
    wanted: dict[str, set[str]] = {}
    for episode_id in billed:
        for position, character in enumerate(episode_id):
            if character == "#":
                wanted.setdefault(episode_id[:position], set()).add(episode_id)
    found: set[str] = set()
    selected: list[StoredEvent] = []
    for _customer, stored in source.iter_customers(issued.tenant, upto_size=issued.size):
        if on_customer is not None:
            on_customer(len(stored))
        conversations = {item.event.conversation for item in stored}
        hits = [wanted[name] for name in conversations & wanted.keys()]
        found.update(*hits)
        if hits or scope == "log":
            selected.extend(stored)
    _require_found(billed - found, issued)
    return assemble_bundle(
        scope=scope,
        checkpoint=issued.checkpoint,
        invoice=issued.body,
        contract=contract_text,
        entries=_bundle_entries(source, issued.tenant, issued.size, selected),
        redact=redact,
        versions=versions,
        earlier=_earlier_invoices(
            source,
            issued.invoice,
            runs=_counts_earlier_periods(issued.contract)
            or any(
                _counts_earlier_periods(parse_contract(text, f"contract version {number}"))
                for number, text in enumerate(versions, start=1)
            ),
        ),
    )


def _counts_earlier_periods(contract: Contract) -> bool:
    """True when settling a period of `contract` reads its earlier invoices: a minimum over
    several periods, or prepaid credit they drew down."""
    pricing = contract.effective_pricing()
    several = pricing.minimum is not None and pricing.minimum.periods > 1
    return several or pricing.prepaid is not None


def _earlier_invoices(source: EvidenceSource, invoice: Invoice, *, runs: bool) -> list[bytes]:
    """The contract's invoices issued for periods before `invoice`'s, oldest first, when
    `invoice` adjusts or audits earlier ones, or when `runs` (its contract has a minimum over
    several periods or prepaid credit); otherwise none is needed."""
    if not invoice.adjustments and not invoice.audits and not runs:
        return []
    found = []
    tenant = invoice.ledger.tenant
    for invoice_id in source.list_invoices(tenant):
        body = source.get_invoice(tenant, invoice_id)
        if body is None:
            continue
        other = invoice_from_json(body)
        if other.contract == invoice.contract and other.period_end <= invoice.period_start:
            found.append((other.period_start, other.id, body))
    return [body for _, _, body in sorted(found)]


def _require_found(missing: Iterable[str], issued: _Issued) -> None:
    absent = sorted(missing)
    if absent:
        raise EvidenceError(
            f"invoice {issued.invoice.id!r} bills {len(absent)} episode(s) that are not in "
            f"the log of {issued.tenant!r} at size {issued.size} (the first is {absent[0]!r}); "
            "the ledger and the invoice disagree"
        )


def export_receipt(
    source: EvidenceSource,
    invoice_id: str,
    contract_text: str,
    *,
    line: int | None = None,
    episode: str | None = None,
) -> Receipt:
    """A receipt for one invoice line (numbered from 1) or one episode: each of their entries with
    its inclusion proof under the invoice's checkpoint, as C2SP tlog-proofs."""
    if (line is None) == (episode is None):
        raise EvidenceError("a receipt is for one line or for one episode: give exactly one")
    issued = _Issued(source, invoice_id, contract_text)
    lines = issued.invoice.lines
    line_of = {
        episode_id: number
        for number, invoice_line in enumerate(lines, start=1)
        for episode_id in invoice_line.episodes
    }
    if line is not None:
        if not 1 <= line <= len(lines):
            raise EvidenceError(
                f"invoice {invoice_id!r} has lines 1 to {len(lines)}, there is no line {line}"
            )
        wanted = set(lines[line - 1].episodes)
    else:
        assert episode is not None
        wanted = {episode}
        line = line_of.get(episode)
    found: dict[str, Episode] = {}
    stored_by_leaf: dict[bytes, StoredEvent] = {}
    for _customer, stored in source.iter_customers(issued.tenant, upto_size=issued.size):
        hits = [item for item in issued.episodes_of(stored) if item.id in wanted]
        if hits:
            found.update((item.id, item) for item in hits)
            stored_by_leaf.update((bytes(item.leaf_hash), item) for item in stored)
    _require_found(wanted - found.keys(), issued)
    leaves = {bytes.fromhex(leaf) for item in found.values() for leaf in item.event_hashes}
    entries = _bundle_entries(
        source, issued.tenant, issued.size, [stored_by_leaf[leaf] for leaf in leaves]
    )
    return make_receipt(
        invoice_id=issued.invoice.id,
        line=line,
        outcome=None if line is None else lines[line - 1].outcome,
        episodes=sorted(found),
        checkpoint=issued.checkpoint,
        entries=entries,
    )


def export_consistency(
    source: EvidenceSource, tenant: str, old_size: int, new_size: int
) -> ConsistencyProof:
    """Both signed checkpoints and the proof that the log at `new_size` extends it at `old_size`."""
    if not 0 <= old_size <= new_size:
        raise EvidenceError(f"old size {old_size} must be between 0 and new size {new_size}")
    notes = []
    for size in (old_size, new_size):
        note = source.checkpoint_at(tenant, size)
        if note is None:
            raise EvidenceError(f"the log of {tenant!r} holds no checkpoint signed at size {size}")
        notes.append(note)
    proof = source.consistency_proof(tenant, old_size, new_size)
    return ConsistencyProof(old=notes[0], new=notes[1], proof=tuple(bytes(node) for node in proof))

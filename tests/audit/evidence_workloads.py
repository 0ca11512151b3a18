"""Small ledgers with an issued invoice, for the evidence and auditor tests: hand-written
conversations covering every outcome, or a simulated month, settled at a signed checkpoint.

`FakeEvidenceStore` is the evidence part of the store API (invoices, checkpoints, proofs) over
`MemoryLedger` and `raas.ledger.merkle`, with the same semantics as the SQLite store's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

from factories import NOVEMBER, conversation
from raas.core.contract import parse_contract
from raas.core.events import Event
from raas.core.invoice import invoice_from_json, invoice_json
from raas.core.periods import month_period
from raas.engine.reference import settle_from_ledger
from raas.ledger.checkpoint import sign_checkpoint
from raas.ledger.keys import SignerKey
from raas.ledger.merkle import MerkleTree
from raas.ledger.store import MemoryLedger, StoredEvent
from raas.sim import SimConfig, Simulation

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_PATH = ROOT / "examples" / "contracts" / "acme-support.yaml"
CONTRACT_TEXT = CONTRACT_PATH.read_text(encoding="utf-8")
ORIGIN = "example.com/raas/acme"
SIGNER = SignerKey("raas-test-log", bytes(range(32)))
VERIFIER = SIGNER.verifier()
OTHER_SIGNER = SignerKey("raas-test-log", bytes(range(1, 33)))  # same name, another key
NOVEMBER_PERIOD = month_period("Europe/Berlin", 2026, 11)
INVOICE_ID = "acme-support-v1-2026-11"


class FakeEvidenceStore:
    """`raas.ledger.evidence.EvidenceSource` over an in-memory ledger."""

    def __init__(self) -> None:
        self.ledger = MemoryLedger()
        self.invoices: dict[str, bytes] = {}
        self.checkpoints: dict[tuple[str, int], str] = {}

    def append(self, events: Sequence[Event]) -> None:
        self.ledger.append(events)

    def tree(self, tenant: str, size: int) -> MerkleTree:
        return MerkleTree(row.leaf_hash for row in self.ledger.iter_events(tenant, upto_size=size))

    def sign(self, tenant: str, signer: SignerKey = SIGNER, origin: str = ORIGIN) -> str:
        size = self.ledger.head(tenant)
        note = sign_checkpoint(origin, size, self.tree(tenant, size).root(), signer)
        self.checkpoints[(tenant, size)] = note
        return note

    def settle(self, contract_text: str = CONTRACT_TEXT) -> bytes:
        """Sign a checkpoint of the buyer's log, settle November at its size, store the invoice."""
        contract = parse_contract(contract_text)
        self.sign(contract.buyer)
        size = self.ledger.head(contract.buyer)
        invoice = settle_from_ledger(self.ledger, contract, NOVEMBER_PERIOD, size=size).invoice
        body = invoice_json(invoice)
        self.invoices[invoice.id] = body
        return body

    # -- the EvidenceSource methods --------------------------------------------------------

    def get_invoice(self, tenant: str, invoice_id: str) -> bytes | None:
        body = self.invoices.get(invoice_id)
        return body if body is not None and _buyer(body) == tenant else None

    def list_invoices(self, tenant: str) -> list[str]:
        return sorted(key for key, body in self.invoices.items() if _buyer(body) == tenant)

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        return self.checkpoints.get((tenant, size))

    def iter_customers(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        return self.ledger.iter_customers(tenant, upto_seq=upto_seq, upto_size=upto_size)

    def inclusion_proofs(self, tenant: str, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        tree = self.tree(tenant, size)
        return [tree.inclusion_proof(index, size) for index in indexes]

    def consistency_proof(self, tenant: str, old_size: int, new_size: int) -> list[bytes]:
        return self.tree(tenant, new_size).consistency_proof(old_size, new_size)


def every_outcome() -> list[Event]:
    """Five customers, one of each outcome, plus a second customer nobody bills, in log order."""
    day = timedelta(days=1)
    reopened_first = conversation("c-reopened-1", customer="u-reopened", intents=("billing",))
    reopened_again = conversation(
        "c-reopened-2",
        customer="u-reopened",
        intents=("billing",),
        start=NOVEMBER + timedelta(hours=20),
        recontact_of="c-reopened-1",
    )
    return [
        *conversation("c-confirmed", customer="u-confirmed", confirm=True, csat=5),
        *conversation("c-assumed", customer="u-assumed", intents=("refund", "delivery")),
        *conversation("c-handoff", customer="u-handoff", handoff="with", start=NOVEMBER + day),
        *reopened_first,
        *reopened_again,
        *conversation("c-unresolved", customer="u-unresolved", confirm=False),
        *conversation("c-late", customer="u-late", start=NOVEMBER + 27 * day),
    ]


def hand_written_store() -> FakeEvidenceStore:
    """The `every_outcome` ledger, settled for November."""
    store = FakeEvidenceStore()
    store.append(every_outcome())
    store.settle()
    return store


def simulated_store(conversations: int = 40, seed: int = 3) -> FakeEvidenceStore:
    """A simulated month of `conversations`, settled for November."""
    store = FakeEvidenceStore()
    for batch in Simulation(SimConfig(seed=seed, conversations=conversations)).batches():
        store.append(batch)
    store.settle()
    return store


def _buyer(body: bytes) -> str:
    """The buyer an invoice was issued to: its tenant, as a ledger store keys it."""
    return invoice_from_json(body).buyer

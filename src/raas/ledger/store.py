"""The ledger store boundary: the one small interface every store implements, and its plain types.

The core and the engines depend on `LedgerStore` only; drivers (sqlite3, PostgreSQL) stay in
their own modules. `MerkleLog` holds what every store computes the same way (roots, proofs,
leaf lookups, signing the next checkpoint) over a few hooks that read its log; `MemoryLedger` is
an in-memory fake on it with the same semantics, for tests above.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Final, Generic, Protocol, TypeVar

import msgspec

from raas.core.canonical import leaf_hash
from raas.core.commitments import COMMITMENT_KEY_SIZE_BYTES, reveal
from raas.core.events import Event, decode_entry, entry_and_disclosures
from raas.errors import ConflictError, StoreError
from raas.ledger.keys import SignerKey
from raas.ledger.log import (
    VENDOR_DEFAULT,
    SignedHead,
    check_vendor,
    origin_for,
    sign_next_checkpoint,
)
from raas.ledger.merkle import MerkleFrontier, MerkleTree

__all__ = [
    "EPOCH",
    "AppendReceipt",
    "LedgerStore",
    "LogHead",
    "MemoryLedger",
    "MerkleLog",
    "StoredEvent",
    "decode_entry",
    "time_microseconds",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND: Final = timedelta(microseconds=1)
# MemoryLedger's commitment key unless told otherwise: public, so that the same events give the
# same entries in every test; a real ledger draws its own secret one.
TEST_COMMITMENT_KEY: Final = bytes(range(COMMITMENT_KEY_SIZE_BYTES))

# What a store's hooks read through: a database connection, or nothing for MemoryLedger.
Connection = TypeVar("Connection")


class StoredEvent(msgspec.Struct, frozen=True):
    """One event as a ledger holds it: its place (global `seq`, per-tenant `log_index`), its bytes.

    `entry` is the RFC 8785 canonical form that `leaf_hash` commits to, personal fields replaced
    by salted commitments; `disclosures` holds their cleartext values and salts (see
    `raas.core.commitments`). `event` decodes the entry as it is, which is all the judge needs;
    `reveal()` gives the event with its personal fields in cleartext.
    """

    seq: int
    tenant: str
    log_index: int
    leaf_hash: bytes
    entry: bytes
    disclosures: bytes

    @property
    def event(self) -> Event:
        """The typed event behind `entry`, decoded on each access (keep it if you need it twice).

        Personal fields hold their "sha256:..." commitments.
        """
        return decode_entry(self.entry)

    def reveal(self) -> Event:
        """The event with its personal fields in cleartext, checked against the entry."""
        return reveal(self.entry, self.disclosures)


class LogHead(msgspec.Struct, frozen=True):
    """A tenant's log after an append: its size and the seq of its last event (0 if none)."""

    size: int
    last_seq: int


class AppendReceipt(msgspec.Struct, frozen=True):
    """What an append did: events newly stored, events that were already there, each log's head.

    `logs` has one entry per tenant named in the batch, whether or not anything new was stored.
    """

    stored: int
    duplicates: int
    logs: dict[str, LogHead]


class LedgerStore(Protocol):
    """An append-only, idempotent event ledger with one dense Merkle log per tenant.

    Sizes and indexes are per tenant: `size` is a number of entries of the tenant's log (a
    checkpoint's tree size), an index is a position in it, from 0. Asking beyond the log raises
    StoreError.
    """

    @property
    def vendor(self) -> str:
        """The vendor the ledger belongs to; it names every log (`origin`)."""
        ...

    def append(self, events: Sequence[Event]) -> AppendReceipt:
        """Store a batch atomically; a (tenant, source, id) stored with the same entry is a no-op.

        Raises ConflictError (nothing of the batch stored) when a key comes back with other content.
        """
        ...

    def append_batches(self, batches: Iterable[Sequence[Event]]) -> Iterator[AppendReceipt]:
        """`append` each batch in order, yielding each receipt once its batch is stored.

        Empty batches are skipped. A store may overlap making one batch ready with storing the
        one before; a failing batch raises after the receipts of the batches before it.
        """
        ...

    def append_body(self, body: bytes, parse: Callable[[bytes], Sequence[Event]]) -> AppendReceipt:
        """`append(parse(body))`, parsed and made ready in a worker process once
        `start_preparers` started them (`parse` must then be picklable), so that a server's
        requests use more than the one core its interpreter holds."""
        ...

    def start_preparers(self, processes: int) -> None:
        """Parse and make ready `append_body`'s bodies in this many worker processes until
        `close`; a store that cannot parses in the calling thread as before."""
        ...

    def head(self, tenant: str) -> int:
        """The size of the tenant's log (0 for an unknown tenant)."""
        ...

    def tenants(self) -> list[str]:
        """Every tenant with at least one event, sorted."""
        ...

    def max_seq(self) -> int:
        """The highest global seq stored (0 when empty); reads pinned to it see a fixed set."""
        ...

    def iter_customers(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        """Each customer's events, customers sorted, a customer's events by (time, source, id).

        `upto_seq` keeps events with seq <= upto_seq (a ledger-wide point, see `max_seq`);
        `upto_size` keeps the first `upto_size` events of the tenant's log (a checkpoint's size).
        """
        ...

    def iter_events(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[StoredEvent]:
        """The tenant's events in log order, bounded as in `iter_customers`."""
        ...

    def get(self, tenant: str, source: str, id: str) -> StoredEvent | None:
        """The stored event with this key, or None."""
        ...

    def count(self, tenant: str) -> int:
        """How many events the tenant has, counted from the rows (`head` is the recorded size)."""
        ...

    # -- the Merkle log ----------------------------------------------------------------------

    def entries(self, tenant: str, indexes: Sequence[int]) -> list[StoredEvent]:
        """The events at these log indexes, in the order asked."""
        ...

    def entries_by_leaf_hash(self, tenant: str, leaf_hashes: Sequence[bytes]) -> list[StoredEvent]:
        """The events with these leaf hashes, in the order asked; StoreError names one not found."""
        ...

    def leaf_hashes(self, tenant: str, start: int, end: int) -> list[bytes]:
        """The leaf hashes of log indexes [start, end)."""
        ...

    def root(self, tenant: str, size: int | None = None) -> bytes:
        """The Merkle root of the first `size` entries (default: the whole log as it is now)."""
        ...

    def inclusion_proof(self, tenant: str, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of the entry at `index` in the tree of `size` entries."""
        ...

    def inclusion_proofs(self, tenant: str, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """Inclusion proofs of many entries under one tree size, the tree built once."""
        ...

    def consistency_proof(self, tenant: str, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof from the tree of `old_size` entries to that of `new_size`."""
        ...

    # -- checkpoints and invoices ------------------------------------------------------------

    def origin(self, tenant: str) -> str:
        """The origin line of the tenant's checkpoints: f"{vendor}/raas/{tenant}"."""
        ...

    def sign_checkpoint(
        self,
        tenant: str,
        signer: SignerKey | Sequence[SignerKey],
        origin: str | None = None,
    ) -> str:
        """Sign and store a checkpoint of the log as it is now; returns the signed note.

        Refuses (StoreError) unless it is consistent with the last one signed for the tenant.
        `origin` defaults to `origin(tenant)`; a log keeps the origin of its first checkpoint.
        """
        ...

    def latest_checkpoint(self, tenant: str) -> str | None:
        """The note signed last for the tenant, or None."""
        ...

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        """The note signed last at this size, or None."""
        ...

    def store_invoice(self, invoice_id: str, tenant: str, body: bytes) -> None:
        """Keep an invoice issued to `tenant`; the same bytes again are a no-op, other bytes a
        StoreError. Invoices are keyed by (tenant, id): ids name a contract, version and period,
        and two buyers' contracts may share a name."""
        ...

    def get_invoice(self, tenant: str, invoice_id: str) -> bytes | None:
        """The bytes of the invoice issued to `tenant` under this id, or None."""
        ...

    def list_invoices(self, tenant: str) -> list[str]:
        """The ids of the tenant's issued invoices, sorted."""
        ...

    def close(self) -> None: ...


def time_microseconds(moment: datetime) -> int:
    """An aware time as integer microseconds since the Unix epoch, UTC (exact, no float)."""
    return (moment - EPOCH) // ONE_MICROSECOND


def check_size(tenant: str, size: int, log_size: int, what: str = "size") -> None:
    """Raise StoreError unless 0 <= size <= log_size."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= log_size:
        raise StoreError(
            f"{what} {size!r} is not within the log of tenant {tenant!r}, "
            f"which has {log_size} entries"
        )


def check_index(tenant: str, index: int, size: int) -> None:
    """Raise StoreError unless 0 <= index < size."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
        raise StoreError(
            f"log index {index!r} is not within the first {size} entries of tenant {tenant!r}"
        )


def existing_invoice_conflict(invoice_id: str, tenant: str) -> str:
    """Why an invoice already issued to `tenant` under this id cannot be stored with other bytes."""
    return (
        f"invoice {invoice_id!r} of tenant {tenant!r} was already issued with other content; "
        "an issued invoice never changes (issue an adjustment instead)"
    )


class MerkleLog(Generic[Connection]):
    """The Merkle-log half of a `LedgerStore`, the same for every store, over a few hooks.

    A store gives `_reading` (a connection to read through, under the store's lock, its driver's
    errors made StoreError), `_log_state` (a log's size and frontier), `_tree` (a tree over at
    least the first `size` leaves), `_read_leaves`, `_leaf_indexes`, `_last_signed` and
    `_keep_checkpoint`, `_writing` (a write transaction), and `entries`; it gets the leaf reads,
    roots, proofs and the signing of the next checkpoint, so every store hands out the same bytes
    for the same log.
    """

    _vendor: str

    @property
    def vendor(self) -> str:
        return self._vendor

    def origin(self, tenant: str) -> str:
        """The origin line of the tenant's checkpoints: f"{vendor}/raas/{tenant}"."""
        return origin_for(self._vendor, tenant)

    def entries(self, tenant: str, indexes: Sequence[int]) -> list[StoredEvent]:
        raise NotImplementedError

    def entries_by_leaf_hash(self, tenant: str, leaf_hashes: Sequence[bytes]) -> list[StoredEvent]:
        """The events with these leaf hashes, in the order asked; StoreError names one not found."""
        index_of = self._leaf_indexes(tenant, {bytes(leaf) for leaf in leaf_hashes})
        for leaf in leaf_hashes:
            if bytes(leaf) not in index_of:
                raise StoreError(f"no entry of tenant {tenant!r} has leaf hash {bytes(leaf).hex()}")
        return self.entries(tenant, [index_of[bytes(leaf)] for leaf in leaf_hashes])

    def leaf_hashes(self, tenant: str, start: int, end: int) -> list[bytes]:
        """The leaf hashes of log indexes [start, end)."""
        with self._reading("read the ledger's leaf hashes") as connection:
            size = self._log_state(connection, tenant)[0]
            check_size(tenant, end, size, "end")
            check_size(tenant, start, end, "start")
            return self._read_leaves(connection, tenant, start, end)

    def root(self, tenant: str, size: int | None = None) -> bytes:
        """The Merkle root of the first `size` entries (default: the log as it is now).

        The current root comes from the log's frontier; a past one from its leaves.
        """
        with self._reading("read a root") as connection:
            log_size, frontier = self._log_state(connection, tenant)
            if size is None or size == log_size:
                return frontier.root()
            check_size(tenant, size, log_size)
            return self._tree(connection, tenant, size).root(size)

    def inclusion_proof(self, tenant: str, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of the entry at `index` in the tree of `size` entries."""
        return self.inclusion_proofs(tenant, [index], size)[0]

    def inclusion_proofs(self, tenant: str, indexes: Sequence[int], size: int) -> list[list[bytes]]:
        """Inclusion proofs of many entries under one tree size; the tree is built once."""
        tree = self._tree_of_size(tenant, size)
        for index in indexes:
            check_index(tenant, index, size)
        return [tree.inclusion_proof(index, size) for index in indexes]

    def consistency_proof(self, tenant: str, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 consistency proof from the tree of `old_size` entries to that of `new_size`."""
        tree = self._tree_of_size(tenant, new_size)
        check_size(tenant, old_size, new_size, "old size")
        return tree.consistency_proof(old_size, new_size)

    def _tree_of_size(self, tenant: str, size: int) -> MerkleTree:
        with self._reading("read the ledger's leaf hashes") as connection:
            check_size(tenant, size, self._log_state(connection, tenant)[0])
            return self._tree(connection, tenant, size)

    def sign_checkpoint(
        self,
        tenant: str,
        signer: SignerKey | Sequence[SignerKey],
        origin: str | None = None,
    ) -> str:
        """Sign and store a checkpoint of the tenant's log as it is now; returns the signed note.

        In one write transaction holding the tenant's log: the stored leaves must give the root
        the frontier holds, the new (size, root) must be consistent with the last checkpoint
        signed for the tenant (a consistency proof made from the stored tree and checked with the
        auditor's verifier), and the note is stored before the transaction commits. Raises
        StoreError otherwise.
        """
        origin = self.origin(tenant) if origin is None else origin
        with self._writing("sign a checkpoint", [tenant]) as connection:
            size, frontier = self._log_state(connection, tenant)
            root = frontier.root()
            tree = self._tree(connection, tenant, size)
            if tree.root(size) != root:
                raise StoreError(
                    f"the stored leaves of tenant {tenant!r} give root {tree.root(size).hex()} "
                    f"at size {size}, but the log's frontier holds {root.hex()}; "
                    "run `raas ledger check`"
                )
            note = sign_next_checkpoint(
                tenant,
                origin,
                size,
                root,
                self._last_signed(connection, tenant),
                tree.consistency_proof,
                signer,
            )
            self._keep_checkpoint(connection, tenant, origin, size, root, note)
            return note

    # -- the hooks -------------------------------------------------------------------------------

    def _reading(self, action: str) -> AbstractContextManager[Connection]:
        """A connection to read through while the block runs; errors name `action`."""
        raise NotImplementedError

    def _writing(
        self, action: str, tenants: Sequence[str] = ()
    ) -> AbstractContextManager[Connection]:
        """A connection in a write transaction, committed when the block ends (rolled back if it
        raises), holding these tenants' logs; errors name `action`."""
        raise NotImplementedError

    def _log_state(self, connection: Connection, tenant: str) -> tuple[int, MerkleFrontier]:
        """(size, frontier) of the tenant's log; size 0 and an empty frontier if it has none."""
        raise NotImplementedError

    def _tree(self, connection: Connection, tenant: str, size: int) -> MerkleTree:
        """A tree over at least the first `size` leaves of the tenant (size is within the log)."""
        raise NotImplementedError

    def _read_leaves(
        self, connection: Connection, tenant: str, start: int, end: int
    ) -> list[bytes]:
        """The leaf hashes of log indexes [start, end), within the log."""
        raise NotImplementedError

    def _leaf_indexes(self, tenant: str, leaf_hashes: set[bytes]) -> dict[bytes, int]:
        """The log index of each of these leaf hashes that the tenant's log holds."""
        raise NotImplementedError

    def _last_signed(self, connection: Connection, tenant: str) -> SignedHead | None:
        """The last checkpoint signed for the tenant, or None."""
        raise NotImplementedError

    def _keep_checkpoint(
        self, connection: Connection, tenant: str, origin: str, size: int, root: bytes, note: str
    ) -> None:
        raise NotImplementedError


class MemoryLedger(MerkleLog[None]):
    """An in-memory `LedgerStore` with the real stores' semantics, for tests above the ledger.

    Its commitment key defaults to the public TEST_COMMITMENT_KEY, so two fakes given the same
    events hold the same entries; it is a test double, never a place for personal data.
    """

    def __init__(
        self, *, vendor: str = VENDOR_DEFAULT, commitment_key: bytes = TEST_COMMITMENT_KEY
    ) -> None:
        check_vendor(vendor)
        key = bytes(commitment_key)
        if len(key) != COMMITMENT_KEY_SIZE_BYTES:
            raise StoreError(
                f"a commitment key has {COMMITMENT_KEY_SIZE_BYTES} bytes, got {len(key)}"
            )
        self._vendor = vendor
        self._commitment_key = key
        self._rows: list[StoredEvent] = []
        self._sort_keys: list[tuple[str, int, str, str]] = []  # customer, time, source, id
        self._by_key: dict[tuple[str, str, str], int] = {}
        self._logs: dict[str, list[int]] = {}  # tenant -> positions in _rows, in log order
        self._trees: dict[str, MerkleTree] = {}
        self._by_leaf: dict[str, dict[bytes, int]] = {}
        self._checkpoints: dict[
            str, list[tuple[int, bytes, str, str]]
        ] = {}  # size, root, origin, note
        self._invoices: dict[tuple[str, str], bytes] = {}  # (tenant, id) -> body

    def append(self, events: Sequence[Event]) -> AppendReceipt:
        new: dict[tuple[str, str, str], tuple[Event, bytes, bytes]] = {}
        duplicates = 0
        for event in events:
            key = (event.tenant, event.source, event.id)
            entry, disclosures = entry_and_disclosures(event, self._commitment_key)
            stored_index = self._by_key.get(key)
            earlier = self._rows[stored_index].entry if stored_index is not None else None
            if earlier is None and key in new:
                earlier = new[key][1]
            if earlier is None:
                new[key] = (event, entry, disclosures)
                continue
            if earlier != entry:
                raise ConflictError(
                    event.tenant,
                    event.source,
                    event.id,
                    leaf_hash(earlier).hex(),
                    leaf_hash(entry).hex(),
                )
            duplicates += 1
        for key, (event, entry, disclosures) in new.items():
            tenant = event.tenant
            log = self._logs.setdefault(tenant, [])
            leaf = leaf_hash(entry)
            self._by_key[key] = len(self._rows)
            self._by_leaf.setdefault(tenant, {})[leaf] = len(log)
            self._trees.setdefault(tenant, MerkleTree()).append(leaf)
            log.append(len(self._rows))
            seq = len(self._rows) + 1
            self._rows.append(StoredEvent(seq, tenant, len(log) - 1, leaf, entry, disclosures))
            self._sort_keys.append(
                (event.customer, time_microseconds(event.time), event.source, event.id)
            )
        logs: dict[str, LogHead] = {}
        for tenant in {event.tenant for event in events}:
            log = self._logs.get(tenant, [])
            logs[tenant] = LogHead(len(log), log[-1] + 1 if log else 0)
        return AppendReceipt(len(new), duplicates, logs)

    def append_batches(self, batches: Iterable[Sequence[Event]]) -> Iterator[AppendReceipt]:
        for events in batches:
            if events:
                yield self.append(events)

    def append_body(self, body: bytes, parse: Callable[[bytes], Sequence[Event]]) -> AppendReceipt:
        return self.append(parse(body))

    def start_preparers(self, processes: int) -> None:
        pass  # in memory, one process holds it all

    def head(self, tenant: str) -> int:
        return len(self._logs.get(tenant, ()))

    def tenants(self) -> list[str]:
        return sorted(self._logs)

    def max_seq(self) -> int:
        return len(self._rows)

    def iter_customers(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        chosen = sorted(
            (self._sort_keys[row.seq - 1], row)
            for row in self.iter_events(tenant, upto_seq=upto_seq, upto_size=upto_size)
        )
        for customer, group in groupby(chosen, key=lambda pair: pair[0][0]):
            yield customer, [row for _, row in group]

    def iter_events(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[StoredEvent]:
        log = self._logs.get(tenant, [])
        seq_max = len(self._rows) if upto_seq is None else upto_seq
        size = len(log) if upto_size is None else upto_size
        return (self._rows[position] for position in log[: max(size, 0)] if position < seq_max)

    def get(self, tenant: str, source: str, id: str) -> StoredEvent | None:
        index = self._by_key.get((tenant, source, id))
        return None if index is None else self._rows[index]

    def count(self, tenant: str) -> int:
        return sum(1 for row in self._rows if row.tenant == tenant)

    # -- the Merkle log ----------------------------------------------------------------------

    def entries(self, tenant: str, indexes: Sequence[int]) -> list[StoredEvent]:
        log = self._logs.get(tenant, [])
        for index in indexes:
            check_index(tenant, index, len(log))
        return [self._rows[log[index]] for index in indexes]

    def _reading(self, action: str) -> AbstractContextManager[None]:
        return nullcontext()

    def _writing(self, action: str, tenants: Sequence[str] = ()) -> AbstractContextManager[None]:
        return nullcontext()

    def _log_state(self, connection: None, tenant: str) -> tuple[int, MerkleFrontier]:
        tree = self._tree(connection, tenant, 0)
        return tree.size, tree.frontier()

    def _tree(self, connection: None, tenant: str, size: int) -> MerkleTree:
        return self._trees.get(tenant) or MerkleTree()

    def _read_leaves(self, connection: None, tenant: str, start: int, end: int) -> list[bytes]:
        return [row.leaf_hash for row in self.entries(tenant, range(start, end))]

    def _leaf_indexes(self, tenant: str, leaf_hashes: set[bytes]) -> dict[bytes, int]:
        by_leaf = self._by_leaf.get(tenant, {})
        return {leaf: by_leaf[leaf] for leaf in leaf_hashes if leaf in by_leaf}

    # -- checkpoints and invoices ------------------------------------------------------------

    def _last_signed(self, connection: None, tenant: str) -> SignedHead | None:
        signed = self._checkpoints.get(tenant)
        return SignedHead(signed[-1][2], signed[-1][0], signed[-1][1]) if signed else None

    def _keep_checkpoint(
        self, connection: None, tenant: str, origin: str, size: int, root: bytes, note: str
    ) -> None:
        self._checkpoints.setdefault(tenant, []).append((size, root, origin, note))

    def latest_checkpoint(self, tenant: str) -> str | None:
        signed = self._checkpoints.get(tenant)
        return signed[-1][3] if signed else None

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        notes = [note for at, _, _, note in self._checkpoints.get(tenant, []) if at == size]
        return notes[-1] if notes else None

    def store_invoice(self, invoice_id: str, tenant: str, body: bytes) -> None:
        stored = self._invoices.setdefault((tenant, invoice_id), bytes(body))
        if stored != bytes(body):
            raise StoreError(existing_invoice_conflict(invoice_id, tenant))

    def get_invoice(self, tenant: str, invoice_id: str) -> bytes | None:
        return self._invoices.get((tenant, invoice_id))

    def list_invoices(self, tenant: str) -> list[str]:
        return sorted(key for owner, key in self._invoices if owner == tenant)

    def close(self) -> None:
        pass

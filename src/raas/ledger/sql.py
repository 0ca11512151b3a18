"""What the two SQL ledger stores (SQLite, PostgreSQL) share above their drivers: reads of logs,
checkpoints and invoices over the store's own SQL, the tree cache, snapshot reads, and the parts
of `check` that compare the same things the same way.

Each store keeps its schema, its writes and its driver; its queries come as `SqlQueries`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, ClassVar, Final, NamedTuple, Protocol, Self, TypeVar

from raas.core.canonical import leaf_hash
from raas.core.commitments import DisclosureError, reveal
from raas.core.events import Event, entry_and_disclosures
from raas.errors import RaasError, StoreError
from raas.ledger.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from raas.ledger.keys import VerifierKey
from raas.ledger.log import LedgerCheck, LedgerProblem, SignedHead, extend_frontier
from raas.ledger.merkle import MerkleFrontier, MerkleTree
from raas.ledger.store import MerkleLog, StoredEvent, check_index

__all__ = [
    "TREE_CACHE_LEAVES_MAX",
    "Found",
    "LogWalk",
    "SqlLedger",
    "SqlQueries",
    "check_logs",
    "check_notes",
    "frontier_checked",
    "limit",
    "log_state",
    "moved_frontier",
    "remade_problem",
    "revealed",
    "translated",
]

# Trees kept in memory for proofs, all tenants together (about 150 bytes a leaf); a larger log
# builds its tree per call instead.
TREE_CACHE_LEAVES_MAX: Final = 1_000_000

Row = tuple[Any, ...]
_Result = TypeVar("_Result")


class DatabaseConnection(Protocol):
    """What the shared code asks of a driver's connection (sqlite3's and psycopg's both fit)."""

    def execute(self, query: Any, parameters: Any = ..., /) -> Any: ...

    def close(self) -> None: ...


_Connection = TypeVar("_Connection", bound=DatabaseConnection)


class SqlQueries(NamedTuple):
    """A store's SQL for what `SqlLedger` reads and writes, in its driver's parameter style."""

    log_state: str  # (number, size, frontier) of a tenant's log, or no row
    head: str  # a tenant's log size
    tenants: str  # the tenants with events, sorted
    max_seq: str  # the highest seq stored
    latest_checkpoint: str  # a tenant's last note
    checkpoint_at: str  # a tenant's last note at a size
    last_signed: str  # (origin, size, root) of a tenant's last checkpoint
    insert_checkpoint: str  # (tenant, origin, size, root, note)
    invoice_body: str  # an invoice's body by (tenant, id)
    invoice_ids: str  # a tenant's invoice ids, sorted
    begin_read: str  # starts a read-only snapshot on a reader


@contextmanager
def translated(action: str, driver_error: type[Exception]) -> Iterator[None]:
    """Driver errors become StoreError, naming what the ledger was doing."""
    try:
        yield
    except driver_error as error:
        raise StoreError(f"could not {action}: {error}") from error


class SqlLedger(MerkleLog[_Connection]):
    """A `LedgerStore` in a SQL database: the reads and the lifetime both stores share.

    A store sets `_queries` and `_driver_error` and gives `_open_connection`, `_connect_reader`,
    `_read_leaves`, `_check_snapshot`, `entries` and `_leaf_indexes`, besides its writes. Calls
    on one instance share one connection, one at a time (`_lock`).
    """

    _queries: ClassVar[SqlQueries]
    _driver_error: ClassVar[type[Exception]]
    _connection: _Connection | None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trees: dict[str, MerkleTree] = {}
        # After a batch that held already-stored events, look keys up before inserting: a sender
        # that retries tends to keep retrying, and a failed insert costs the whole batch again.
        self._expect_duplicates = False

    # -- reading ---------------------------------------------------------------------------------

    def head(self, tenant: str) -> int:
        row = self._fetch_one(self._queries.head, (tenant,))
        return 0 if row is None else int(row[0])

    def tenants(self) -> list[str]:
        return [str(row[0]) for row in self._fetch_all(self._queries.tenants, ())]

    def max_seq(self) -> int:
        row = self._fetch_one(self._queries.max_seq, ())
        assert row is not None  # written when the ledger was first opened
        return int(row[0])

    def iter_customers(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        """Each customer's events, customers sorted, a customer's events by (time, source, id).

        `upto_seq` and `upto_size` bound the read as in `LedgerStore`. Streams, on its own
        connection and snapshot: one customer's events are in memory at a time.
        """
        return self._stream(
            lambda reader: self._read_customers(reader, tenant, limit(upto_seq), limit(upto_size))
        )

    def iter_events(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[StoredEvent]:
        """The tenant's events in log order (log_index 0, 1, 2, ...), bounded as above."""
        return self._stream(
            lambda reader: self._read_events(reader, tenant, limit(upto_seq), limit(upto_size))
        )

    def entries(self, tenant: str, indexes: Sequence[int]) -> list[StoredEvent]:
        """The events at these log indexes, in the order asked; StoreError for one not stored."""
        with self._reading("read the ledger") as connection:
            size = self._log_state(connection, tenant)[0]
            for index in indexes:
                check_index(tenant, index, size)
            found = self._entries_at(connection, tenant, sorted(set(indexes))) if indexes else {}
        missing = [index for index in indexes if index not in found]
        if missing:
            raise StoreError(
                f"the log of tenant {tenant!r} has {size} entries but no row at index {missing[0]}"
            )
        return [found[index] for index in indexes]

    def latest_checkpoint(self, tenant: str) -> str | None:
        row = self._fetch_one(self._queries.latest_checkpoint, (tenant,))
        return None if row is None else str(row[0])

    def checkpoint_at(self, tenant: str, size: int) -> str | None:
        row = self._fetch_one(self._queries.checkpoint_at, (tenant, size))
        return None if row is None else str(row[0])

    def get_invoice(self, tenant: str, invoice_id: str) -> bytes | None:
        row = self._fetch_one(self._queries.invoice_body, (tenant, invoice_id))
        return None if row is None else bytes(row[0])

    def list_invoices(self, tenant: str) -> list[str]:
        return [str(row[0]) for row in self._fetch_all(self._queries.invoice_ids, (tenant,))]

    # -- checking --------------------------------------------------------------------------------

    def check(self, verifiers: Sequence[VerifierKey] = ()) -> LedgerCheck:
        """Re-derive what the ledger stores from its entries and compare, up to the first problem.

        Each log's rows are dense up to its size, hash to their stored leaf hashes, reveal and
        re-make to the same entry with this ledger's key, and are stored where their entry's key,
        customer and time say; the tree they give has every checkpoint's root and the stored
        frontier; every note states its (size, root) under the log's origin and, with
        `verifiers`, carries a valid signature by one of them; seqs are 1..max_seq, once each.

        Reads one snapshot on its own connection, so appends may go on meanwhile.
        """
        return next(self._stream(lambda reader: iter([self._check_snapshot(reader, verifiers)])))

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            with translated("close the ledger", self._driver_error):
                connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the hooks of MerkleLog ------------------------------------------------------------------

    @contextmanager
    def _reading(self, action: str) -> Iterator[_Connection]:
        with self._lock, translated(action, self._driver_error):
            yield self._open_connection()

    def _log_state(self, connection: _Connection, tenant: str) -> tuple[int, MerkleFrontier]:
        return log_state(connection, self._queries.log_state, tenant)

    def _tree(self, connection: _Connection, tenant: str, size: int) -> MerkleTree:
        """A tree over at least the first `size` leaves of the tenant (the caller holds the lock).

        Trees are cached and extended, as logs only grow, while they fit TREE_CACHE_LEAVES_MAX.
        """
        tree = self._trees.get(tenant) or MerkleTree()
        if tree.size < size:
            tree.extend(self._read_leaves(connection, tenant, tree.size, size))
        cached = sum(kept.size for name, kept in self._trees.items() if name != tenant)
        if cached + tree.size <= TREE_CACHE_LEAVES_MAX:
            self._trees[tenant] = tree
        else:
            self._trees.pop(tenant, None)
        return tree

    def _last_signed(self, connection: _Connection, tenant: str) -> SignedHead | None:
        row = connection.execute(self._queries.last_signed, (tenant,)).fetchone()
        return None if row is None else SignedHead(str(row[0]), int(row[1]), bytes(row[2]))

    def _keep_checkpoint(
        self,
        connection: _Connection,
        tenant: str,
        origin: str,
        size: int,
        root: bytes,
        note: str,
    ) -> None:
        connection.execute(self._queries.insert_checkpoint, (tenant, origin, size, root, note))

    # -- the store's own hooks -------------------------------------------------------------------

    def _open_connection(self) -> _Connection:
        raise NotImplementedError

    def _connect_reader(self) -> _Connection:
        """A new connection for one snapshot read."""
        raise NotImplementedError

    def _entries_at(
        self, connection: _Connection, tenant: str, indexes: list[int]
    ) -> dict[int, StoredEvent]:
        """The stored events at these indexes of the tenant's log (sorted, within it), by index."""
        raise NotImplementedError

    def _read_customers(
        self, reader: _Connection, tenant: str, seq_max: int, size: int
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        """`iter_customers` on a snapshot: events with seq <= seq_max among the first `size`."""
        raise NotImplementedError

    def _read_events(
        self, reader: _Connection, tenant: str, seq_max: int, size: int
    ) -> Iterator[StoredEvent]:
        """`iter_events` on a snapshot: events with seq <= seq_max among the first `size`."""
        raise NotImplementedError

    def _check_snapshot(self, reader: _Connection, verifiers: Sequence[VerifierKey]) -> LedgerCheck:
        raise NotImplementedError

    # -- helpers ---------------------------------------------------------------------------------

    def _fetch_one(self, query: str, parameters: Row) -> Row | None:
        with self._reading("read the ledger") as connection:
            row: Row | None = connection.execute(query, parameters).fetchone()
            return row

    def _fetch_all(self, query: str, parameters: Row) -> list[Row]:
        with self._reading("read the ledger") as connection:
            rows: list[Row] = connection.execute(query, parameters).fetchall()
            return rows

    def _stream(self, read: Callable[[_Connection], Iterator[_Result]]) -> Iterator[_Result]:
        """What `read` yields from its own connection, in one read-only snapshot."""
        self._open_connection()
        with translated("read the ledger", self._driver_error):
            reader = self._connect_reader()
        try:
            with translated("read the ledger", self._driver_error):
                reader.execute(self._queries.begin_read)
                yield from read(reader)
        finally:
            reader.close()


def log_state(
    connection: DatabaseConnection, query: str, tenant: str
) -> tuple[int, MerkleFrontier]:
    """(size, frontier) of the tenant's log; size 0 and an empty frontier if it has none."""
    row = connection.execute(query, (tenant,)).fetchone()
    if row is None:
        return 0, MerkleFrontier()
    _, size, frontier = frontier_checked(tenant, row)
    return size, frontier


def moved_frontier(
    tenant: str, frontier: MerkleFrontier, leaves: Sequence[bytes], size: int
) -> MerkleFrontier:
    """The log's frontier after its new leaves, which must reach the log's new `size`: the
    frontier and the log move together, or the batch does not happen."""
    frontier = extend_frontier(frontier, leaves)
    if frontier.size != size:
        raise StoreError(
            f"the frontier of tenant {tenant!r} reached size {frontier.size}, "
            f"but its log reached {size}"
        )
    return frontier


def frontier_checked(tenant: str, row: Row) -> tuple[int, int, MerkleFrontier]:
    """(number, size, frontier) from a log's row, the frontier read and of the log's size."""
    number, size, serialized = int(row[0]), int(row[1]), bytes(row[2])
    try:
        frontier = MerkleFrontier.from_bytes(serialized)
    except ValueError as error:
        raise StoreError(f"the stored frontier of tenant {tenant!r} is damaged: {error}") from error
    if frontier.size != size:
        raise StoreError(
            f"the log of tenant {tenant!r} records {size} entries but its frontier "
            f"{frontier.size}; run `raas ledger check`"
        )
    return number, size, frontier


def limit(bound: int | None) -> int:
    # 64-bit integer columns: the largest one stands for "no limit".
    return 2**63 - 1 if bound is None else bound


# -- checking -----------------------------------------------------------------------------------


class Found(Exception):
    """Stops a check at its first problem."""

    def __init__(self, problem: LedgerProblem) -> None:
        self.problem = problem


# One log's check: (reader, tenant, number, size, stored frontier, seqs seen, counts).
CheckLog = Callable[[Any, str, int, int, bytes, bytearray, dict[str, int]], None]


def check_logs(
    reader: DatabaseConnection,
    logs: list[Row],
    max_seq: int,
    check_log: CheckLog,
    rows_stored: str,
) -> LedgerCheck:
    """Check each log of `logs` (tenant, number, size, frontier) with `check_log`, then that the
    rows counted by the query `rows_stored` are the logs' entries and seqs are 1..max_seq."""
    seqs_seen = bytearray(max_seq + 1)
    counts = {"entries": 0, "checkpoints": 0, "verified": 0}
    problem: LedgerProblem | None = None
    try:
        for tenant, number, size, frontier in logs:
            check_log(
                reader, str(tenant), int(number), int(size), bytes(frontier), seqs_seen, counts
            )
        row = reader.execute(rows_stored).fetchone()
        rows = 0 if row is None else int(row[0])
        if rows != counts["entries"]:
            raise Found(
                LedgerProblem(
                    None,
                    None,
                    None,
                    f"{rows} event rows are stored but the logs hold {counts['entries']}",
                )
            )
        if seqs_seen.count(1) != max_seq:
            missing = seqs_seen.index(0, 1)
            raise Found(
                LedgerProblem(
                    None, None, missing, f"no event has seq {missing}, below max_seq {max_seq}"
                )
            )
    except Found as found:
        problem = found.problem
    return LedgerCheck(
        tenants=len(logs),
        entries=counts["entries"],
        checkpoints=counts["checkpoints"],
        signatures_verified=counts["verified"],
        problem=problem,
    )


class LogWalk:
    """One log's check, its rows taken in log order: dense indexes within the log's size, seqs
    seen once, entries hashing to their stored leaves, and the tree they give holding every
    stored checkpoint's root and, at the end, the stored frontier. A method raises `Found`."""

    def __init__(
        self,
        tenant: str,
        size: int,
        checkpoint_rows: Iterable[Row],
        verifiers: Sequence[VerifierKey],
        seqs_seen: bytearray,
        counts: dict[str, int],
    ) -> None:
        self.tenant = tenant
        self.size = size
        self.verifiers = verifiers
        self.seqs_seen = seqs_seen
        self.counts = counts
        self.frontier = MerkleFrontier()
        self.expected = 0
        # A log's checkpoints (origin, root, note) by size, from rows (origin, size, root, note).
        self.checkpoints: dict[int, list[tuple[str, bytes, str]]] = {}
        for origin, checkpoint_size, root, note in checkpoint_rows:
            self.checkpoints.setdefault(int(checkpoint_size), []).append(
                (str(origin), bytes(root), str(note))
            )
        origins = {origin for notes in self.checkpoints.values() for origin, _, _ in notes}
        if len(origins) > 1:
            raise self.fail(f"checkpoints were signed under several origins: {sorted(origins)}")
        beyond = [at for at in self.checkpoints if at > size]
        if beyond:
            raise self.fail(f"a checkpoint of size {beyond[0]} is beyond the log's {size} entries")

    def fail(self, what: str, index: int | None = None, seq: int | None = None) -> Found:
        return Found(LedgerProblem(self.tenant, index, seq, what))

    def index(self, index: int, seq: int) -> None:
        """The next row is at `index`: the one expected, within the log."""
        if index != self.expected:
            raise self.fail(f"no entry is stored at log index {self.expected}", self.expected)
        if index >= self.size:
            raise self.fail(
                f"an entry is stored beyond the log's recorded size {self.size}", index, seq
            )
        self.expected += 1

    def seq(self, index: int, seq: int) -> None:
        """The row's seq is within max_seq and seen for the first time."""
        if not 0 < seq < len(self.seqs_seen) or self.seqs_seen[seq]:
            raise self.fail(
                f"seq {seq} is repeated or beyond max_seq {len(self.seqs_seen) - 1}", index, seq
            )
        self.seqs_seen[seq] = 1

    def leaf(self, entry: bytes, stored_leaf: bytes | None, index: int, seq: int) -> bytes:
        """The entry's leaf hash, which must be the stored one."""
        leaf = leaf_hash(entry)
        if stored_leaf != leaf:
            raise self.fail(
                f"the entry hashes to leaf {leaf.hex()}, but the stored leaf hash is "
                f"{stored_leaf.hex() if stored_leaf else 'missing'}",
                index,
                seq,
            )
        return leaf

    def add(self, leaf: bytes) -> None:
        """Grow the tree by a checked entry and check the checkpoints stored at its new size."""
        self.frontier.append(leaf)
        notes = self.checkpoints.get(self.frontier.size)
        if notes:
            self.notes_at(self.frontier.size, self.frontier.root())
        self.counts["entries"] += 1

    def notes_at(self, size: int, root: bytes) -> None:
        check_notes(size, root, self.checkpoints[size], self.verifiers, self.counts, self.fail)

    def all_stored(self) -> None:
        """After the last row: every entry of the log was there."""
        if self.expected != self.size:
            raise self.fail(
                f"the log records {self.size} entries but only {self.expected} are stored",
                self.expected,
            )

    def frontier_is(self, stored_frontier: bytes) -> None:
        """After the last row: the tree of the entries is the stored frontier."""
        if self.frontier.to_bytes() != stored_frontier:
            raise self.fail(
                f"the stored frontier does not match the tree of the entries (root "
                f"{self.frontier.root().hex()} at size {self.size})"
            )


def check_notes(
    size: int,
    root: bytes,
    notes: list[tuple[str, bytes, str]],
    verifiers: Sequence[VerifierKey],
    counts: dict[str, int],
    fail: Callable[..., Found],
) -> None:
    """The checkpoints stored at `size` hold `root`, state it, and (with verifiers) are signed."""
    for origin, stored_root, note in notes:
        counts["checkpoints"] += 1
        if stored_root != root:
            raise fail(
                f"the checkpoint at size {size} holds root {stored_root.hex()}, but the entries "
                f"give {root.hex()}",
                size - 1 if size else None,
            )
        try:
            stated = Checkpoint(origin, size, root).body()
        except CheckpointError as error:
            raise fail(f"the checkpoint at size {size} is malformed: {error}") from None
        if not note.startswith(stated + "\n"):
            raise fail(
                f"the note of the checkpoint at size {size} does not state its size, root "
                f"and origin {origin!r}"
            )
        if verifiers:
            try:
                open_checkpoint(note, verifiers, origin=origin)
            except CheckpointError as error:
                raise fail(f"the checkpoint at size {size}: {error}") from None
            counts["verified"] += 1


def revealed(tenant: str, entry: bytes, disclosures: bytes) -> Event | str:
    """The event a stored entry and its disclosures reveal, if it is the tenant's; else what is
    wrong with them."""
    try:
        event = reveal(entry, disclosures)  # checks the disclosures against the entry first
    except (DisclosureError, StoreError) as error:
        return str(error)
    if event.tenant != tenant:
        return f"the entry is event {event.id!r} of tenant {event.tenant!r}"
    return event


def remade_problem(
    event: Event, entry: bytes, disclosures: bytes, commitment_key: bytes
) -> str | None:
    """What is wrong when the revealed event, made an entry again with the ledger's key, does
    not give the stored entry and disclosures; None when it does."""
    try:
        rebuilt = entry_and_disclosures(event, commitment_key)
    except RaasError as error:
        return f"the revealed event cannot be made an entry again: {error}"
    if rebuilt != (entry, disclosures):
        return (
            "the entry or its disclosures are not what this ledger makes of the event they "
            "reveal (a changed value, salt or encoding)"
        )
    return None

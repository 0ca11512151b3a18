"""The embedded ledger: events in one SQLite file (WAL, fsync before acknowledging), appended once,
each tenant's events a dense Merkle log whose frontier is updated in the same transaction.

Tables (schema version 4):

- `events`: one row per event, as narrow as it can be (each column bound costs on the append
  path). Its rowid, `position`, is tenant number * 2^40 + log index, so a tenant's log is one
  contiguous range of the table, read in order without an index. The row holds the canonical
  entry, its disclosures, the global `seq`, and `key_hash`, a 64-bit hash of the idempotency
  key (tenant, source, id); the key itself is read back from the entry to tell the rare hash
  collision from a retry (a collision moves on to the key's next hash, see `_key_hash`).
- `key_blocks`: each event's (key hash, position) in seq order, in blocks, from which the
  writer keeps its index of keys in memory (see `key_index`: a unique SQLite index on the
  hashes made each commit write most of its pages once the ledger held a million events).
- `leaves`: the leaf hashes of each log, in blocks of LEAF_BLOCK_LEAVES, so a tree or a proof
  reads 32 bytes a leaf, not the entries.
- `logs`: per tenant its number, its size and its serialized `MerkleFrontier`.
- `customer_entries`: per (tenant, customer, append) the log index and time of each of that
  customer's events, so that settlement can read a customer's events together and in time
  order. One row per customer per batch costs far less than an index entry per event (batches
  hold many events of one conversation).
- `checkpoints`, `invoices` (keyed by tenant and id), and `meta` (the commitment key, the
  vendor, the highest seq).

Version 2 keyed invoices by id alone; opening such a file rebuilds that table in place.
Versions 2 and 3 kept a unique index on `key_hash`; opening such a file writes its key blocks
and drops the index (see `_migrate`).
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import secrets
import sqlite3
import struct
import tempfile
import threading
import weakref
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from itertools import accumulate, groupby, repeat
from itertools import count as count_from
from multiprocessing.pool import AsyncResult, Pool
from operator import add, itemgetter
from pathlib import Path
from typing import Any, Final, TypeVar

import msgspec

from raas.core.canonical import leaf_hash
from raas.core.commitments import COMMITMENT_KEY_SIZE_BYTES
from raas.core.events import Event
from raas.errors import ConflictError, StoreError
from raas.ledger.batch import PreparedBatch, leaf_hashes
from raas.ledger.key_index import KEY_BLOCKS_TABLE, KeyIndex, fill_key_blocks, read_pairs
from raas.ledger.keys import VerifierKey
from raas.ledger.log import (
    VENDOR_DEFAULT,
    LedgerCheck,
    LedgerProblem,
    check_vendor,
)
from raas.ledger.merkle import HASH_SIZE_BYTES, MerkleFrontier
from raas.ledger.sql import (
    Found,
    LogWalk,
    Row,
    SqlLedger,
    SqlQueries,
    check_logs,
    frontier_checked,
    limit,
    log_state,
    moved_frontier,
    remade_problem,
    revealed,
    translated,
)
from raas.ledger.store import (
    EPOCH,
    ONE_MICROSECOND,
    AppendReceipt,
    LogHead,
    StoredEvent,
    existing_invoice_conflict,
)
from raas.native import speedups


def _knows_raas_rows() -> bool:
    """Whether sqlite3's connections know raas_rows: the speed-ups register it with the SQLite
    library they were linked against, which must be the one sqlite3 uses."""
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("SELECT count(*) FROM raas_rows(x'', 0, x'', x'', x'', x'', x'')")
    except sqlite3.OperationalError:
        return False
    finally:
        connection.close()
    return True


# The speed-ups are used here only where raas_rows can read the rows of a batch.
if speedups is not None and not _knows_raas_rows():
    speedups = None

SCHEMA_VERSION: Final = 4
# Page cache of the writing connection: the key index of a few million events stays in memory.
CACHE_KIBIBYTES: Final = 64 * 1024
# Pages of 16 KiB for a new file (an existing one keeps its own): a commit writes a batch's rows
# in a quarter of the WAL frames 4 KiB pages take, which halves its CPU time (measured: 2.0 ->
# 0.9 us an event).
PAGE_SIZE_BYTES: Final = 16_384
# The WAL is copied into the database by a thread of the ledger's own, about once a second while
# appends come, not by the committing writer: at millions of events a commit of 1,000 new events
# writes ~1,400 pages (the key index's random inserts), and the checkpoint that followed every
# few commits took ~23% of the writer's time, under its lock. The writer checkpoints itself only
# past WAL_CHECKPOINT_PAGES (1 GiB of 16 KiB pages), should the thread fall that far behind.
WAL_CHECKPOINT_SECONDS: Final = 1.0
WAL_CHECKPOINT_PAGES: Final = 65_536
# Once checkpointed and restarted, a WAL file larger than this is cut back to it.
WAL_SIZE_LIMIT_BYTES: Final = 64 * 1024 * 1024
BUSY_TIMEOUT_MILLISECONDS: Final = 10_000
# A position is tenant number * 2^40 + log index: 2^40 (about 10^12) entries per log, and 2^23
# tenants before a position leaves SQLite's signed 64-bit integers.
LOG_INDEX_BITS: Final = 40
LOG_SIZE_MAX: Final = 1 << LOG_INDEX_BITS
TENANT_NUMBER_MAX: Final = (1 << (63 - LOG_INDEX_BITS)) - 1
# 256 leaf hashes (8 KiB) a row: reading a million leaves is 4,000 rows; appending rewrites at
# most one partial block per tenant and batch.
LEAF_BLOCK_LEAVES: Final = 256
# How many hashes of one key are tried before giving up. In a ledger of n events some key needs
# its second hash with a chance of about n^2 / 2^65 (one in 3,700 at 10^8 events); needing a
# fifth would take hashes chosen to collide, i.e. a broken SHA-256.
KEY_HASH_ATTEMPTS_MAX: Final = 4
# Positions fetched in one statement while reading a customer's events.
FETCH_POSITIONS_MAX: Final = 10_000

_SCHEMA: Final = (
    """
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value ANY NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs (
    tenant TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    frontier BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    key_hash INTEGER NOT NULL,
    entry BLOB NOT NULL,
    disclosures BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS leaves (
    position INTEGER PRIMARY KEY,
    hashes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS customer_entries (
    tenant_number INTEGER NOT NULL,
    customer TEXT NOT NULL,
    first_log_index INTEGER NOT NULL,
    places BLOB NOT NULL,
    PRIMARY KEY (tenant_number, customer, first_log_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    number INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    origin TEXT NOT NULL,
    size INTEGER NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_by_tenant ON checkpoints (tenant, size);
CREATE TABLE IF NOT EXISTS invoices (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS invoices_ids ON invoices (tenant, id);
"""
    + KEY_BLOCKS_TABLE
)
# invoices_ids: a tenant's invoice ids are read from this index, not from the table, whose rows
# hold the bodies: SQLite reads a row's whole body on the way to the next id (an invoice of a
# million episodes is ~45 MiB: ~35 ms each time the dashboard listed a buyer's invoices). Made
# by the first open of a file that lacks it; no version changes (a file with it reads the same).
# Schema version 2 -> 3: invoices keyed by (tenant, id) instead of id alone, so two buyers'
# invoices of contracts that share a name, version and period are both kept. SQLite cannot
# change a primary key, so the table is copied into its new form; rows and bytes are kept.
_INVOICES_BY_TENANT: Final = (
    """CREATE TABLE invoices_by_tenant (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID""",
    "INSERT INTO invoices_by_tenant (tenant, id, body) SELECT tenant, id, body FROM invoices",
    "DROP TABLE invoices",
    "ALTER TABLE invoices_by_tenant RENAME TO invoices",
)
# The versions a file may have when opened: new (0), an older one `_migrate` brings up, current.
_VERSIONS_OPENED: Final = (0, 2, 3, SCHEMA_VERSION)

_INSERT_EVENT: Final = """
INSERT INTO events (position, seq, key_hash, entry, disclosures) VALUES (?, ?, ?, ?, ?)
"""
# The same rows, a batch in one statement: read out of packed columns by the native raas_rows.
_INSERT_EVENT_ROWS: Final = """
INSERT INTO events (position, seq, key_hash, entry, disclosures)
SELECT position, seq, key_hash, entry, disclosures FROM raas_rows(?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_CUSTOMER_ENTRIES: Final = "INSERT INTO customer_entries VALUES (?, ?, ?, ?)"
_EVENT_COLUMNS: Final = "position, seq, entry, disclosures"
_ENTRIES_AT: Final = """
SELECT position, entry FROM events WHERE position IN (SELECT value FROM json_each(?))
"""
_BY_POSITIONS: Final = f"""
SELECT {_EVENT_COLUMNS} FROM events WHERE position IN (SELECT value FROM json_each(?)) AND seq <= ?
"""

_LOG_STATE: Final = "SELECT number, size, frontier FROM logs WHERE tenant = ?"
_QUERIES: Final = SqlQueries(
    log_state=_LOG_STATE,
    head="SELECT size FROM logs WHERE tenant = ?",
    tenants="SELECT tenant FROM logs ORDER BY tenant",
    max_seq="SELECT value FROM meta WHERE name = 'max_seq'",
    latest_checkpoint="SELECT note FROM checkpoints WHERE tenant = ? ORDER BY number DESC LIMIT 1",
    checkpoint_at=(
        "SELECT note FROM checkpoints WHERE tenant = ? AND size = ? ORDER BY number DESC LIMIT 1"
    ),
    last_signed=(
        "SELECT origin, size, root FROM checkpoints WHERE tenant = ? ORDER BY number DESC LIMIT 1"
    ),
    insert_checkpoint=(
        "INSERT INTO checkpoints (tenant, origin, size, root, note) VALUES (?, ?, ?, ?, ?)"
    ),
    invoice_body="SELECT body FROM invoices WHERE tenant = ? AND id = ?",
    invoice_ids="SELECT id FROM invoices WHERE tenant = ? ORDER BY id",
    begin_read="BEGIN",
)

_Row = Row  # what sqlite3 hands back: column types follow the schema above
_Result = TypeVar("_Result")
_translated = functools.partial(translated, driver_error=sqlite3.Error)
_json_encoder: Final = msgspec.json.Encoder()
_key_encoder: Final = msgspec.json.Encoder()
_KEY_HASH_FORMAT: Final = struct.Struct(">q")
_digest: Final = type(hashlib.sha256()).digest
_FIRST: Final = itemgetter(0)
# A customer row's places: (log index, time in microseconds since the epoch) pairs.
_PLACE_FORMAT: Final = struct.Struct(">qq")


class _EntryKey(msgspec.Struct):
    """The idempotency key and time of an entry (everything else in it is skipped unread)."""

    tenant: str
    source: str
    id: str


_entry_key_decoder: Final = msgspec.json.Decoder(_EntryKey)


def _key_of_entry(entry: bytes) -> tuple[str, str, str]:
    try:
        key = _entry_key_decoder.decode(entry)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as error:
        raise StoreError(
            f"the stored entry with leaf hash {leaf_hash(entry).hex()} has no readable key: {error}"
        ) from error
    return key.tenant, key.source, key.id


def _key_hash(tenant: str, source: str, event_id: str, attempt: int = 0) -> int:
    """The signed 64-bit hash of an idempotency key under which the event is indexed.

    The first 8 bytes of SHA-256 of the canonical JSON [tenant, source, id] (with the attempt
    number appended after the first attempt); a key whose hash is taken by another key moves on
    to its next attempt, so lookups probe the same sequence.
    """
    material = (tenant, source, event_id) if attempt == 0 else (tenant, source, event_id, attempt)
    key_hash: int = _KEY_HASH_FORMAT.unpack_from(
        hashlib.sha256(_key_encoder.encode(material)).digest()
    )[0]
    return key_hash


def _key_hashes(keys: list[tuple[str, str, str]]) -> list[int]:
    """`_key_hash` (first attempt) of each (tenant, source, id), mapped with C functions only."""
    if speedups is not None:
        digests = speedups.sha256_each(list(map(_key_encoder.encode, keys)), b"")
    else:
        digests = map(_digest, map(hashlib.sha256, map(_key_encoder.encode, keys)))
    # Each digest read as its key hash, the rest of it skipped.
    digest_format = struct.Struct(
        f"{_KEY_HASH_FORMAT.format}{hashlib.sha256().digest_size - _KEY_HASH_FORMAT.size}x"
    )
    return list(map(_FIRST, digest_format.iter_unpack(b"".join(digests))))


class SqliteLedger(SqlLedger[sqlite3.Connection]):
    """A `LedgerStore` in one SQLite file; safe to share between threads (writes are serialised).

    Reads that stream (`iter_customers`, `iter_events`, `check`) run on their own read-only
    connection in one read transaction, so they see one snapshot and never block appends.
    `vendor` names the ledger's logs; it is fixed when the file is created (default "raas") and
    must match if given again.
    """

    def __init__(self, path: str | os.PathLike[str], *, vendor: str | None = None) -> None:
        if vendor is not None:
            check_vendor(vendor)
        super().__init__()
        self._path = Path(path)
        with _translated(f"open the ledger {self._path}"):
            connection = sqlite3.connect(
                self._path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MILLISECONDS / 1000,
            )
            try:
                self._commitment_key, self._vendor = _configure(connection, vendor)
            except BaseException:
                connection.close()
                raise
        self._connection: sqlite3.Connection | None = connection
        self._preparers: ProcessPoolExecutor | None = None
        # Batches whose threads wait to append (see `_append_one`); deque appends are atomic.
        self._waiting: deque[_Waiting] = deque()
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=_checkpoint_until_set,
            args=(self._path, self._closing),
            name="raas-wal-checkpoint",
            daemon=True,
        )
        self._checkpointer.start()
        # A ledger dropped without close() stops its thread too (the thread holds no reference).
        weakref.finalize(self, self._closing.set)
        self._preparer_processes = 0
        self._preparers_lock = threading.Lock()
        self._keys = KeyIndex()

    _queries = _QUERIES
    _driver_error = sqlite3.Error

    @property
    def path(self) -> Path:
        return self._path

    # -- writing ---------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> AppendReceipt:
        """Store a batch in one transaction, durable on disk before this returns.

        Already-stored events (same key, same entry) and repeats inside the batch count as
        duplicates; a key that comes back with another entry raises ConflictError and nothing of
        the batch is stored. Each tenant's leaves, frontier and customer rows move with it.
        """
        connection = self._open_connection()
        if not events:
            return AppendReceipt(0, 0, {})
        return self._append_one(connection, _Batch(events, self._commitment_key))

    def append_body(self, body: bytes, parse: Callable[[bytes], Sequence[Event]]) -> AppendReceipt:
        """`append(parse(body))`; once `start_preparers` ran, parsed and made ready (entries,
        commitments, hashes) in a worker process while this thread only writes and commits.

        Errors of `parse` and of making the batch ready (BatchRejected, ConflictError inside the
        batch) are raised here as they would be by `append`.
        """
        connection = self._open_connection()
        preparers = self._preparers
        if preparers is None:
            return self.append(parse(body))
        try:
            prepared = preparers.submit(_prepare_body, parse, body).result()
        except BrokenProcessPool:
            # A worker died (killed from outside): this body is parsed here, and the next one
            # goes to new workers.
            self._restart_preparers(preparers)
            return self.append(parse(body))
        if isinstance(prepared, _Failure):
            raise prepared.error()
        if prepared is None:
            return AppendReceipt(0, 0, {})
        return self._append_one(connection, _from_wire(prepared))

    def start_preparers(self, processes: int) -> None:
        """Prepare `append_body`'s bodies in `processes` worker processes (spawned now; they
        hold the ledger's commitment key in memory until `close`). 0 prepares here."""
        with self._preparers_lock:
            if self._preparers is not None:
                self._preparers.shutdown(cancel_futures=True)
            self._preparers = _preparer_pool(processes, self._commitment_key) if processes else None
            self._preparer_processes = processes

    def _restart_preparers(self, broken: ProcessPoolExecutor) -> None:
        with self._preparers_lock:
            if self._preparers is broken:
                broken.shutdown(wait=False)
                self._preparers = _preparer_pool(self._preparer_processes, self._commitment_key)

    def close(self) -> None:
        self.start_preparers(0)
        self._closing.set()
        self._checkpointer.join()
        super().close()

    def _append_one(self, connection: sqlite3.Connection, batch: _Batch) -> AppendReceipt:
        """Store one batch, durable before this returns, committed with whatever batches other
        threads are waiting to append at the time (group commit).

        The thread that takes the lock writes every waiting batch, each under its own savepoint,
        and commits them in one transaction: one fsync for the group instead of one per batch,
        and no lock handed on between them. A batch that fails (a conflict) is rolled back to
        its savepoint alone and its own thread raises; if the commit fails, every batch of the
        group raises and none is stored.
        """
        waiting = _Waiting(batch)
        self._waiting.append(waiting)
        with self._lock, _translated("append to the ledger"):
            if not waiting.written:
                group: list[_Waiting] = []
                while self._waiting:
                    group.append(self._waiting.popleft())
                self._write_group(connection, group)
            if waiting.error is not None:
                raise waiting.error
            assert waiting.receipt is not None
            return waiting.receipt

    def _write_group(self, connection: sqlite3.Connection, group: list[_Waiting]) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            self._keys.begin(connection)
            for waiting in group:
                connection.execute("SAVEPOINT batch")
                try:
                    receipt = self._write_batch(connection, waiting.batch)
                except (ConflictError, StoreError) as error:
                    connection.execute("ROLLBACK TO batch")
                    self._keys.rewind(connection)
                    waiting.error = error
                else:
                    waiting.receipt = receipt
                connection.execute("RELEASE batch")
            connection.execute("COMMIT")
            self._keys.committed()
        except BaseException as error:
            _roll_back(connection)
            for waiting in group:
                waiting.error = error
            raise
        finally:
            for waiting in group:
                waiting.written = True

    def append_batches(self, batches: Iterable[Sequence[Event]]) -> Iterator[AppendReceipt]:
        """Append batches in order, as `append` would, yielding each receipt once it is durable.

        Faster than `append` batch by batch: while a batch commits (SQLite writes and fsyncs the
        WAL without holding the GIL), the next one is made ready (entries, commitments, hashes).
        A receipt comes only after its commit returned. If a batch fails (ConflictError, ...),
        the batches before it are committed and their receipts yielded, then the error raised.
        Empty batches are skipped.
        """
        key = self._commitment_key
        return self._append_prepared(_Batch(events, key) for events in batches if events)

    def append_parsed(
        self,
        bodies: Iterable[bytes],
        parse: Callable[[bytes], Sequence[Event]],
        *,
        processes: int = 1,
    ) -> Iterator[AppendReceipt]:
        """Append the batch each body parses to, in order, parsing and preparing in other processes.

        `append_batches(parse(body) for body in bodies)`, with the parsing and the making ready
        (entries, commitments, hashes: most of an append's interpreter time) done by `processes`
        worker processes while this one only writes and commits, so ingest uses more than one
        core. `parse` must be picklable (a module-level function or a functools.partial of one).
        The workers hold the ledger's commitment key in memory for as long as they run. Bodies
        are read ahead as fast as the workers take them. With `processes` 0 all runs here.
        """
        if processes < 1:
            return self.append_batches(parse(body) for body in bodies)
        return self._append_in_processes(bodies, parse, processes)

    def _append_in_processes(
        self, bodies: Iterable[bytes], parse: Callable[[bytes], Sequence[Event]], processes: int
    ) -> Iterator[AppendReceipt]:
        # spawn, not fork: this process may hold threads and an open database.
        context = multiprocessing.get_context("spawn")
        with (
            tempfile.TemporaryDirectory(prefix="raas-prepare-") as folder,
            context.Pool(
                processes, initializer=_start_preparer, initargs=(self._commitment_key,)
            ) as pool,
        ):
            prepared = _prepared_in(pool, parse, bodies, folder, ahead=processes + 1)
            yield from self._append_prepared(_raised(prepared))

    def _append_prepared(self, prepared: Iterable[_Batch]) -> Iterator[AppendReceipt]:
        """Write and commit prepared batches in order; the next is taken while one commits."""
        connection = self._open_connection()
        pending = iter(prepared)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="raas-commit") as committer:
            batch = next(pending, None)
            while batch is not None:
                self._lock.acquire()
                try:
                    with _translated("append to the ledger"):
                        receipt = self._write(connection, batch)
                except BaseException:
                    self._lock.release()
                    raise
                commit = committer.submit(self._commit_and_unlock, connection)
                failure: BaseException | None = None
                try:
                    batch = next(pending, None)
                except BaseException as error:  # raised once the batch before is durable
                    failure, batch = error, None
                commit.result()
                yield receipt
                if failure is not None:
                    raise failure

    def _commit_and_unlock(self, connection: sqlite3.Connection) -> None:
        try:
            with _translated("append to the ledger"):
                try:
                    connection.execute("COMMIT")
                except BaseException:
                    _roll_back(connection)
                    raise
                self._keys.committed()
        finally:
            self._lock.release()

    def _write(self, connection: sqlite3.Connection, batch: _Batch) -> AppendReceipt:
        """Begin a write transaction and store the batch in it; the caller commits.

        On failure the transaction is rolled back and the error raised.
        """
        connection.execute("BEGIN IMMEDIATE")
        try:
            self._keys.begin(connection)
            return self._write_batch(connection, batch)
        except BaseException:
            _roll_back(connection)
            raise

    def _write_batch(self, connection: sqlite3.Connection, batch: _Batch) -> AppendReceipt:
        """Store the batch in the open transaction (the caller rolls back on failure)."""
        keys = self._keys
        hashes = batch.key_hashes
        found = keys.find(hashes)
        if not found and len(set(hashes)) == len(hashes):
            return _store(connection, batch, keys)  # most batches: every event new
        return _append_looked_up(connection, batch, keys, found)

    @contextmanager
    def _writing(self, action: str, tenants: Sequence[str] = ()) -> Iterator[sqlite3.Connection]:
        # One writer at a time holds every log.
        connection = self._open_connection()
        with self._lock, _translated(action):
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                _roll_back(connection)
                raise

    def store_invoice(self, invoice_id: str, tenant: str, body: bytes) -> None:
        """Keep an issued invoice; the same bytes again are a no-op, other bytes a StoreError."""
        with self._writing(f"store invoice {invoice_id!r}") as connection:
            stored = connection.execute(
                "SELECT body FROM invoices WHERE tenant = ? AND id = ?", (tenant, invoice_id)
            ).fetchone()
            if stored is None:
                connection.execute(
                    "INSERT INTO invoices (tenant, id, body) VALUES (?, ?, ?)",
                    (tenant, invoice_id, bytes(body)),
                )
            elif bytes(stored[0]) != bytes(body):
                raise StoreError(existing_invoice_conflict(invoice_id, tenant))

    # -- reading ---------------------------------------------------------------------------------

    def count(self, tenant: str) -> int:
        number = self._tenant_number(tenant)
        if number is None:
            return 0
        row = self._fetch_one(
            "SELECT count(*) FROM events WHERE position >= ? AND position < ?",
            (number << LOG_INDEX_BITS, (number + 1) << LOG_INDEX_BITS),
        )
        assert row is not None
        return int(row[0])

    def get(self, tenant: str, source: str, id: str) -> StoredEvent | None:
        with self._lock, _translated("read the ledger"):
            connection = self._open_connection()
            number = _tenant_number(connection, tenant)
            if number is None:
                return None
            self._keys.begin(connection)
            for attempt in range(KEY_HASH_ATTEMPTS_MAX):
                position = self._keys.position_of(_key_hash(tenant, source, id, attempt))
                if position is None:
                    return None
                row = connection.execute(
                    f"SELECT {_EVENT_COLUMNS} FROM events WHERE position = ?", (position,)
                ).fetchone()
                if row is None:
                    raise StoreError(_missing_row(position))
                stored = _stored(tenant, row)
                if row[0] >> LOG_INDEX_BITS == number and _key_of_entry(stored.entry) == (
                    tenant,
                    source,
                    id,
                ):
                    return stored
        return None

    def _read_customers(
        self, reader: sqlite3.Connection, tenant: str, seq_max: int, size: int
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        number = _tenant_number(reader, tenant)
        if number is None:
            return
        base = number << LOG_INDEX_BITS
        groups = reader.execute(
            "SELECT customer, places FROM customer_entries WHERE tenant_number = ?"
            " ORDER BY customer, first_log_index",
            (number,),
        )
        for customer, rows in groupby(groups, key=lambda row: str(row[0])):
            places = [
                (time, base + index)
                for _, packed in rows
                for index, time in _unpack_places(packed)
                if index < size
            ]
            found: dict[int, _Row] = {}
            for start in range(0, len(places), FETCH_POSITIONS_MAX):
                chunk = [position for _, position in places[start : start + FETCH_POSITIONS_MAX]]
                for row in reader.execute(_BY_POSITIONS, (_json_encoder.encode(chunk), seq_max)):
                    found[row[0]] = row
            if found:
                ordered = _in_time_order(places, found)
                yield customer, _stored_rows(tenant, list(map(found.__getitem__, ordered)), base)

    def _read_events(
        self, reader: sqlite3.Connection, tenant: str, seq_max: int, size: int
    ) -> Iterator[StoredEvent]:
        number = _tenant_number(reader, tenant)
        if number is None:
            return
        base = number << LOG_INDEX_BITS
        rows = reader.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE position >= ? AND position < ?"
            " AND seq <= ? ORDER BY position",
            (base, base + min(size, LOG_SIZE_MAX), seq_max),
        )
        while chunk := rows.fetchmany(FETCH_POSITIONS_MAX):
            yield from _stored_rows(tenant, chunk, base)

    # -- the Merkle log ------------------------------------------------------------------------

    def _entries_at(
        self, connection: sqlite3.Connection, tenant: str, indexes: list[int]
    ) -> dict[int, StoredEvent]:
        number = _tenant_number(connection, tenant)
        assert number is not None  # the indexes are within its log
        base = number << LOG_INDEX_BITS
        found = {}
        for start in range(0, len(indexes), FETCH_POSITIONS_MAX):
            chunk = [base + index for index in indexes[start : start + FETCH_POSITIONS_MAX]]
            rows = connection.execute(
                _BY_POSITIONS, (_json_encoder.encode(chunk), limit(None))
            ).fetchall()
            for stored in _stored_rows(tenant, rows, base):
                found[stored.log_index] = stored
        return found

    def _leaf_indexes(self, tenant: str, leaf_hashes: set[bytes]) -> dict[bytes, int]:
        # Reads the tenant's leaf hashes (32 bytes an entry), not the entries, to find them.
        index_of: dict[bytes, int] = {}
        if leaf_hashes:
            for index, leaf in enumerate(self.leaf_hashes(tenant, 0, self.head(tenant))):
                if leaf in leaf_hashes:
                    index_of[leaf] = index
        return index_of

    def _read_leaves(
        self, connection: sqlite3.Connection, tenant: str, start: int, end: int
    ) -> list[bytes]:
        return _read_leaves(connection, tenant, start, end)

    # -- helpers ---------------------------------------------------------------------------------

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError(f"the ledger {self._path} is closed")
        return self._connection

    def _tenant_number(self, tenant: str) -> int | None:
        with self._lock, _translated("read the ledger"):
            return _tenant_number(self._open_connection(), tenant)

    def _connect_reader(self) -> sqlite3.Connection:
        return sqlite3.connect(
            f"{self._path.resolve().as_uri()}?mode=ro",
            uri=True,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MILLISECONDS / 1000,
        )

    def _check_snapshot(
        self, reader: sqlite3.Connection, verifiers: Sequence[VerifierKey]
    ) -> LedgerCheck:
        return _check(reader, verifiers)


def _configure(connection: sqlite3.Connection, vendor: str | None) -> tuple[bytes, str]:
    """Set the connection up, create or check the schema; the commitment key and the vendor."""
    # Only takes effect while the file is still empty, i.e. before WAL mode is first set.
    connection.execute(f"PRAGMA page_size = {PAGE_SIZE_BYTES}")
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"the ledger needs SQLite's WAL mode, but the file is in {mode!r} mode")
    # FULL: the WAL is fsynced at every commit, so an acknowledged batch survives power loss.
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(f"PRAGMA cache_size = -{CACHE_KIBIBYTES}")
    connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
    connection.execute("PRAGMA temp_store = MEMORY")
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Read inside the write transaction: two processes opening an old file migrate it once.
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version not in _VERSIONS_OPENED:
            raise StoreError(
                f"the ledger file has schema version {version}; this raas reads versions "
                f"{', '.join(map(str, _VERSIONS_OPENED[1:]))} (and makes new files at "
                f"{SCHEMA_VERSION})"
            )
        _migrate(connection, version)
        # Statement by statement: executescript would commit on its own.
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        # Drawn once, when the file is created; it never leaves the file (see commitments).
        defaults = {
            "commitment_key": secrets.token_bytes(COMMITMENT_KEY_SIZE_BYTES),
            "vendor": VENDOR_DEFAULT if vendor is None else vendor,
            "max_seq": 0,
        }
        connection.executemany(
            "INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", defaults.items()
        )
        stored = dict(connection.execute("SELECT name, value FROM meta").fetchall())
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    key, stored_vendor = stored["commitment_key"], stored["vendor"]
    if not isinstance(key, bytes) or len(key) != COMMITMENT_KEY_SIZE_BYTES:
        raise StoreError(f"the ledger's commitment key is not {COMMITMENT_KEY_SIZE_BYTES} bytes")
    if vendor is not None and stored_vendor != vendor:
        raise StoreError(f"the ledger belongs to vendor {stored_vendor!r}, not {vendor!r}")
    return key, str(stored_vendor)


def _migrate(connection: sqlite3.Connection, version: int) -> None:
    """Bring a file of an older schema version to the current one, inside the caller's write
    transaction (which also sets user_version): a crash leaves it wholly old or wholly new."""
    if version == 2:
        for statement in _INVOICES_BY_TENANT:
            connection.execute(statement)
    if version in (2, 3):
        fill_key_blocks(connection)
        connection.execute("DROP INDEX IF EXISTS events_by_key")


class _Batch(PreparedBatch):
    """A prepared batch with the hash each key is indexed under (its first attempt). Without the
    native raas_rows, entries and disclosures are bytearrays, which sqlite3 binds row by row
    without first looking for an adapter (that lookup costs more than the copy)."""

    __slots__ = ("key_hashes",)

    def __init__(self, events: Sequence[Event], commitment_key: bytes) -> None:
        super().__init__(events, commitment_key)
        self.key_hashes = _key_hashes(list(zip(self.tenants, self.sources, self.ids, strict=True)))
        if speedups is None:
            self.entries = list(map(bytearray, self.entries))
            self.disclosures = list(map(bytearray, self.disclosures))

    def kept(self, places: list[int], key_hashes: list[int]) -> _Batch:
        """The same batch with only these places, under these key hashes (after probing)."""
        kept = object.__new__(_Batch)
        kept.events_count = self.events_count
        kept.repeats_inside = self.repeats_inside
        kept.named_tenants = self.named_tenants
        for column in ("tenants", "sources", "ids", "times", "customers", "entries"):
            values = getattr(self, column)
            setattr(kept, column, [values[place] for place in places])
        kept.disclosures = [self.disclosures[place] for place in places]
        kept.leaves = [self.leaves[place] for place in places]
        kept.key_hashes = key_hashes
        return kept


class _Waiting:
    """A batch waiting for the group commit that stores it, and then what came of it."""

    __slots__ = ("batch", "error", "receipt", "written")

    def __init__(self, batch: _Batch) -> None:
        self.batch = batch
        self.written = False
        self.receipt: AppendReceipt | None = None
        self.error: BaseException | None = None


class _WireBatch(msgspec.Struct, array_like=True, gc=False):
    """A `_Batch` as it travels from a preparing process to the writer: msgpack of its columns.

    Pickled instead, the columns cost the worker 2.2 us an event and the writer 1.0; this way
    0.45 and 0.6, and entries arrive as bytearrays, ready to bind.
    """

    events_count: int
    repeats_inside: int
    named_tenants: list[str]
    tenants: list[str]
    sources: list[str]
    ids: list[str]
    key_hashes: list[int]
    times: list[int]
    customers: list[str]
    entries: list[bytearray]
    disclosures: list[bytearray]
    leaves: list[bytes]


_wire_encoder: Final = msgspec.msgpack.Encoder()
_wire_decoder: Final = msgspec.msgpack.Decoder(_WireBatch)


def _to_wire(batch: _Batch) -> bytes:
    return _wire_encoder.encode(
        _WireBatch(*(getattr(batch, name) for name in _WireBatch.__struct_fields__))
    )


def _from_wire(data: bytes) -> _Batch:
    wire = _wire_decoder.decode(data)
    batch = object.__new__(_Batch)
    for name in _WireBatch.__struct_fields__:
        setattr(batch, name, getattr(wire, name))
    return batch


# The commitment key of the ledger a preparing worker process serves (see `append_parsed`).
_preparer_key: bytes | None = None


def _checkpoint_until_set(path: Path, closing: threading.Event) -> None:
    """Copy committed WAL frames into the database once a second until `closing` is set (PASSIVE:
    it never waits for, nor blocks, the writer or a reader); see WAL_CHECKPOINT_SECONDS."""
    try:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error:
        return  # the writer checkpoints past WAL_CHECKPOINT_PAGES: nothing is lost
    try:
        while not closing.wait(WAL_CHECKPOINT_SECONDS):
            try:
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                continue  # busy or interrupted: the next second tries again
    finally:
        connection.close()


def _preparer_pool(processes: int, commitment_key: bytes) -> ProcessPoolExecutor:
    # spawn, not fork: this process may hold threads and an open database.
    pool = ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_preparer,
        initargs=(commitment_key,),
    )
    for _ in range(processes):  # each starts its process now, not on the first body
        pool.submit(int)
    return pool


def _start_preparer(commitment_key: bytes) -> None:
    global _preparer_key
    _preparer_key = commitment_key


class _Failure:
    """An error raised in a worker process, carried back whole.

    Exceptions travel between processes as (class, args), and raas errors take other arguments
    than the message they keep in args: re-made that way they fail, in the pool's own thread,
    and the pool then waits forever. So their state is carried as plain data instead (errors
    held inside, such as BatchRejected's list of EventErrors, too) and restored without calling
    __init__.
    """

    def __init__(self, error: BaseException) -> None:
        self.carried = _carried(error)

    def error(self) -> BaseException:
        error = _restored(self.carried)
        assert isinstance(error, BaseException)
        return error


def _carried(value: Any) -> Any:
    if isinstance(value, BaseException):
        state = {name: _carried(item) for name, item in vars(value).items()}
        return ("exception", type(value), value.args, state)
    if isinstance(value, list):
        return [_carried(item) for item in value]
    return value


def _restored(value: Any) -> Any:
    if isinstance(value, tuple) and len(value) == 4 and value[0] == "exception":
        _, kind, args, state = value
        error = kind.__new__(kind)
        error.args = args
        vars(error).update({name: _restored(item) for name, item in state.items()})
        return error
    if isinstance(value, list):
        return [_restored(item) for item in value]
    return value


def _prepare_body(
    parse: Callable[[bytes], Sequence[Event]], body: bytes
) -> bytes | _Failure | None:
    """In a worker process: parse one body and make its batch ready (None if it is empty)."""
    assert _preparer_key is not None, "started by append_parsed or start_preparers"
    try:
        events = parse(body)
        return _to_wire(_Batch(events, _preparer_key)) if events else None
    except Exception as error:  # carried back, raised in order by the writer
        return _Failure(error)


def _prepared_in(
    pool: Pool,
    parse: Callable[[bytes], Sequence[Event]],
    bodies: Iterable[bytes],
    folder: str,
    ahead: int,
) -> Iterator[bytes | _Failure | None]:
    """`_prepare_body` of each body, in order, by the pool's processes, `ahead` bodies at most
    handed out before their batches are taken.

    Bodies and batches cross as files in `folder` (in the temporary directory), only their
    names through the pool: a pipe moves a few MiB in 64 KiB pieces, each taken by a pool
    thread that must first win the GIL from the writer's busy thread. Measured: 172 ms for a
    3 MB result beside a busy thread (19 ms beside an idle one), which held the preparing
    process back for most of every batch. A file is written and read in one system call each,
    and removed within milliseconds, before the page cache would write it out.
    """
    pending: deque[AsyncResult[str | _Failure | None]] = deque()
    numbered = enumerate(bodies)

    def hand_out() -> None:
        """Hand the next body, if there is one, to the pool."""
        item = next(numbered, None)
        if item is None:
            return
        number, body = item
        path = os.path.join(folder, f"{number}.body")
        with open(path, "wb") as file:
            file.write(body)
        pending.append(pool.apply_async(_prepare_spilled, (parse, path)))

    for _ in range(ahead):
        hand_out()
    while pending:
        done = pending.popleft().get()
        hand_out()
        if isinstance(done, str):
            with open(done, "rb") as file:
                batch = file.read()
            os.unlink(done)
            yield batch
        else:
            yield done


def _prepare_spilled(parse: Callable[[bytes], Sequence[Event]], path: str) -> str | _Failure | None:
    """In a worker process: `_prepare_body` of the body in the file at `path` (removed), the
    batch written to a file beside it, whose name is returned."""
    with open(path, "rb") as file:
        body = file.read()
    os.unlink(path)
    prepared = _prepare_body(parse, body)
    if not isinstance(prepared, bytes):
        return prepared
    batch_path = path.removesuffix(".body") + ".batch"
    with open(batch_path, "wb") as file:
        file.write(prepared)
    return batch_path


def _raised(prepared: Iterable[bytes | _Failure | None]) -> Iterator[_Batch]:
    for item in prepared:
        if isinstance(item, _Failure):
            raise item.error()
        if item is not None:
            yield _from_wire(item)


def _roll_back(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def _missing_row(position: int) -> str:
    return (
        f"the key index names position {position}, where no event is stored; "
        "run `raas ledger check`"
    )


def _entries_at_positions(connection: sqlite3.Connection, positions: list[int]) -> dict[int, bytes]:
    """The stored entry at each of `positions` (StoreError if one holds none)."""
    entries: dict[int, bytes] = {}
    for start in range(0, len(positions), FETCH_POSITIONS_MAX):
        chunk = _json_encoder.encode(positions[start : start + FETCH_POSITIONS_MAX])
        for position, entry in connection.execute(_ENTRIES_AT, (chunk,)):
            entries[position] = _blob(entry, "entry")
    for position in positions:
        if position not in entries:
            raise StoreError(_missing_row(position))
    return entries


def _append_looked_up(
    connection: sqlite3.Connection, batch: _Batch, keys: KeyIndex, found: dict[int, int]
) -> AppendReceipt:
    """The batch holds stored keys (`found`: hash -> position) or a hash twice: count what is
    stored, refuse conflicts, store what is new."""
    entries = _entries_at_positions(connection, list(found.values()))
    hashes = batch.key_hashes
    numbers = {tenant: _tenant_number(connection, tenant) for tenant in set(batch.tenants)}
    taken: set[int] = set()
    new_places: list[int] = []
    new_hashes: list[int] = []
    for place, (tenant, source, event_id) in enumerate(
        zip(batch.tenants, batch.sources, batch.ids, strict=True)
    ):
        for attempt in range(KEY_HASH_ATTEMPTS_MAX):
            if attempt == 0:
                key_hash = hashes[place]
                position = found.get(key_hash)
            else:
                # The first hash is another key's: probe on, as the key did when it was stored.
                key_hash = _key_hash(tenant, source, event_id, attempt)
                position = keys.position_of(key_hash)
                if position is not None:
                    entries.update(_entries_at_positions(connection, [position]))
            if key_hash in taken:
                continue  # another new key of this batch holds this hash
            if position is None:
                taken.add(key_hash)
                new_places.append(place)
                new_hashes.append(key_hash)
                break
            number = numbers[tenant]
            stored_entry = entries[position]
            same_tenant = number is not None and position >> LOG_INDEX_BITS == number
            if same_tenant and _key_of_entry(stored_entry) == (tenant, source, event_id):
                if stored_entry != batch.entries[place]:
                    raise ConflictError(
                        tenant,
                        source,
                        event_id,
                        leaf_hash(stored_entry).hex(),
                        batch.leaves[place].hex(),
                    )
                break  # already stored: a duplicate
        else:
            raise StoreError(
                f"event {event_id!r} from source {source!r} (tenant {tenant!r}): its key's first "
                f"{KEY_HASH_ATTEMPTS_MAX} hashes are all taken by other keys"
            )
    return _store(connection, batch.kept(new_places, new_hashes), keys)


def _store(connection: sqlite3.Connection, batch: _Batch, keys: KeyIndex) -> AppendReceipt:
    """Insert the batch's events, each tenant's after its log; extend leaves, customers, frontiers.

    Every event of `batch` must be new. Seqs follow the batch's order.
    """
    seq_before = int(
        connection.execute("SELECT value FROM meta WHERE name = 'max_seq'").fetchone()[0]
    )
    # A new tenant takes the next number in the order the batch first names it.
    states = {
        tenant: _log_state_for_append(connection, tenant) for tenant in dict.fromkeys(batch.tenants)
    }
    tenants = batch.tenants
    count = len(tenants)
    # Each event's log index and position, counted on per tenant (mapped, not looped: the
    # per-event steps here are C functions).
    counters = {tenant: count_from(size) for tenant, (_, size, _) in states.items()}
    indexes = list(map(next, map(counters.__getitem__, tenants)))
    bases = {tenant: number << LOG_INDEX_BITS for tenant, (number, _, _) in states.items()}
    positions = list(map(add, map(bases.__getitem__, tenants), indexes))
    sizes = {tenant: next(counter) for tenant, counter in counters.items()}
    for tenant, size in sizes.items():
        if size > LOG_SIZE_MAX:
            raise StoreError(f"the log of tenant {tenant!r} would exceed {LOG_SIZE_MAX} entries")
    # Each (tenant, customer)'s places in the batch: log index, time, log index, time, ...
    customers: dict[tuple[str, str], list[int]] = {}
    places_of = map(customers.setdefault, zip(tenants, batch.customers, strict=True), _new_lists())
    deque(map(list.extend, places_of, zip(indexes, batch.times, strict=True)), maxlen=0)
    seqs = range(seq_before + 1, seq_before + count + 1)
    if speedups is None:
        connection.executemany(
            _INSERT_EVENT,
            zip(positions, seqs, batch.key_hashes, batch.entries, batch.disclosures, strict=True),
        )
    elif count:
        connection.execute(
            _INSERT_EVENT_ROWS,
            (
                array("q", positions),
                seqs.start,
                array("q", batch.key_hashes),
                b"".join(batch.entries),
                array("q", accumulate(map(len, batch.entries))),
                b"".join(batch.disclosures),
                array("q", accumulate(map(len, batch.disclosures))),
            ),
        )
    keys.append(connection, seq_before, batch.key_hashes, positions)
    connection.executemany(
        _INSERT_CUSTOMER_ENTRIES,
        [
            (states[tenant][0], customer, places[0], _pack_places(places))
            for (tenant, customer), places in customers.items()
        ],
    )
    if len(states) == 1:
        leaves = {tenants[0]: batch.leaves}
    else:
        leaves = {tenant: [] for tenant in states}
        deque(map(list.append, map(leaves.__getitem__, tenants), batch.leaves), maxlen=0)
    logs: dict[str, LogHead] = {}
    for tenant, (number, size_before, frontier) in states.items():
        size = sizes[tenant]
        _append_leaves(connection, number, size_before, leaves[tenant])
        frontier = moved_frontier(tenant, frontier, leaves[tenant], size)
        connection.execute(
            "UPDATE logs SET size = ?, frontier = ? WHERE tenant = ?",
            (size, frontier.to_bytes(), tenant),
        )
        # The seq of the tenant's last event in the batch.
        last_seq = seqs[count - 1 - tenants[::-1].index(tenant)]
        logs[tenant] = LogHead(size, last_seq)
    for tenant in batch.named_tenants:
        if tenant not in logs:  # only duplicates of it in this batch
            known = _tenant_number(connection, tenant)
            assert known is not None, tenant  # a duplicate is stored, so its log exists
            size = _log_state(connection, tenant)[0]
            logs[tenant] = LogHead(size, _seq_at(connection, known, size - 1))
    connection.execute("UPDATE meta SET value = ? WHERE name = 'max_seq'", (seq_before + count,))
    return AppendReceipt(count, batch.events_count - count, logs)


def _log_state_for_append(
    connection: sqlite3.Connection, tenant: str
) -> tuple[int, int, MerkleFrontier]:
    """(number, size, frontier) of the tenant's log, creating it if the tenant is new."""
    row = connection.execute(
        "SELECT number, size, frontier FROM logs WHERE tenant = ?", (tenant,)
    ).fetchone()
    if row is None:
        number = int(
            connection.execute("SELECT coalesce(max(number), 0) + 1 FROM logs").fetchone()[0]
        )
        if number > TENANT_NUMBER_MAX:
            raise StoreError(f"the ledger holds its maximum of {TENANT_NUMBER_MAX} tenants")
        frontier = MerkleFrontier()
        connection.execute(
            "INSERT INTO logs (tenant, number, size, frontier) VALUES (?, ?, 0, ?)",
            (tenant, number, frontier.to_bytes()),
        )
        return number, 0, frontier
    number, size, frontier = frontier_checked(tenant, row)
    return number, size, frontier


def _log_state(connection: sqlite3.Connection, tenant: str) -> tuple[int, MerkleFrontier]:
    return log_state(connection, _LOG_STATE, tenant)


def _tenant_number(connection: sqlite3.Connection, tenant: str) -> int | None:
    row = connection.execute("SELECT number FROM logs WHERE tenant = ?", (tenant,)).fetchone()
    return None if row is None else int(row[0])


def _seq_at(connection: sqlite3.Connection, number: int, index: int) -> int:
    row = connection.execute(
        "SELECT seq FROM events WHERE position = ?", ((number << LOG_INDEX_BITS) + index,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def _append_leaves(
    connection: sqlite3.Connection, number: int, size_before: int, leaves: list[bytes]
) -> None:
    """Add leaf hashes after the first `size_before` of the log, filling its last block first."""
    base = number << LOG_INDEX_BITS
    first_block = size_before - size_before % LEAF_BLOCK_LEAVES
    data = b"".join(leaves)
    if first_block < size_before:
        row = connection.execute(
            "SELECT hashes FROM leaves WHERE position = ?", (base + first_block,)
        ).fetchone()
        kept = (size_before - first_block) * HASH_SIZE_BYTES
        if row is None or len(row[0]) != kept:
            raise StoreError(
                f"the leaf block at index {first_block} of tenant number {number} should hold "
                f"{kept // HASH_SIZE_BYTES} hashes; run `raas ledger check`"
            )
        data = bytes(row[0]) + data
    block_bytes = LEAF_BLOCK_LEAVES * HASH_SIZE_BYTES
    connection.executemany(
        "INSERT OR REPLACE INTO leaves (position, hashes) VALUES (?, ?)",
        [
            (base + first_block + offset // HASH_SIZE_BYTES, data[offset : offset + block_bytes])
            for offset in range(0, len(data), block_bytes)
        ],
    )


def _read_leaves(connection: sqlite3.Connection, tenant: str, start: int, end: int) -> list[bytes]:
    """The stored leaf hashes of log indexes [start, end); StoreError if any block is short."""
    if start >= end:
        return []
    number = _tenant_number(connection, tenant)
    if number is None:
        raise StoreError(f"tenant {tenant!r} has no log")
    base = number << LOG_INDEX_BITS
    first_block = start - start % LEAF_BLOCK_LEAVES
    data = bytearray()
    expected = first_block
    for position, hashes in connection.execute(
        "SELECT position, hashes FROM leaves WHERE position >= ? AND position < ?"
        " ORDER BY position",
        (base + first_block, base + end),
    ):
        if position - base != expected or len(hashes) % HASH_SIZE_BYTES:
            raise StoreError(
                f"the leaf hashes of tenant {tenant!r} are damaged near index {expected}; "
                "run `raas ledger check`"
            )
        data += hashes
        expected += len(hashes) // HASH_SIZE_BYTES
    if expected < end:
        raise StoreError(
            f"the leaf hashes of tenant {tenant!r} stop at index {expected}, before {end}"
        )
    offset = (start - first_block) * HASH_SIZE_BYTES
    return [
        bytes(data[position : position + HASH_SIZE_BYTES])
        for position in range(offset, offset + (end - start) * HASH_SIZE_BYTES, HASH_SIZE_BYTES)
    ]


def _new_lists() -> Iterator[list[int]]:
    """A new empty list each time: the default `dict.setdefault` puts in for a new key."""
    return map(list, repeat(()))


_packers: dict[int, struct.Struct] = {}


def _pack_places(places: list[int]) -> bytes:
    """A customer row's places (log index, time, log index, time, ...) as 8-byte big-endian."""
    packer = _packers.get(len(places))
    if packer is None:
        packer = _packers.setdefault(len(places), struct.Struct(f">{len(places)}q"))
    return packer.pack(*places)


def _unpack_places(packed: bytes) -> Iterator[tuple[int, int]]:
    """(log index, time) pairs back from `_pack_places`."""
    if len(packed) % _PLACE_FORMAT.size:
        raise StoreError("a customer's stored places are damaged; run `raas ledger check`")
    return _PLACE_FORMAT.iter_unpack(packed)


def _in_time_order(places: list[tuple[int, int]], found: dict[int, _Row]) -> list[int]:
    """The positions of the found events by (time, source, id).

    Times come from the customer rows; source and id are read from the entries only where two
    events of the customer share a time (rare), which keeps them out of the append path.
    """
    ordered: list[int] = []
    kept = sorted(place for place in places if place[1] in found)
    for _, tied in groupby(kept, key=itemgetter(0)):
        positions = [position for _, position in tied]
        if len(positions) > 1:
            positions.sort(
                key=lambda position: _key_of_entry(_blob(found[position][2], "entry"))[1:]
            )
        ordered += positions
    return ordered


def _blob(value: object, column: str) -> bytes:
    """A BLOB column's value; StoreError if the row holds another type there (a damaged row)."""
    if not isinstance(value, bytes):
        raise StoreError(f"the {column} column holds a {type(value).__name__}, not bytes")
    return value


def _stored(tenant: str, row: _Row) -> StoredEvent:
    """A StoredEvent from (position, seq, entry, disclosures, ...); the leaf hash from the entry."""
    position = row[0]
    return _stored_rows(tenant, [row], position - position % LOG_SIZE_MAX)[0]


def _stored_rows(tenant: str, rows: Sequence[_Row], base: int) -> list[StoredEvent]:
    """`_stored` of rows of the log that starts at position `base`, their leaf hashes computed
    together (natively with raas.native: reads of many entries hash them all)."""
    entries = [_blob(row[2], "entry") for row in rows]
    return [
        StoredEvent(row[1], tenant, row[0] - base, leaf, entry, _blob(row[3], "disclosures"))
        for row, entry, leaf in zip(rows, entries, leaf_hashes(entries), strict=True)
    ]


def _check(reader: sqlite3.Connection, verifiers: Sequence[VerifierKey]) -> LedgerCheck:
    """Everything `SqliteLedger.check` compares, on one read snapshot; stops at the first problem.

    For each tenant's log, in log order: the rows are dense from index 0 to the recorded size;
    each entry hashes to the stored leaf hash; its disclosures verify against it, and revealing
    them and making the entry again with the ledger's key gives the same entry and disclosures;
    the entry is its tenant's and the key hash fits its key; the customer rows list it exactly
    once, under its customer and at its time. Then the tree recomputed from
    the entries must have every stored checkpoint's root at its size and the stored frontier at
    the log's size, every note must state its stored (size, root) under the log's origin, and,
    with `verifiers`, carry a valid signature by one of them. Seqs must be 1..max_seq, once each.
    """
    commitment_key = bytes(
        reader.execute("SELECT value FROM meta WHERE name = 'commitment_key'").fetchone()[0]
    )
    max_seq = int(reader.execute("SELECT value FROM meta WHERE name = 'max_seq'").fetchone()[0])
    logs = reader.execute(
        "SELECT tenant, number, size, frontier FROM logs ORDER BY tenant"
    ).fetchall()
    key_pairs = _key_pairs(reader, max_seq)
    if isinstance(key_pairs, str):
        return LedgerCheck(len(logs), 0, 0, 0, LedgerProblem(None, None, None, key_pairs))
    return check_logs(
        reader,
        logs,
        max_seq,
        functools.partial(
            _check_log,
            commitment_key=commitment_key,
            verifiers=verifiers,
            key_pairs=key_pairs,
        ),
        "SELECT count(*) FROM events",
    )


def _key_pairs(reader: sqlite3.Connection, max_seq: int) -> tuple[list[int], list[int]] | str:
    """The key blocks' (hashes, positions) by seq, or what is wrong with them as a whole (not
    one pair per seq, or a hash twice)."""
    pairs_bytes = reader.execute("SELECT coalesce(sum(length(pairs)), 0) FROM key_blocks")
    stored = int(pairs_bytes.fetchone()[0])
    if stored != max_seq * 16:
        return f"the key blocks hold {stored} bytes, not 16 for each of the {max_seq} seqs"
    import numpy as np

    try:
        hashes, positions = read_pairs(reader, 0, max_seq)
    except StoreError as error:
        return str(error)
    distinct = np.unique(hashes)
    if distinct.size != hashes.size:
        return f"the key blocks hold {hashes.size - distinct.size} key hashes more than once"
    return hashes.tolist(), positions.tolist()


def _check_log(
    reader: sqlite3.Connection,
    tenant: str,
    number: int,
    size: int,
    stored_frontier: bytes,
    seqs_seen: bytearray,
    counts: dict[str, int],
    *,
    commitment_key: bytes,
    verifiers: Sequence[VerifierKey],
    key_pairs: tuple[list[int], list[int]],
) -> None:
    def fail(what: str, index: int | None = None) -> Found:
        return Found(LedgerProblem(tenant, index, None, what))

    base = number << LOG_INDEX_BITS
    # Where the customer rows place each event: (customer, time) by log index.
    placed: list[tuple[str, int] | None] = [None] * size
    for customer, packed in reader.execute(
        "SELECT customer, places FROM customer_entries WHERE tenant_number = ?", (number,)
    ):
        try:
            places = list(_unpack_places(_blob(packed, "places")))
        except StoreError as error:
            raise fail(f"customer {customer!r}: {error}") from None
        for index, time in places:
            if not 0 <= index < size:
                raise fail(f"customer {customer!r} lists index {index} beyond the log", index)
            if placed[index] is not None:
                raise fail(f"the customer rows list index {index} twice", index)
            placed[index] = (str(customer), time)
    checkpoints = reader.execute(
        "SELECT origin, size, root, note FROM checkpoints WHERE tenant = ? ORDER BY number",
        (tenant,),
    )
    walk = LogWalk(tenant, size, checkpoints, verifiers, seqs_seen, counts)
    if 0 in walk.checkpoints:
        walk.notes_at(0, MerkleFrontier().root())

    leaves = _stream_leaves(reader, base, size)
    for position, seq, key_hash, entry, disclosures in reader.execute(
        "SELECT position, seq, key_hash, entry, disclosures"
        " FROM events WHERE position >= ? AND position < ? ORDER BY position",
        (base, base + LOG_SIZE_MAX),
    ):
        index = position - base
        walk.index(index, seq)
        if not isinstance(seq, int) or not isinstance(key_hash, int):
            raise walk.fail("the row's seq or key hash is not an integer", index)
        walk.seq(index, seq)
        if (key_pairs[0][seq - 1], key_pairs[1][seq - 1]) != (key_hash, position):
            raise walk.fail(
                "the key blocks hold another key hash or position at its seq", index, seq
            )
        try:
            entry, disclosures = _blob(entry, "entry"), _blob(disclosures, "disclosures")
        except StoreError as error:
            raise walk.fail(str(error), index, seq) from None
        leaf = walk.leaf(entry, next(leaves, None), index, seq)
        what = _check_entry(tenant, key_hash, entry, disclosures, placed[index], commitment_key)
        if what is not None:
            raise walk.fail(what, index, seq)
        walk.add(leaf)
    walk.all_stored()
    if next(leaves, None) is not None:
        raise walk.fail(f"more leaf hashes are stored than the log's {size} entries", size)
    walk.frontier_is(stored_frontier)


def _check_entry(
    tenant: str,
    key_hash: int,
    entry: bytes,
    disclosures: bytes,
    placed: tuple[str, int] | None,
    commitment_key: bytes,
) -> str | None:
    """What is wrong with one stored entry, its row and its place in the customer rows, or None."""
    event = revealed(tenant, entry, disclosures)
    if isinstance(event, str):
        return event
    if key_hash not in {
        _key_hash(tenant, event.source, event.id, attempt)
        for attempt in range(KEY_HASH_ATTEMPTS_MAX)
    }:
        return "the row's key hash is not a hash of the entry's key (tenant, source, id)"
    if placed is None:
        return "no customer row lists the entry: settlement would not read it"
    customer, time = placed
    if customer != event.customer:
        return (
            f"the entry is customer {event.customer!r}'s but the customer rows list it under "
            f"{customer!r}"
        )
    if (event.time - EPOCH) // ONE_MICROSECOND != time:
        return f"the customer rows place the entry at another time ({time} us since the epoch)"
    return remade_problem(event, entry, disclosures, commitment_key)


def _stream_leaves(reader: sqlite3.Connection, base: int, size: int) -> Iterator[bytes]:
    """The stored leaf hashes of a log in order, as they are (a short block ends them early)."""
    rows = reader.execute(
        "SELECT position, hashes FROM leaves WHERE position >= ? AND position < ?"
        " ORDER BY position",
        (base, base + LOG_SIZE_MAX),
    )
    expected = 0
    for position, hashes in rows:
        if position - base != expected or len(hashes) % HASH_SIZE_BYTES:
            return
        for offset in range(0, len(hashes), HASH_SIZE_BYTES):
            yield bytes(hashes[offset : offset + HASH_SIZE_BYTES])
        expected += len(hashes) // HASH_SIZE_BYTES

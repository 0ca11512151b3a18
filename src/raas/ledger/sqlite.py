"""The embedded ledger: events in one SQLite file (WAL, fsync before acknowledging), appended once.

One row per event holds its canonical entry, its RFC 6962 leaf hash, its global `seq`, its dense
per-tenant `log_index` and the columns that queries need; the idempotency key (tenant, source,
id) is a unique index on that same row, so the key and the event are written, or not, together.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from hashlib import sha256
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from raas.core.canonical import leaf_hash
from raas.core.events import Event
from raas.errors import ConflictError, StoreError
from raas.ledger.store import EPOCH, ONE_MICROSECOND, AppendReceipt, LogHead, StoredEvent, entry_of

SCHEMA_VERSION: Final = 1
# Page cache of the writing connection: the indexes of a few million events stay in memory.
CACHE_KIBIBYTES: Final = 64 * 1024
# Checkpoint the WAL into the database about every 64 MiB rather than SQLite's default 4 MiB, so a
# large batch is not followed by a checkpoint on nearly every commit.
WAL_CHECKPOINT_PAGES: Final = 16_384
BUSY_TIMEOUT_MILLISECONDS: Final = 10_000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    log_index INTEGER NOT NULL,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    time_microseconds INTEGER NOT NULL,
    customer TEXT NOT NULL,
    conversation TEXT NOT NULL,
    intent TEXT,
    leaf_hash BLOB NOT NULL,
    entry BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_key ON events (tenant, source, id);
CREATE UNIQUE INDEX IF NOT EXISTS events_by_log ON events (tenant, log_index);
CREATE INDEX IF NOT EXISTS events_by_customer ON events (tenant, customer, time_microseconds);
CREATE TABLE IF NOT EXISTS logs (
    tenant TEXT PRIMARY KEY,
    size INTEGER NOT NULL
) WITHOUT ROWID;
"""

# A batch is staged here first so that duplicates and conflicts are found set-wise, in SQL.
_STAGING: Final = """
CREATE TEMP TABLE IF NOT EXISTS incoming (
    position INTEGER PRIMARY KEY,
    tenant TEXT NOT NULL,
    source TEXT NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    time_microseconds INTEGER NOT NULL,
    customer TEXT NOT NULL,
    conversation TEXT NOT NULL,
    intent TEXT,
    leaf_hash BLOB NOT NULL,
    entry BLOB NOT NULL
)
"""

# Rows carry, in this order: tenant, log index (in a prepared batch: the event's rank among its
# tenant's events in the batch), source, id, type, time_microseconds, customer, conversation,
# intent ('' for none), leaf_hash, entry.
_INSERT_ALL: Final = """
INSERT INTO events (tenant, log_index, source, id, type, time_microseconds, customer,
                    conversation, intent, leaf_hash, entry)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, nullif(?9, ''), ?10, ?11)
"""

_SEQ_AT: Final = "SELECT seq FROM events WHERE tenant = ? AND log_index = ?"

_STAGE: Final = """
INSERT INTO temp.incoming (tenant, source, id, type, time_microseconds, customer, conversation,
                           intent, leaf_hash, entry)
VALUES (?1, ?3, ?4, ?5, ?6, ?7, ?8, nullif(?9, ''), ?10, ?11)
"""

_FIRST_CONFLICT: Final = """
SELECT incoming.tenant, incoming.source, incoming.id, events.leaf_hash, incoming.leaf_hash
FROM temp.incoming AS incoming
JOIN events ON events.tenant = incoming.tenant
           AND events.source = incoming.source
           AND events.id = incoming.id
WHERE events.leaf_hash <> incoming.leaf_hash
ORDER BY incoming.position
LIMIT 1
"""

# New events take the next log indexes of their tenant in batch order; seq follows insert order.
_INSERT_NEW: Final = """
INSERT INTO events (tenant, log_index, source, id, type, time_microseconds, customer,
                    conversation, intent, leaf_hash, entry)
SELECT incoming.tenant,
       coalesce((SELECT size FROM logs WHERE logs.tenant = incoming.tenant), 0)
           + row_number() OVER (PARTITION BY incoming.tenant ORDER BY incoming.position) - 1,
       incoming.source, incoming.id, incoming.type, incoming.time_microseconds,
       incoming.customer, incoming.conversation, incoming.intent, incoming.leaf_hash,
       incoming.entry
FROM temp.incoming AS incoming
WHERE NOT EXISTS (
    SELECT 1 FROM events
    WHERE events.tenant = incoming.tenant
      AND events.source = incoming.source
      AND events.id = incoming.id
)
ORDER BY incoming.position
"""

_NEW_PER_TENANT: Final = """
SELECT tenant, count(*), min(log_index), max(log_index), max(seq)
FROM events WHERE seq > ? GROUP BY tenant
"""

_SET_SIZE: Final = """
INSERT INTO logs (tenant, size) VALUES (?, ?)
ON CONFLICT (tenant) DO UPDATE SET size = excluded.size
"""

_STORED_COLUMNS: Final = "seq, tenant, log_index, leaf_hash, entry"

_Row = tuple[Any, ...]  # what sqlite3 hands back: column types follow the schema above


class SqliteLedger:
    """A `LedgerStore` in one SQLite file; safe to share between threads (writes are serialised).

    Reads that stream (`iter_customers`, `iter_events`) run on their own read-only connection in
    one read transaction, so they see one snapshot and never block appends.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        with _translated(f"open the ledger {self._path}"):
            connection = sqlite3.connect(
                self._path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MILLISECONDS / 1000,
            )
            try:
                _configure(connection)
            except BaseException:
                connection.close()
                raise
        self._connection: sqlite3.Connection | None = connection

    # -- writing ---------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> AppendReceipt:
        """Store a batch in one transaction, durable on disk before this returns.

        Already-stored events (same key, same entry) and repeats inside the batch count as
        duplicates; a key that comes back with another entry raises ConflictError and nothing of
        the batch is stored.
        """
        connection = self._open_connection()
        if not events:
            return AppendReceipt(0, 0, {})
        batch = _Batch(events)
        with self._lock, _translated("append to the ledger"):
            try:
                # Most batches are new: insert them straight away and let the key index find the
                # rare retry, which then goes the staged way that sorts duplicates from conflicts.
                return _in_transaction(connection, lambda: _append_new(connection, batch))
            except sqlite3.IntegrityError:
                return _in_transaction(connection, lambda: _append_staged(connection, batch))

    # -- reading ---------------------------------------------------------------------------------

    def head(self, tenant: str) -> int:
        row = self._fetch_one("SELECT size FROM logs WHERE tenant = ?", (tenant,))
        return 0 if row is None else int(row[0])

    def tenants(self) -> list[str]:
        with self._lock, _translated("read the ledger's tenants"):
            rows = self._open_connection().execute("SELECT tenant FROM logs ORDER BY tenant")
            return [str(row[0]) for row in rows]

    def max_seq(self) -> int:
        row = self._fetch_one("SELECT coalesce(max(seq), 0) FROM events", ())
        assert row is not None
        return int(row[0])

    def count(self, tenant: str) -> int:
        row = self._fetch_one("SELECT count(*) FROM events WHERE tenant = ?", (tenant,))
        assert row is not None
        return int(row[0])

    def get(self, tenant: str, source: str, id: str) -> StoredEvent | None:
        row = self._fetch_one(
            f"SELECT {_STORED_COLUMNS} FROM events WHERE tenant = ? AND source = ? AND id = ?",
            (tenant, source, id),
        )
        return None if row is None else StoredEvent(*row)

    def iter_customers(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        """Each customer's events, customers sorted, a customer's events by (time, source, id).

        `upto_seq` and `upto_size` bound the read as in `LedgerStore`. Streams: one customer's
        events are in memory at a time.
        """
        query = (
            f"SELECT customer, {_STORED_COLUMNS} FROM events INDEXED BY events_by_customer"
            " WHERE tenant = ? AND seq <= ? AND log_index < ?"
            " ORDER BY customer, time_microseconds, source, id"
        )
        rows = self._stream(query, (tenant, _limit(upto_seq), _limit(upto_size)))
        for customer, group in groupby(rows, key=itemgetter(0)):
            yield customer, [StoredEvent(row[1], row[2], row[3], row[4], row[5]) for row in group]

    def iter_events(
        self, tenant: str, *, upto_seq: int | None = None, upto_size: int | None = None
    ) -> Iterator[StoredEvent]:
        """The tenant's events in log order (log_index 0, 1, 2, ...), bounded as above."""
        query = (
            f"SELECT {_STORED_COLUMNS} FROM events INDEXED BY events_by_log"
            " WHERE tenant = ? AND seq <= ? AND log_index < ? ORDER BY log_index"
        )
        for row in self._stream(query, (tenant, _limit(upto_seq), _limit(upto_size))):
            yield StoredEvent(*row)

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            with _translated("close the ledger"):
                connection.close()

    def __enter__(self) -> SqliteLedger:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise StoreError(f"the ledger {self._path} is closed")
        return self._connection

    def _fetch_one(self, query: str, parameters: _Row) -> _Row | None:
        with self._lock, _translated("read the ledger"):
            row: _Row | None = self._open_connection().execute(query, parameters).fetchone()
            return row

    def _stream(self, query: str, parameters: _Row) -> Iterator[_Row]:
        self._open_connection()
        with _translated("read the ledger"):
            reader = sqlite3.connect(
                f"{self._path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MILLISECONDS / 1000,
            )
        try:
            with _translated("read the ledger"):
                reader.execute("BEGIN")
                yield from reader.execute(query, parameters)
        finally:
            reader.close()


def _configure(connection: sqlite3.Connection) -> None:
    mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"the ledger needs SQLite's WAL mode, but the file is in {mode!r} mode")
    # FULL: the WAL is fsynced at every commit, so an acknowledged batch survives power loss.
    connection.execute("PRAGMA synchronous = FULL")
    connection.execute(f"PRAGMA cache_size = -{CACHE_KIBIBYTES}")
    connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    connection.execute("PRAGMA temp_store = MEMORY")
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION):
        raise StoreError(
            f"the ledger file has schema version {version}; "
            f"this raas reads version {SCHEMA_VERSION}"
        )
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Statement by statement: executescript would commit on its own.
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute(_STAGING)


class _Batch:
    """A batch made ready for storage outside the write lock: one row per distinct key.

    A key repeated inside the batch with the same entry is dropped here (a duplicate); with
    another entry it is a conflict, refused before the store is touched.
    """

    __slots__ = ("events_count", "rows", "tenant_sizes")

    def __init__(self, events: Sequence[Event]) -> None:
        entries: dict[tuple[str, str, str], bytes] = {}
        tenant_sizes: dict[str, int] = {}
        rows: list[_Row] = []
        append = rows.append
        microsecond = ONE_MICROSECOND
        for event in events:
            tenant = event.tenant
            source = event.source
            event_id = event.id
            entry = entry_of(event)
            leaf = sha256(b"\x00" + entry).digest()  # raas.core.canonical.leaf_hash, inlined
            key = (tenant, source, event_id)
            earlier = entries.setdefault(key, entry)
            if earlier is not entry:
                if earlier != entry:
                    raise ConflictError(
                        tenant, source, event_id, leaf_hash(earlier).hex(), leaf_hash(entry).hex()
                    )
                continue
            rank = tenant_sizes.get(tenant, 0)
            tenant_sizes[tenant] = rank + 1
            # bytearray and '' rather than bytes and None: sqlite3 binds those without first
            # looking for an adapter, which costs more than the copy (measured: ~0.8 us a row).
            append(
                (
                    tenant,
                    rank,
                    source,
                    event_id,
                    event.type,
                    (event.time - EPOCH) // microsecond,
                    event.customer,
                    event.conversation,
                    event.intent or "",
                    bytearray(leaf),
                    bytearray(entry),
                )
            )
        self.events_count = len(events)
        self.rows = rows
        self.tenant_sizes = tenant_sizes


def _in_transaction(
    connection: sqlite3.Connection, work: Callable[[], AppendReceipt]
) -> AppendReceipt:
    connection.execute("BEGIN IMMEDIATE")
    try:
        receipt = work()
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return receipt


def _append_new(connection: sqlite3.Connection, batch: _Batch) -> AppendReceipt:
    """The fast path: every event of the batch is new (an IntegrityError says otherwise)."""
    sizes_before = _log_sizes(connection, batch.tenant_sizes)
    seq_before = _max_seq(connection)
    rows = batch.rows
    if any(sizes_before.values()):
        rows = [(row[0], row[1] + sizes_before[row[0]], *row[2:]) for row in rows]
    connection.executemany(_INSERT_ALL, rows)
    # Each tenant's rows took the ranks 0..n-1 after its old size and (tenant, log_index) is
    # unique, so its log is dense if every row went in: check that, and read each head's seq.
    if _max_seq(connection) != seq_before + len(rows):
        raise StoreError(f"the ledger took a batch of {len(rows)} events but its seq disagrees")
    logs: dict[str, LogHead] = {}
    for tenant, added in batch.tenant_sizes.items():
        size = sizes_before[tenant] + added
        last = connection.execute(_SEQ_AT, (tenant, size - 1)).fetchone()
        if last is None or last[0] <= seq_before:
            raise StoreError(f"the log of tenant {tenant!r} did not reach size {size}")
        connection.execute(_SET_SIZE, (tenant, size))
        logs[tenant] = LogHead(size, int(last[0]))
    return AppendReceipt(len(rows), batch.events_count - len(rows), logs)


def _append_staged(connection: sqlite3.Connection, batch: _Batch) -> AppendReceipt:
    """The path for retries: stage the batch, refuse conflicts, insert what is new, set-wise."""
    connection.execute("DELETE FROM temp.incoming")
    connection.executemany(_STAGE, batch.rows)
    conflict = connection.execute(_FIRST_CONFLICT).fetchone()
    if conflict is not None:
        tenant, source, event_id, stored_leaf, new_leaf = conflict
        raise ConflictError(tenant, source, event_id, stored_leaf.hex(), new_leaf.hex())
    sizes_before = _log_sizes(connection, batch.tenant_sizes)
    seq_before = _max_seq(connection)
    connection.execute(_INSERT_NEW)
    return _staged_heads(connection, batch, sizes_before, seq_before)


def _log_sizes(connection: sqlite3.Connection, tenants: Iterable[str]) -> dict[str, int]:
    sizes = {}
    for tenant in tenants:
        row = connection.execute("SELECT size FROM logs WHERE tenant = ?", (tenant,)).fetchone()
        sizes[tenant] = 0 if row is None else int(row[0])
    return sizes


def _max_seq(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def _staged_heads(
    connection: sqlite3.Connection, batch: _Batch, sizes_before: dict[str, int], seq_before: int
) -> AppendReceipt:
    """After a staged insert: check that every log stayed dense, then record the new sizes."""
    logs: dict[str, LogHead] = {}
    stored = 0
    for tenant, added, first_index, last_index, last_seq in connection.execute(
        _NEW_PER_TENANT, (seq_before,)
    ).fetchall():
        size_before = sizes_before[tenant]
        # With (tenant, log_index) unique, these two bounds prove the tenant's log is still dense.
        if first_index != size_before or last_index != size_before + added - 1:
            raise StoreError(
                f"log of tenant {tenant!r} would not be dense: it held {size_before} events and "
                f"the batch took indexes {first_index}..{last_index} for {added} events"
            )
        stored += added
        logs[tenant] = LogHead(size_before + added, last_seq)
        connection.execute(_SET_SIZE, (tenant, size_before + added))
    for tenant, size in sizes_before.items():
        if tenant not in logs:
            last = connection.execute(_SEQ_AT, (tenant, size - 1)).fetchone()
            logs[tenant] = LogHead(size, 0 if last is None else int(last[0]))
    return AppendReceipt(stored, batch.events_count - stored, logs)


def _limit(bound: int | None) -> int:
    # SQLite integers are 64-bit: the largest one stands for "no limit".
    return 2**63 - 1 if bound is None else bound


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Driver errors become StoreError, naming what the ledger was doing."""
    try:
        yield
    except sqlite3.Error as error:
        raise StoreError(f"could not {action}: {error}") from error

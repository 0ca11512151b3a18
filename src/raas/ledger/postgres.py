"""The production ledger: events in PostgreSQL (psycopg 3), appended once, each tenant's events a
dense Merkle log whose frontier moves in the same transaction, with the SQLite ledger's semantics
and byte for byte the same entries, leaves, roots, proofs, checkpoints and invoices. One
difference: PostgreSQL text holds no NUL character, so an event with one in its tenant, source,
id or customer is refused (StoreError, nothing of its batch stored) where SQLite would keep it.

The schema is the Alembic revision `0001_ledger` (raas.migrations). Opening a database that was
never migrated migrates it to the newest revision, as opening a new SQLite file creates it; a
database migrated before is used as it is, and later revisions are applied by
`raas db upgrade --db URL` once per deployment (not by every server worker as it starts).

Several processes may append at once, to the same tenant too. An append takes, in one
transaction, a transaction-scoped advisory lock per tenant of its batch (in one global order,
so two batches never wait on each other in a cycle), looks its keys up, and then takes the
ledger's seq counter (a row lock held until commit) just before inserting: log indexes and
frontiers move one batch at a time per tenant, and seqs are handed out in commit order, so a
read pinned to `max_seq()` sees a set that never changes afterwards, as on SQLite.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain, groupby
from typing import Any, Final

import psycopg

from raas.core.canonical import leaf_hash
from raas.core.commitments import COMMITMENT_KEY_SIZE_BYTES
from raas.core.events import Event
from raas.errors import ConflictError, StoreError
from raas.ledger.batch import PreparedBatch
from raas.ledger.keys import VerifierKey
from raas.ledger.log import VENDOR_DEFAULT, LedgerCheck, check_vendor
from raas.ledger.merkle import MerkleFrontier
from raas.ledger.sql import (
    LogWalk,
    Row,
    SqlLedger,
    SqlQueries,
    check_logs,
    frontier_checked,
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

__all__ = ["PostgresLedger"]

# Rows a streaming read fetches from its server-side cursor at a time.
STREAM_ROWS: Final = 2_000
CONNECT_TIMEOUT_SECONDS: Final = 10
_LOCK_KEY_FORMAT: Final = struct.Struct(">q")

_COPY_EVENTS: Final = """
COPY ledger_events (tenant_number, log_index, seq, source, id, customer, time_us, leaf_hash,
    entry, disclosures) FROM STDIN (FORMAT BINARY)
"""
_COPY_TYPES: Final = [
    "int4",
    "int8",
    "int8",
    "text",
    "text",
    "text",
    "int8",
    "bytea",
    "bytea",
    "bytea",
]
_STORED_BY_KEY: Final = """
SELECT k.place, e.entry
FROM unnest(%b::int4[], %b::text[], %b::text[], %b::int4[]) AS k (number, source, id, place)
JOIN ledger_events AS e ON e.tenant_number = k.number
    AND e.source = k.source COLLATE "C" AND e.id = k.id COLLATE "C"
"""
_EVENT_COLUMNS: Final = "log_index, seq, entry, disclosures"
_LOG_STATE: Final = "SELECT number, size, frontier FROM ledger_logs WHERE tenant = %s"
_QUERIES: Final = SqlQueries(
    log_state=_LOG_STATE,
    head="SELECT size FROM ledger_logs WHERE tenant = %s",
    tenants="SELECT tenant FROM ledger_logs WHERE size > 0 ORDER BY tenant",
    max_seq="SELECT max_seq FROM ledger_meta",
    latest_checkpoint=(
        "SELECT note FROM ledger_checkpoints WHERE tenant = %s ORDER BY number DESC LIMIT 1"
    ),
    checkpoint_at=(
        "SELECT note FROM ledger_checkpoints WHERE tenant = %s AND size = %s"
        " ORDER BY number DESC LIMIT 1"
    ),
    last_signed=(
        "SELECT origin, size, root FROM ledger_checkpoints WHERE tenant = %s"
        " ORDER BY number DESC LIMIT 1"
    ),
    insert_checkpoint=(
        "INSERT INTO ledger_checkpoints (tenant, origin, size, root, note)"
        " VALUES (%s, %s, %s, %s, %s)"
    ),
    invoice_body="SELECT body FROM ledger_invoices WHERE tenant = %s AND id = %s",
    invoice_ids="SELECT id FROM ledger_invoices WHERE tenant = %s ORDER BY id",
    begin_read="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
)

_Row = Row
_translated = functools.partial(translated, driver_error=psycopg.Error)


class PostgresLedger(SqlLedger[psycopg.Connection[Any]]):
    """A `LedgerStore` in a PostgreSQL database; safe to share between threads and processes.

    `dsn` is a libpq URL or connection string (postgresql://user@host:port/database). Calls on
    one instance share one connection, one at a time; streaming reads (`iter_customers`,
    `iter_events`, `check`) run on their own connection in one read-only snapshot, so they never
    block appends. `vendor` names the ledger's logs; it is fixed when the ledger is first opened
    (default "raas") and must match if given again.
    """

    def __init__(self, dsn: str, *, vendor: str | None = None) -> None:
        if vendor is not None:
            check_vendor(vendor)
        super().__init__()
        self._dsn = dsn
        _migrate_if_new(dsn)
        with _translated("open the ledger"):
            connection = _connect(dsn)
            try:
                self._commitment_key, self._vendor = _configure(connection, vendor)
            except BaseException:
                connection.close()
                raise
        self._connection: psycopg.Connection[Any] | None = connection

    _queries = _QUERIES
    _driver_error = psycopg.Error

    @property
    def dsn(self) -> str:
        return self._dsn

    # -- writing ---------------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> AppendReceipt:
        """Store a batch in one transaction, committed before this returns.

        Already-stored events (same key, same entry) and repeats inside the batch count as
        duplicates; a key that comes back with another entry raises ConflictError and nothing of
        the batch is stored. Each tenant's log and frontier move with it.
        """
        connection = self._open_connection()
        if not events:
            return AppendReceipt(0, 0, {})
        batch = _Batch(events, self._commitment_key)
        with self._lock, _translated("append to the ledger"):
            with connection.transaction():
                receipt = _store(connection, batch, self._expect_duplicates)
            self._expect_duplicates = receipt.duplicates > batch.repeats_inside
            return receipt

    def append_batches(self, batches: Iterable[Sequence[Event]]) -> Iterator[AppendReceipt]:
        """`append` each batch in order, yielding each receipt once its batch is committed.

        Empty batches are skipped; a failing batch raises after the receipts before it.
        """
        for events in batches:
            if events:
                yield self.append(events)

    def append_body(self, body: bytes, parse: Callable[[bytes], Sequence[Event]]) -> AppendReceipt:
        return self.append(parse(body))

    def start_preparers(self, processes: int) -> None:
        pass  # each server process appends on its own connection; run more servers instead

    @contextmanager
    def _writing(
        self, action: str, tenants: Sequence[str] = ()
    ) -> Iterator[psycopg.Connection[Any]]:
        connection = self._open_connection()
        with self._lock, _translated(action), connection.transaction():
            _lock_tenants(connection, tenants)
            yield connection

    def store_invoice(self, invoice_id: str, tenant: str, body: bytes) -> None:
        """Keep an issued invoice; the same bytes again are a no-op, other bytes a StoreError."""
        with self._writing(f"store invoice {invoice_id!r}") as connection:
            inserted = connection.execute(
                "INSERT INTO ledger_invoices (id, tenant, body) VALUES (%s, %s, %s)"
                " ON CONFLICT (tenant, id) DO NOTHING RETURNING id",
                (invoice_id, tenant, bytes(body)),
            ).fetchone()
            if inserted is not None:
                return
            row = connection.execute(
                "SELECT body FROM ledger_invoices WHERE tenant = %s AND id = %s",
                (tenant, invoice_id),
            ).fetchone()
            assert row is not None  # it was there a moment ago, and rows are never deleted
            if bytes(row[0]) != bytes(body):
                raise StoreError(existing_invoice_conflict(invoice_id, tenant))

    # -- reading ---------------------------------------------------------------------------------

    def count(self, tenant: str) -> int:
        row = self._fetch_one(
            "SELECT count(*) FROM ledger_events"
            " WHERE tenant_number = (SELECT number FROM ledger_logs WHERE tenant = %s)",
            (tenant,),
        )
        return 0 if row is None else int(row[0])

    def get(self, tenant: str, source: str, id: str) -> StoredEvent | None:
        row = self._fetch_one(
            f"SELECT {_EVENT_COLUMNS} FROM ledger_events"
            " WHERE tenant_number = (SELECT number FROM ledger_logs WHERE tenant = %s)"
            " AND source = %s AND id = %s",
            (tenant, source, id),
        )
        return None if row is None else _stored(tenant, row)

    def _read_customers(
        self, reader: psycopg.Connection[Any], tenant: str, seq_max: int, size: int
    ) -> Iterator[tuple[str, list[StoredEvent]]]:
        rows = _stream_rows(
            reader,
            f"SELECT customer, {_EVENT_COLUMNS} FROM ledger_events"
            " WHERE tenant_number = (SELECT number FROM ledger_logs WHERE tenant = %s)"
            " AND log_index < %s AND seq <= %s ORDER BY customer, time_us, source, id",
            (tenant, size, seq_max),
        )
        for customer, group in groupby(rows, key=lambda row: str(row[0])):
            yield customer, [_stored(tenant, row[1:]) for row in group]

    def _read_events(
        self, reader: psycopg.Connection[Any], tenant: str, seq_max: int, size: int
    ) -> Iterator[StoredEvent]:
        rows = _stream_rows(
            reader,
            f"SELECT {_EVENT_COLUMNS} FROM ledger_events"
            " WHERE tenant_number = (SELECT number FROM ledger_logs WHERE tenant = %s)"
            " AND log_index < %s AND seq <= %s ORDER BY log_index",
            (tenant, size, seq_max),
        )
        for row in rows:
            yield _stored(tenant, row)

    # -- the Merkle log ------------------------------------------------------------------------

    def _entries_at(
        self, connection: psycopg.Connection[Any], tenant: str, indexes: list[int]
    ) -> dict[int, StoredEvent]:
        rows = connection.execute(
            f"SELECT {_EVENT_COLUMNS} FROM ledger_events"
            " WHERE tenant_number = (SELECT number FROM ledger_logs WHERE tenant = %s)"
            " AND log_index = ANY(%s)",
            (tenant, indexes),
        ).fetchall()
        return {int(row[0]): _stored(tenant, row) for row in rows}

    def _leaf_indexes(self, tenant: str, leaf_hashes: set[bytes]) -> dict[bytes, int]:
        rows = self._fetch_all(
            "SELECT leaf_hash, log_index FROM ledger_events"
            " WHERE tenant_number = (SELECT number FROM ledger_logs WHERE tenant = %s)"
            " AND leaf_hash = ANY(%s)",
            (tenant, sorted(leaf_hashes)),
        )
        return {bytes(row[0]): int(row[1]) for row in rows}

    def _read_leaves(
        self, connection: psycopg.Connection[Any], tenant: str, start: int, end: int
    ) -> list[bytes]:
        return _read_leaves(connection, tenant, start, end)

    # -- helpers ---------------------------------------------------------------------------------

    def _open_connection(self) -> psycopg.Connection[Any]:
        """The ledger's connection; a new one if the server dropped the old (the caller may
        hold the lock or not: replacing it is safe either way, as it was unusable)."""
        if self._connection is None:
            raise StoreError("the ledger is closed")
        if self._connection.broken:
            with _translated("reconnect to the ledger"):
                self._connection = _connect(self._dsn)
        return self._connection

    def _connect_reader(self) -> psycopg.Connection[Any]:
        return _connect(self._dsn)

    def _check_snapshot(
        self, reader: psycopg.Connection[Any], verifiers: Sequence[VerifierKey]
    ) -> LedgerCheck:
        return _check(reader, verifiers)


def _connect(dsn: str) -> psycopg.Connection[Any]:
    return psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)


def _migrate_if_new(dsn: str) -> None:
    """Migrate a database that was never migrated; leave one that was as it is."""
    from raas.migrations import current, upgrade

    if current(dsn) is None:
        upgrade(dsn)


def _configure(connection: psycopg.Connection[Any], vendor: str | None) -> tuple[bytes, str]:
    """The ledger's commitment key and vendor, drawn and written when it is first opened."""
    table = connection.execute("SELECT to_regclass('ledger_meta')").fetchone()
    if table is None or table[0] is None:
        raise StoreError(
            "the database has no ledger tables although it was migrated; "
            "run `raas db upgrade --db URL`"
        )
    with connection.transaction():
        # Drawn once; it never leaves the database (see commitments).
        connection.execute(
            "INSERT INTO ledger_meta (commitment_key, vendor) VALUES (%s, %s)"
            " ON CONFLICT (singleton) DO NOTHING",
            (
                secrets.token_bytes(COMMITMENT_KEY_SIZE_BYTES),
                VENDOR_DEFAULT if vendor is None else vendor,
            ),
        )
        row = connection.execute("SELECT commitment_key, vendor FROM ledger_meta").fetchone()
    assert row is not None
    key, stored_vendor = bytes(row[0]), str(row[1])
    if len(key) != COMMITMENT_KEY_SIZE_BYTES:
        raise StoreError(f"the ledger's commitment key is not {COMMITMENT_KEY_SIZE_BYTES} bytes")
    if vendor is not None and stored_vendor != vendor:
        raise StoreError(f"the ledger belongs to vendor {stored_vendor!r}, not {vendor!r}")
    return key, stored_vendor


class _Batch(PreparedBatch):
    """A prepared batch whose keys and customers PostgreSQL text can hold (no NUL character)."""

    __slots__ = ()

    def __init__(self, events: Sequence[Event], commitment_key: bytes) -> None:
        super().__init__(events, commitment_key)
        # One scan of the batch's text columns; the field is looked for only if there is one.
        if "\x00" in "".join(chain(self.tenants, self.sources, self.ids, self.customers)):
            _refuse_nul(events)


def _refuse_nul(events: Sequence[Event]) -> None:
    for event in events:
        for field in ("tenant", "source", "id", "customer"):
            if "\x00" in getattr(event, field):
                raise StoreError(
                    f"event {event.id!r}: field {field!r} holds a NUL character, which "
                    "PostgreSQL text cannot store; nothing of the batch was stored"
                )


def _lock_key(tenant: str) -> int:
    """The advisory lock key of a tenant's log: 64 bits of SHA-256 of its name."""
    digest = hashlib.sha256(b"raas ledger log\x00" + tenant.encode()).digest()
    key: int = _LOCK_KEY_FORMAT.unpack_from(digest)[0]
    return key


def _lock_tenants(connection: psycopg.Connection[Any], tenants: Iterable[str]) -> None:
    """Hold the tenants' logs until the transaction ends, taken in key order (no deadlock)."""
    for key in sorted({_lock_key(tenant) for tenant in tenants}):
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


def _store(
    connection: psycopg.Connection[Any], batch: _Batch, expect_duplicates: bool
) -> AppendReceipt:
    """In the caller's transaction: lock the batch's logs, refuse conflicts, store what is new.

    Most batches are new: they are inserted straight away (in a savepoint) and the unique key
    finds the rare retry, which then goes the way that looks every key up first; after a batch
    that held retries (`expect_duplicates`), that way is taken from the start.
    """
    _lock_tenants(connection, batch.named_tenants)
    states = {tenant: _log_state_for_append(connection, tenant) for tenant in batch.named_tenants}
    if not expect_duplicates:
        try:
            with connection.transaction():
                return _insert(connection, batch, states, range(len(batch.entries)))
        except psycopg.errors.UniqueViolation:
            pass  # rolled back to the savepoint: the tenants' locks are still held
    return _insert(connection, batch, states, _new_places(connection, batch, states))


def _insert(
    connection: psycopg.Connection[Any],
    batch: _Batch,
    states: dict[str, tuple[int, int, MerkleFrontier]],
    new_places: Sequence[int],
) -> AppendReceipt:
    """Insert the batch's events at these places (new keys), then move each tenant's log."""
    count = len(new_places)
    seq_before = 0
    if count:
        # The counter's row stays locked until commit: seqs are taken in commit order.
        row = connection.execute(
            "UPDATE ledger_meta SET max_seq = max_seq + %s RETURNING max_seq", (count,)
        ).fetchone()
        assert row is not None
        seq_before = int(row[0]) - count
    next_index = {tenant: size for tenant, (_, size, _) in states.items()}
    leaves: dict[str, list[bytes]] = {tenant: [] for tenant in states}
    last_seq: dict[str, int] = {}
    with connection.cursor() as cursor, cursor.copy(_COPY_EVENTS) as copy:
        copy.set_types(_COPY_TYPES)
        for seq, place in enumerate(new_places, start=seq_before + 1):
            tenant = batch.tenants[place]
            index = next_index[tenant]
            next_index[tenant] = index + 1
            leaves[tenant].append(batch.leaves[place])
            last_seq[tenant] = seq
            copy.write_row(
                (
                    states[tenant][0],
                    index,
                    seq,
                    batch.sources[place],
                    batch.ids[place],
                    batch.customers[place],
                    batch.times[place],
                    batch.leaves[place],
                    batch.entries[place],
                    batch.disclosures[place],
                )
            )
    logs: dict[str, LogHead] = {}
    for tenant, (number, size_before, frontier) in states.items():
        size = next_index[tenant]
        if size != size_before:
            frontier = moved_frontier(tenant, frontier, leaves[tenant], size)
            connection.execute(
                "UPDATE ledger_logs SET size = %s, frontier = %s WHERE number = %s",
                (size, frontier.to_bytes(), number),
            )
            logs[tenant] = LogHead(size, last_seq[tenant])
        else:  # only duplicates of it in this batch
            logs[tenant] = LogHead(size, _seq_at(connection, number, size - 1))
    return AppendReceipt(count, batch.events_count - count, logs)


def _new_places(
    connection: psycopg.Connection[Any],
    batch: _Batch,
    states: dict[str, tuple[int, int, MerkleFrontier]],
) -> list[int]:
    """The batch's places whose key is not stored yet; ConflictError for one stored otherwise."""
    looked_up = [place for place, tenant in enumerate(batch.tenants) if states[tenant][1] > 0]
    stored: dict[int, bytes] = {}
    if looked_up:
        rows = connection.execute(
            _STORED_BY_KEY,
            (
                [states[batch.tenants[place]][0] for place in looked_up],
                [batch.sources[place] for place in looked_up],
                [batch.ids[place] for place in looked_up],
                looked_up,
            ),
        )
        stored = {int(place): bytes(entry) for place, entry in rows}
    for place, entry in stored.items():
        if entry != batch.entries[place]:
            raise ConflictError(
                batch.tenants[place],
                batch.sources[place],
                batch.ids[place],
                leaf_hash(entry).hex(),
                batch.leaves[place].hex(),
            )
    return [place for place in range(len(batch.entries)) if place not in stored]


def _log_state_for_append(
    connection: psycopg.Connection[Any], tenant: str
) -> tuple[int, int, MerkleFrontier]:
    """(number, size, frontier) of the tenant's log, creating it if the tenant is new."""
    row = connection.execute(
        "SELECT number, size, frontier FROM ledger_logs WHERE tenant = %s", (tenant,)
    ).fetchone()
    if row is None:
        frontier = MerkleFrontier()
        row = connection.execute(
            "INSERT INTO ledger_logs (tenant, size, frontier) VALUES (%s, 0, %s)"
            " RETURNING number, size, frontier",
            (tenant, frontier.to_bytes()),
        ).fetchone()
        assert row is not None
    return frontier_checked(tenant, row)


def _seq_at(connection: psycopg.Connection[Any], number: int, index: int) -> int:
    row = connection.execute(
        "SELECT seq FROM ledger_events WHERE tenant_number = %s AND log_index = %s",
        (number, index),
    ).fetchone()
    return 0 if row is None else int(row[0])


def _read_leaves(
    connection: psycopg.Connection[Any], tenant: str, start: int, end: int
) -> list[bytes]:
    """The stored leaf hashes of log indexes [start, end); StoreError if any is missing."""
    if start >= end:
        return []
    rows = connection.execute(
        "SELECT log_index, leaf_hash FROM ledger_events"
        " WHERE tenant_number = (SELECT number FROM ledger_logs WHERE tenant = %s)"
        " AND log_index >= %s AND log_index < %s ORDER BY log_index",
        (tenant, start, end),
    ).fetchall()
    if len(rows) != end - start or (rows and int(rows[-1][0]) != end - 1):
        raise StoreError(
            f"the leaf hashes of tenant {tenant!r} between indexes {start} and {end} are "
            "incomplete; run `raas ledger check`"
        )
    return [bytes(row[1]) for row in rows]


def _stream_rows(reader: psycopg.Connection[Any], query: str, parameters: _Row) -> Iterator[_Row]:
    """A query's rows through a server-side cursor, a few thousand at a time."""
    with reader.cursor(name="raas_stream") as cursor:
        cursor.itersize = STREAM_ROWS
        cursor.execute(query, parameters)
        yield from cursor


def _stored(tenant: str, row: _Row) -> StoredEvent:
    """A StoredEvent from (log_index, seq, entry, disclosures); the leaf hash from the entry."""
    entry = bytes(row[2])
    return StoredEvent(int(row[1]), tenant, int(row[0]), leaf_hash(entry), entry, bytes(row[3]))


def _log_state(connection: psycopg.Connection[Any], tenant: str) -> tuple[int, MerkleFrontier]:
    return log_state(connection, _LOG_STATE, tenant)


def _check(reader: psycopg.Connection[Any], verifiers: Sequence[VerifierKey]) -> LedgerCheck:
    """Everything `PostgresLedger.check` compares, on one snapshot; stops at the first problem."""
    meta = reader.execute("SELECT commitment_key, max_seq FROM ledger_meta").fetchone()
    assert meta is not None
    commitment_key, max_seq = bytes(meta[0]), int(meta[1])
    logs = reader.execute(
        "SELECT tenant, number, size, frontier FROM ledger_logs ORDER BY tenant"
    ).fetchall()
    return check_logs(
        reader,
        logs,
        max_seq,
        functools.partial(_check_log, commitment_key=commitment_key, verifiers=verifiers),
        "SELECT count(*) FROM ledger_events",
    )


def _check_log(
    reader: psycopg.Connection[Any],
    tenant: str,
    number: int,
    size: int,
    stored_frontier: bytes,
    seqs_seen: bytearray,
    counts: dict[str, int],
    *,
    commitment_key: bytes,
    verifiers: Sequence[VerifierKey],
) -> None:
    checkpoints = reader.execute(
        "SELECT origin, size, root, note FROM ledger_checkpoints WHERE tenant = %s ORDER BY number",
        (tenant,),
    )
    walk = LogWalk(tenant, size, checkpoints, verifiers, seqs_seen, counts)
    for row in _stream_rows(
        reader,
        "SELECT log_index, seq, source, id, customer, time_us, leaf_hash, entry, disclosures"
        " FROM ledger_events WHERE tenant_number = %s ORDER BY log_index",
        (number,),
    ):
        index, seq = int(row[0]), int(row[1])
        walk.index(index, seq)
        walk.seq(index, seq)
        leaf = walk.leaf(bytes(row[7]), bytes(row[6]), index, seq)
        what = _check_entry(tenant, row, commitment_key)
        if what is not None:
            raise walk.fail(what, index, seq)
        walk.add(leaf)
    walk.all_stored()
    walk.frontier_is(stored_frontier)


def _check_entry(tenant: str, row: _Row, commitment_key: bytes) -> str | None:
    """What is wrong with one stored row (..., source, id, customer, time_us, _, entry,
    disclosures), or None."""
    source, event_id, customer, time = str(row[2]), str(row[3]), str(row[4]), int(row[5])
    entry, disclosures = bytes(row[7]), bytes(row[8])
    event = revealed(tenant, entry, disclosures)
    if isinstance(event, str):
        return event
    if (event.source, event.id) != (source, event_id):
        return (
            f"the row is keyed as event {event_id!r} from {source!r}, but its entry is event "
            f"{event.id!r} from {event.source!r}"
        )
    if customer != event.customer:
        return f"the entry is customer {event.customer!r}'s but its row says {customer!r}"
    if (event.time - EPOCH) // ONE_MICROSECOND != time:
        return f"the row places the entry at another time ({time} us since the epoch)"
    return remade_problem(event, entry, disclosures, commitment_key)

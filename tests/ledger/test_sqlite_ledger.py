"""What only the SQLite ledger does: its file and rows, a refused batch leaving the file byte for
byte as it was, the fast path for new events, bodies parsed in another process, and its own
failures. What every store promises (SQLite and PostgreSQL alike) is in test_store_contract.py.

What would break: a conflict or a lying logs table leaving half a batch in the file, rows
without the key, time or customer the queries read, an entry that differs from `event_entry`
under the ledger's commitment key, or driver errors leaking out.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raas.core.canonical import leaf_hash
from raas.core.events import (
    Csat,
    Event,
    Message,
    event_entry,
    make_event,
)
from raas.errors import BatchRejected, ConflictError, EventError, StoreError
from raas.ingest import parse_batch
from raas.ledger import LedgerStore, SqliteLedger, StoredEvent
from raas.ledger.sqlite import SCHEMA_VERSION
from raas.ledger.store import AppendReceipt, time_microseconds

START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
SOURCE = "urn:raas:test:agents"


def event(
    number: int,
    *,
    tenant: str = "acme",
    customer: str = "customer-1",
    source: str = SOURCE,
    seconds: float | None = None,
    data: Any = None,
) -> Event:
    return make_event(
        data if data is not None else Csat(score=1 + number % 5),
        id=f"event-{number}",
        source=source,
        time=START + timedelta(seconds=number if seconds is None else seconds),
        tenant=tenant,
        customer=customer,
        conversation=f"conversation-{number // 3}",
        intent="refund" if number % 2 else None,
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.db") as opened:
        yield opened


def dump(path: Path) -> list[str]:
    """Every row of every table as SQL text (blobs in hex): the stored data, byte for byte."""
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def rows(store: LedgerStore, tenant: str) -> list[StoredEvent]:
    return list(store.iter_events(tenant))


def commitment_key(path: Path) -> bytes:
    """The ledger's secret salt key, read straight from its file (tests only)."""
    connection = sqlite3.connect(path)
    try:
        key = connection.execute("SELECT value FROM meta WHERE name = 'commitment_key'").fetchone()
    finally:
        connection.close()
    return bytes(key[0])


# -- appending ---------------------------------------------------------------------------------


def test_append_stores_canonical_entries_with_their_leaf_hashes(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    events = [event(number) for number in range(5)]
    key = commitment_key(tmp_path / "ledger.db")

    receipt = ledger.append(events)

    assert (receipt.stored, receipt.duplicates) == (5, 0)
    assert receipt.logs["acme"].size == 5
    assert receipt.logs["acme"].last_seq == 5
    stored = rows(ledger, "acme")
    assert [row.seq for row in stored] == [1, 2, 3, 4, 5]
    assert [row.log_index for row in stored] == [0, 1, 2, 3, 4]
    for row, original in zip(stored, events, strict=True):
        assert row.entry == event_entry(original, key)
        assert row.leaf_hash == leaf_hash(row.entry)
        assert row.event == original
        assert row.tenant == "acme"


def test_rows_hold_the_key_the_time_and_the_customer_for_queries(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    moment = datetime(2026, 11, 2, 11, 30, 0, 120_000, tzinfo=timezone(timedelta(hours=2)))
    original = make_event(
        Message(role="ai", text="hi"),
        id="m-1",
        source=SOURCE,
        time=moment,
        tenant="acme",
        customer="c-9",
        conversation="v-3",
        intent="billing",
    )
    with SqliteLedger(path) as ledger:
        ledger.append([event(0, tenant="globex"), original])
    connection = sqlite3.connect(path)
    row = connection.execute(
        "SELECT position, seq, key_hash FROM events ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    customers = connection.execute(
        "SELECT tenant_number, customer, first_log_index, places FROM customer_entries"
        " ORDER BY tenant_number"
    ).fetchall()
    connection.close()
    # acme is the second tenant the ledger met: number 2, its log starts at 2 << 40.
    assert row[:2] == (2 << 40, 2)
    key = json.dumps(["acme", SOURCE, "m-1"], separators=(",", ":")).encode()
    assert row[2] == int.from_bytes(hashlib.sha256(key).digest()[:8], "big", signed=True)
    # A customer row places each event: its log index, then its time in microseconds.
    assert time_microseconds(moment) == 1_793_611_800_120_000  # 2026-11-02T09:30:00.12Z
    assert customers == [
        (1, "customer-1", 0, (0).to_bytes(8, "big") + time_microseconds(START).to_bytes(8, "big")),
        (2, "c-9", 0, (0).to_bytes(8, "big") + (1_793_611_800_120_000).to_bytes(8, "big")),
    ]


def test_the_same_batch_twice_is_a_no_op(ledger: SqliteLedger, tmp_path: Path) -> None:
    events = [event(number) for number in range(4)]
    ledger.append(events)
    before = dump(tmp_path / "ledger.db")

    receipt = ledger.append(events)

    assert (receipt.stored, receipt.duplicates) == (0, 4)
    assert receipt.logs["acme"].size == 4
    assert receipt.logs["acme"].last_seq == 4
    assert dump(tmp_path / "ledger.db") == before


def test_a_reused_id_with_other_content_rolls_back_the_whole_batch(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    key = commitment_key(tmp_path / "ledger.db")
    ledger.append([event(0), event(1)])
    before = dump(tmp_path / "ledger.db")
    changed = event(1, data=Csat(score=5 if event(1).data.score != 5 else 4))

    with pytest.raises(ConflictError) as conflict:
        ledger.append([event(2), changed, event(3)])

    error = conflict.value
    assert (error.tenant, error.source, error.event_id) == ("acme", SOURCE, "event-1")
    assert error.stored_hash == leaf_hash(event_entry(event(1), key)).hex()
    assert error.new_hash == leaf_hash(event_entry(changed, key)).hex()
    assert dump(tmp_path / "ledger.db") == before
    assert (ledger.head("acme"), ledger.max_seq()) == (2, 2)
    # The refused batch left no hole: the next one continues the log densely.
    ledger.append([event(2), event(3)])
    assert [row.log_index for row in rows(ledger, "acme")] == [0, 1, 2, 3]
    assert [row.seq for row in rows(ledger, "acme")] == [1, 2, 3, 4]


def test_a_reused_id_inside_one_batch_is_refused_before_anything_is_written(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    ledger.append([event(0)])
    before = dump(tmp_path / "ledger.db")

    with pytest.raises(ConflictError, match="event-5"):
        ledger.append([event(5), event(6), event(5, data=Csat(score=5)), event(7)])

    assert dump(tmp_path / "ledger.db") == before


def test_only_batches_with_stored_keys_take_the_looked_up_path(
    ledger: SqliteLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Looking every stored key's entry up is correct for every batch but slower: a batch of new
    # events must not take that way; the key index in memory tells which batches hold retries.
    import raas.ledger.sqlite as sqlite_module

    looked_up = []
    real = sqlite_module._append_looked_up
    monkeypatch.setattr(
        sqlite_module, "_append_looked_up", lambda *a: looked_up.append(1) or real(*a)
    )
    ledger.append([event(0), event(1, tenant="globex")])
    ledger.append([event(2), event(3, tenant="globex")])
    ledger.append([event(4), event(4)])  # a repeat inside one batch is no retry
    ledger.append([event(5), event(6, tenant="globex")])
    assert looked_up == []
    receipt = ledger.append([event(3, tenant="globex"), event(7)])
    assert (receipt.stored, receipt.duplicates) == (1, 1)
    assert looked_up == [1]
    ledger.append([event(8)])
    assert looked_up == [1]


def test_bodies_parsed_in_another_process_are_stored_as_parsed_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spill))  # where append_parsed's files go
    bodies = [
        msgspec.json.encode(
            [
                event(n, tenant=("acme", "globex")[n % 2], data=Message(role="ai", text=f"t{n}")),
                event(n + 1000),
            ]
        )
        for n in range(12)
    ]
    bad = b'[{"id": "broken", "time": "yesterday"}]'
    received = []
    with SqliteLedger(tmp_path / "here.db") as here, SqliteLedger(tmp_path / "there.db") as there:
        expected = list(here.append_parsed(bodies, parse_batch, processes=0))
        with pytest.raises(BatchRejected, match="broken") as rejected:
            for receipt in there.append_parsed([*bodies, bad, bodies[0]], parse_batch):
                received.append(receipt)
        # The error crossed back from the worker whole, the events it names included.
        assert [error.event_id for error in rejected.value.errors] == ["broken"]
        assert received == expected
        key = commitment_key(tmp_path / "there.db")
        for tenant in ("acme", "globex"):
            stored = rows(there, tenant)
            assert [row.reveal() for row in stored] == [row.reveal() for row in rows(here, tenant)]
            # Entries made in the worker used this ledger's own commitment key.
            assert [row.entry for row in stored] == [
                event_entry(row.reveal(), key) for row in stored
            ]
        assert there.check().problem is None
        # The bodies and batches that crossed as files are gone, after a failure too.
        assert list(spill.iterdir()) == []


def test_bodies_are_read_ahead_only_as_far_as_the_workers_take_them(tmp_path: Path) -> None:
    taken = []

    def bodies() -> Iterator[bytes]:
        for n in range(20):
            taken.append(n)
            yield msgspec.json.encode([event(n)])

    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        receipts = ledger.append_parsed(bodies(), parse_batch, processes=1)
        next(receipts)
        # Two handed out at the start (one in the worker, one waiting for it), then one more
        # as each batch is taken: the first, and the second while the first commits. Not the
        # whole input.
        assert len(taken) == 4
        assert sum(receipt.stored for receipt in receipts) == 19
    assert len(taken) == 20


def test_bodies_appended_one_by_one_from_threads_through_worker_processes(tmp_path: Path) -> None:
    # What raas serve does: each request thread hands its body to the ledger's preparers and
    # waits for its own receipt; concurrent batches are stored whole, each once.
    bodies = [msgspec.json.encode([event(n * 10 + k) for k in range(10)]) for n in range(24)]
    conflicting = msgspec.json.encode([event(3), event(3, data=Csat(score=5), seconds=99)])
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        ledger.start_preparers(2)
        with ThreadPoolExecutor(4) as senders:
            receipts = list(senders.map(lambda body: ledger.append_body(body, parse_batch), bodies))
        assert [receipt.stored for receipt in receipts] == [10] * 24
        assert ledger.head("acme") == 240
        # Again: every event is a duplicate now, and nothing more is stored.
        again = ledger.append_body(bodies[5], parse_batch)
        assert (again.stored, again.duplicates) == (0, 10)
        with pytest.raises(BatchRejected, match="broken") as rejected:
            ledger.append_body(b'[{"id": "broken", "time": "yesterday"}]', parse_batch)
        assert [error.event_id for error in rejected.value.errors] == ["broken"]
        with pytest.raises(ConflictError):  # one key, two contents, inside one batch
            ledger.append_body(conflicting, parse_batch)
        assert ledger.append_body(b"[]", parse_batch).stored == 0
        # A worker killed from outside: the body in hand is parsed here, later ones by new ones.
        for worker in list(multiprocessing.active_children()):
            if worker.name.startswith("SpawnProcess"):
                os.kill(worker.pid or 0, signal.SIGKILL)
        late = [msgspec.json.encode([event(1000 + n)]) for n in range(3)]
        assert [ledger.append_body(body, parse_batch).stored for body in late] == [1, 1, 1]
        assert ledger.head("acme") == 243
        key = commitment_key(tmp_path / "ledger.db")
        stored = rows(ledger, "acme")
        assert [row.entry for row in stored] == [event_entry(row.reveal(), key) for row in stored]
        assert ledger.check().problem is None
    assert not [child for child in multiprocessing.active_children() if child.is_alive()]


def test_batches_that_wait_for_the_writer_are_committed_together_failing_alone(
    tmp_path: Path,
) -> None:
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        ledger.append([event(0)])
        statements: list[str] = []
        assert ledger._connection is not None
        ledger._connection.set_trace_callback(statements.append)
        batches = [
            [event(1), event(2)],
            [event(2), event(3)],  # event 2 again: a duplicate of the batch before
            [event(4), event(0, data=Csat(score=5))],  # event 0 with other content: a conflict
            [event(5)],
        ]
        outcomes: dict[int, AppendReceipt | BaseException] = {}

        def send(number: int) -> None:
            try:
                outcomes[number] = ledger.append(batches[number])
            except ConflictError as error:
                outcomes[number] = error

        threads = [threading.Thread(target=send, args=(number,)) for number in range(4)]
        with ledger._lock:  # a write in progress: each batch comes and waits, in this order
            for number, thread in enumerate(threads):
                thread.start()
                while len(ledger._waiting) <= number:
                    time.sleep(0.001)
        for thread in threads:
            thread.join()

        assert statements.count("COMMIT") == 1
        assert isinstance(outcomes.pop(2), ConflictError)
        assert {
            number: (outcome.stored, outcome.duplicates, outcome.logs["acme"].size)
            for number, outcome in outcomes.items()
            if isinstance(outcome, AppendReceipt)
        } == {0: (2, 0, 3), 1: (1, 1, 4), 3: (1, 0, 5)}
        stored = [row.event.id for row in rows(ledger, "acme")]
        assert stored == [f"event-{n}" for n in (0, 1, 2, 3, 5)]
        assert ledger.check().problem is None


def test_commits_reach_the_database_file_by_the_ledgers_own_checkpoints(tmp_path: Path) -> None:
    # The writer leaves the WAL to a thread of the ledger (it checkpoints itself only past
    # 1 GiB): what is committed must still arrive in the database file, without a close.
    path = tmp_path / "ledger.db"

    def in_the_file() -> int:
        # immutable: read the database file alone, as if there were no WAL
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
        try:
            return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.OperationalError:  # not even the schema copied yet
            return 0
        finally:
            connection.close()

    with SqliteLedger(path) as ledger:
        ledger.append([event(n) for n in range(50)])
        deadline = time.monotonic() + 20
        while in_the_file() < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert in_the_file() == 50
        ledger.append([event(n) for n in range(50, 80)])
        assert ledger.count("acme") == 80  # the WAL still serves what is not yet copied
    assert in_the_file() == 80
    assert not [thread for thread in threading.enumerate() if thread.name == "raas-wal-checkpoint"]


# -- failures ----------------------------------------------------------------------------------


def test_driver_errors_become_store_errors(tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(StoreError, match="could not open the ledger"):
        SqliteLedger(not_a_database)
    with pytest.raises(StoreError):
        SqliteLedger(tmp_path / "missing-folder" / "ledger.db")


def test_a_file_from_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteLedger(path)


# Schema version 2 keyed invoices by id alone, as this DDL did.
_VERSION_2_INVOICES = """
CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID
"""
_VERSION_2_ROWS = [
    ("standard-support-v1-2026-10", "acme", b'{"total": "1.00"}'),
    ("standard-support-v1-2026-11", "acme", b'{"total": "2.00"}'),
    ("other-v1-2026-11", "globex", b"{}"),
]


def version_3_file(path: Path, events: list[Event]) -> None:
    """A ledger file as schema version 3 left it: a unique index on the key hashes, no key
    blocks."""
    with SqliteLedger(path) as made:
        made.append(events)
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("DROP TABLE key_blocks")
        connection.execute("CREATE UNIQUE INDEX events_by_key ON events (key_hash)")
        connection.execute("PRAGMA user_version = 3")
    finally:
        connection.close()


def version_2_file(path: Path, *, also: str = "") -> None:
    """A ledger file as schema version 2 left it: events, and invoices keyed by id alone.
    `also` is SQL run on it afterwards."""
    version_3_file(path, [event(n, tenant=("acme", "globex")[n % 2]) for n in range(6)])
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("DROP TABLE invoices")
        connection.execute(_VERSION_2_INVOICES)
        connection.executemany("INSERT INTO invoices VALUES (?, ?, ?)", _VERSION_2_ROWS)
        connection.execute("PRAGMA user_version = 2")
        if also:
            connection.execute(also)
    finally:
        connection.close()


def invoice_table(path: Path) -> tuple[int, list[tuple[str, int]], list[tuple[Any, ...]]]:
    """The file's schema version, the invoices table's key columns (name, place in the key)
    and its rows."""
    connection = sqlite3.connect(path)
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        key = [
            (str(row[1]), int(row[5]))
            for row in connection.execute("PRAGMA table_info(invoices)")
            if row[5]
        ]
        stored = connection.execute("SELECT id, tenant, body FROM invoices ORDER BY id").fetchall()
    finally:
        connection.close()
    return version, sorted(key, key=lambda column: column[1]), stored


def test_a_version_2_file_is_migrated_in_place_and_keeps_its_invoices(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    version_2_file(path)

    with SqliteLedger(path) as opened:
        assert [opened.head(tenant) for tenant in ("acme", "globex")] == [3, 3]
        for invoice_id, tenant, body in _VERSION_2_ROWS:
            assert opened.get_invoice(tenant, invoice_id) == body
        assert opened.list_invoices("acme") == [row[0] for row in _VERSION_2_ROWS[:2]]
        # What version 2 refused: another buyer's invoice under the same id.
        opened.store_invoice("standard-support-v1-2026-11", "globex", b'{"total": "5.00"}')
        assert opened.get_invoice("globex", "standard-support-v1-2026-11") == b'{"total": "5.00"}'
        assert opened.get_invoice("acme", "standard-support-v1-2026-11") == b'{"total": "2.00"}'

    version, key, stored = invoice_table(path)
    assert (version, key) == (SCHEMA_VERSION, [("tenant", 1), ("id", 2)])
    assert sorted(stored) == sorted(
        [*_VERSION_2_ROWS, ("standard-support-v1-2026-11", "globex", b'{"total": "5.00"}')]
    )
    with SqliteLedger(path) as again:  # opening a migrated file changes nothing
        assert again.list_invoices("globex") == ["other-v1-2026-11", "standard-support-v1-2026-11"]
    assert invoice_table(path)[2] == stored


def test_a_version_3_file_gets_its_key_blocks_and_still_knows_every_key(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    # Over a block of pairs, so that the blocks written hold a full one and a partial one.
    events = [event(n, tenant=("acme", "globex")[n % 2]) for n in range(5_000)]
    version_3_file(path, events)

    with SqliteLedger(path) as opened:
        assert opened.check().problem is None
        found = opened.get("globex", SOURCE, events[4_321].id)
        assert found is not None and found.event == events[4_321]
        receipt = opened.append([*events[::97], event(5_000)])
        assert (receipt.stored, receipt.duplicates) == (1, len(events[::97]))
        with pytest.raises(ConflictError):
            opened.append([event(7, tenant="globex", data=Csat(score=1))])
        assert opened.check().problem is None
    connection = sqlite3.connect(path)
    try:
        indexes = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        ).fetchall()
        version = connection.execute("PRAGMA user_version").fetchone()[0]
    finally:
        connection.close()
    assert (version, indexes) == (SCHEMA_VERSION, [])


def test_keys_another_ledger_object_stored_are_known_to_this_one(tmp_path: Path) -> None:
    # Two writers on one file (as two processes would be): each reads the other's key pairs
    # before it writes, so a retry through the other one is still a duplicate.
    path = tmp_path / "ledger.db"
    with SqliteLedger(path) as first, SqliteLedger(path) as second:
        first.append([event(n) for n in range(3)])
        assert second.append([event(1), event(3)]).duplicates == 1
        assert first.append([event(3), event(4)]).duplicates == 1
        with pytest.raises(ConflictError):
            second.append([event(4, data=Csat(score=2))])
        assert second.get("acme", SOURCE, event(4).id) is not None
        assert first.check().problem is None


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=12),
        min_size=1,
        max_size=12,
    ),
    reopen_after=st.integers(min_value=0, max_value=12),
)
def test_the_key_index_counts_every_retry_across_merges_and_reopening(
    batches: list[list[int]], reopen_after: int
) -> None:
    # Merged every few pairs (instead of every 2^17), and read in bulk when the file is opened
    # again: every path the index takes must count a retry as a duplicate and a new key as new.
    import raas.ledger.key_index as key_index_module

    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(key_index_module, "_MERGE_PAIRS_MIN", 4)
        path = Path(folder) / "ledger.db"
        seen: set[int] = set()
        ledger = SqliteLedger(path)
        try:
            for number, batch in enumerate(batches):
                if number == reopen_after:
                    ledger.close()
                    ledger = SqliteLedger(path)
                new = set(batch) - seen
                receipt = ledger.append([event(n, tenant=("acme", "globex")[n % 2]) for n in batch])
                assert (receipt.stored, receipt.duplicates) == (len(new), len(batch) - len(new))
                seen |= new
            for n in seen:
                assert ledger.get(("acme", "globex")[n % 2], SOURCE, event(n).id) is not None
            assert ledger.get("acme", SOURCE, "never-sent") is None
            assert ledger.check().problem is None
        finally:
            ledger.close()


def test_a_batch_rolled_back_in_a_group_leaves_no_key_behind(
    ledger: SqliteLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The in-memory index holds what the open transaction staged; a batch rolled back to its
    # savepoint, and a whole transaction rolled back, must take their keys out again, or a
    # later append of the same events would count them as stored.
    import raas.ledger.sqlite as sqlite_module

    ledger.append([event(0)])
    real_leaves = sqlite_module._append_leaves
    failing = {"count": 1}

    def leaves_failing_once(*arguments: Any) -> None:
        real_leaves(*arguments)
        if failing["count"]:
            failing["count"] -= 1
            raise StoreError("the disk is full (for the test)")

    monkeypatch.setattr(sqlite_module, "_append_leaves", leaves_failing_once)
    with pytest.raises(StoreError, match="for the test"):
        ledger.append([event(1), event(2)])
    receipt = ledger.append([event(1), event(2)])
    assert (receipt.stored, receipt.duplicates) == (2, 0)
    assert ledger.check().problem is None


def invoice_ids_plan(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM invoices WHERE tenant = ? ORDER BY id", ("acme",)
        ).fetchall()
    finally:
        connection.close()
    return " ".join(str(row[3]) for row in rows)


def test_invoice_ids_are_listed_from_an_index_not_the_bodies(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path) as made:
        made.store_invoice("standard-support-v1-2026-11", "acme", b"{" + b" " * 100_000 + b"}")
    assert "COVERING INDEX invoices_ids" in invoice_ids_plan(path)
    # A file made before the index: the first open adds it; the ids read are the same.
    connection = sqlite3.connect(path)
    connection.execute("DROP INDEX invoices_ids")
    connection.close()
    assert "COVERING INDEX" not in invoice_ids_plan(path)
    with SqliteLedger(path) as opened:
        assert opened.list_invoices("acme") == ["standard-support-v1-2026-11"]
    assert "COVERING INDEX invoices_ids" in invoice_ids_plan(path)
    assert invoice_table(path)[0] == SCHEMA_VERSION


def test_a_migration_that_fails_leaves_the_version_2_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    # The migration's own table name, taken: its first statement fails.
    version_2_file(path, also="CREATE TABLE invoices_by_tenant (x)")
    before = dump(path)

    with pytest.raises(StoreError, match="invoices_by_tenant"):
        SqliteLedger(path)

    assert dump(path) == before
    version, key, stored = invoice_table(path)
    assert (version, key, sorted(stored)) == (2, [("id", 1)], sorted(_VERSION_2_ROWS))


def test_a_ledger_whose_logs_table_lies_refuses_to_append(
    ledger: SqliteLedger, tmp_path: Path
) -> None:
    ledger.append([event(0), event(1)])
    connection = sqlite3.connect(tmp_path / "ledger.db")
    connection.execute("UPDATE logs SET size = 1")
    connection.commit()
    connection.close()
    before = dump(tmp_path / "ledger.db")

    with pytest.raises(StoreError):
        ledger.append([event(2)])

    assert dump(tmp_path / "ledger.db") == before


def test_the_store_interface_loads_no_driver() -> None:
    # Code above the ledger imports raas.ledger (or .store) for the interface; sqlite3 must come
    # only with SqliteLedger, so that the core and the engines never pull in a driver.
    probe = (
        "import sys, raas.ingest, raas.ledger, raas.ledger.store; "
        "print('sqlite3' in sys.modules); raas.ledger.SqliteLedger; print('sqlite3' in sys.modules)"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert output == ["False", "True"]


# -- entries -----------------------------------------------------------------------------------


def test_an_event_with_a_naive_time_is_refused(ledger: SqliteLedger) -> None:
    naive = msgspec.structs.replace(event(1), time=datetime(2026, 11, 2, 9, 30))
    with pytest.raises(EventError) as refused:
        ledger.append([event(0), naive])
    assert (refused.value.event_id, refused.value.field) == ("event-1", "time")
    assert ledger.max_seq() == 0

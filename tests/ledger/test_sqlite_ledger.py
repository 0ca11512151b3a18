"""The SQLite ledger stores each event once, in dense per-tenant logs, and reads them back in order.

What would break: a retried batch stored twice, a reused id with other content accepted or half
a batch kept after a conflict, a gap or a repeat in a tenant's log_index, an entry that differs
from `event_entry` under the ledger's commitment key (so leaf hashes and proofs would not match),
reads out of the promised order or past the requested bound, driver errors leaking out, or the
in-memory fake drifting from it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raas.core.canonical import leaf_hash
from raas.core.events import (
    DATA_TYPES,
    BusinessEvent,
    ConversationClosed,
    ConversationStarted,
    Csat,
    CustomerConfirmation,
    DisputeFiled,
    DisputeRuled,
    Event,
    Handoff,
    HoldoutAssignment,
    Message,
    ModelCall,
    Recontact,
    ResolutionClaimed,
    ReviewVerdict,
    ToolCall,
    event_entry,
    make_event,
)
from raas.errors import BatchRejected, ConflictError, EventError, StoreError
from raas.ingest import parse_batch
from raas.ledger import LedgerStore, MemoryLedger, SqliteLedger, StoredEvent
from raas.ledger.store import time_microseconds

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


def test_a_repeat_inside_one_batch_counts_as_a_duplicate(ledger: SqliteLedger) -> None:
    receipt = ledger.append([event(1), event(2), event(1)])

    assert (receipt.stored, receipt.duplicates) == (2, 1)
    assert ledger.count("acme") == 2


def test_a_batch_mixing_new_and_stored_events_stores_only_the_new(ledger: SqliteLedger) -> None:
    ledger.append([event(0), event(1)])
    ledger.append([event(10, tenant="globex")])

    receipt = ledger.append([event(1), event(2), event(0), event(3), event(11, tenant="globex")])

    assert (receipt.stored, receipt.duplicates) == (3, 2)
    assert [row.log_index for row in rows(ledger, "acme")] == [0, 1, 2, 3]
    assert [row.event.id for row in rows(ledger, "acme")] == [
        "event-0",
        "event-1",
        "event-2",
        "event-3",
    ]
    assert receipt.logs == {"acme": receipt.logs["acme"], "globex": receipt.logs["globex"]}
    assert (receipt.logs["acme"].size, receipt.logs["globex"].size) == (4, 2)
    assert receipt.logs["globex"].last_seq == ledger.max_seq()


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


def test_the_key_is_tenant_source_and_id(ledger: SqliteLedger) -> None:
    receipt = ledger.append(
        [
            event(1),
            event(1, tenant="globex"),
            event(1, source="urn:raas:test:other"),
        ]
    )
    assert (receipt.stored, receipt.duplicates) == (3, 0)
    assert ledger.get("acme", "urn:raas:test:other", "event-1") is not None
    assert ledger.get("acme", "urn:raas:test:nowhere", "event-1") is None


def test_each_tenant_has_its_own_dense_log(ledger: SqliteLedger) -> None:
    tenants = ["acme", "globex", "initech"]
    for batch in range(4):
        ledger.append([event(batch * 10 + n, tenant=tenants[n % 3]) for n in range(7)])

    assert ledger.tenants() == tenants
    for tenant in tenants:
        stored = rows(ledger, tenant)
        assert [row.log_index for row in stored] == list(range(len(stored)))
        assert [row.seq for row in stored] == sorted(row.seq for row in stored)
        assert ledger.head(tenant) == ledger.count(tenant) == len(stored)
    assert ledger.max_seq() == 28
    assert ledger.head("nobody") == ledger.count("nobody") == 0


def test_the_ledger_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path) as ledger:
        ledger.append([event(n) for n in range(3)])
    with SqliteLedger(path) as ledger:
        assert ledger.head("acme") == 3
        assert ledger.append([event(2), event(3)]).stored == 1
        assert [row.log_index for row in rows(ledger, "acme")] == [0, 1, 2, 3]


def test_new_events_take_the_fast_path_and_retries_the_looked_up_one(
    ledger: SqliteLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Looking every key up first is correct for every batch but slower: a batch of new events
    # for tenants that already have a log must not take that way, unless the batch before held
    # retries (a retrying sender keeps retrying, and a failed fast insert is paid twice).
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
    ledger.append([event(3, tenant="globex"), event(7)])
    assert looked_up == [1]
    ledger.append([event(8)])
    assert looked_up == [1, 1]
    ledger.append([event(9)])  # the last batch held no retry: back to the fast way
    assert looked_up == [1, 1]


def test_an_empty_batch_stores_nothing(ledger: SqliteLedger) -> None:
    receipt = ledger.append([])
    assert (receipt.stored, receipt.duplicates, receipt.logs) == (0, 0, {})
    assert ledger.max_seq() == 0


def test_concurrent_appends_from_threads_keep_logs_dense(ledger: SqliteLedger) -> None:
    def work(offset: int) -> None:
        for batch in range(10):
            ledger.append([event(offset + batch * 20 + n) for n in range(20)])

    threads = [threading.Thread(target=work, args=(offset,)) for offset in (0, 10_000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = rows(ledger, "acme")
    assert len(stored) == ledger.head("acme") == 400
    assert [row.log_index for row in stored] == list(range(400))
    assert len({row.entry for row in stored}) == 400


def test_appending_a_stream_of_batches_stores_what_appending_each_does(tmp_path: Path) -> None:
    batches = [
        [event(n, tenant=("acme", "globex")[n % 2]) for n in range(start, start + 9)]
        for start in range(0, 90, 9)
    ]
    batches[4] = batches[4] + batches[3][:2]  # a retry inside the stream
    batches.insert(6, [])  # skipped, with no receipt
    with SqliteLedger(tmp_path / "one.db") as one_by_one:
        expected = [one_by_one.append(batch) for batch in batches if batch]
    with SqliteLedger(tmp_path / "stream.db") as streamed:
        receipts = list(streamed.append_batches(iter(batches)))
        assert streamed.append([event(1000)]).stored == 1  # the write lock was let go
    assert receipts == expected
    with (
        SqliteLedger(tmp_path / "one.db") as one_by_one,
        SqliteLedger(tmp_path / "stream.db") as streamed,
    ):
        for tenant in ("acme", "globex"):
            assert rows(streamed, tenant)[: one_by_one.head(tenant)] == rows(one_by_one, tenant)
            assert streamed.root(tenant, one_by_one.head(tenant)) == one_by_one.root(tenant)
        assert streamed.check().problem is None


def test_a_failing_batch_in_a_stream_keeps_the_batches_before_it(tmp_path: Path) -> None:
    changed = event(3, data=Csat(score=5 if event(3).data.score != 5 else 4))
    batches = [[event(0), event(1)], [event(2), event(3)], [event(4), changed], [event(5)]]
    received = []
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        with pytest.raises(ConflictError, match="event-3"):
            for receipt in ledger.append_batches(batches):
                received.append(receipt)
        assert [receipt.stored for receipt in received] == [2, 2]
        assert [row.event.id for row in rows(ledger, "acme")] == [f"event-{n}" for n in range(4)]
        assert ledger.append([event(4)]).stored == 1
        assert ledger.check().problem is None


def test_bodies_parsed_in_another_process_are_stored_as_parsed_here(tmp_path: Path) -> None:
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


# -- reading -----------------------------------------------------------------------------------


def test_customers_come_sorted_and_each_ones_events_by_time_source_and_id(
    ledger: SqliteLedger,
) -> None:
    # Appended out of order, with ties in time broken by source and then id.
    ledger.append(
        [
            event(3, customer="customer-b", seconds=50),
            event(1, customer="customer-a", seconds=90),
            event(2, customer="customer-a", seconds=10, source="urn:b"),
            event(4, customer="customer-a", seconds=10, source="urn:a"),
            event(6, customer="customer-a", seconds=10, source="urn:a"),
            event(5, customer="customer-a", seconds=10, source="urn:a"),
            event(7, customer="customer-a", seconds=-1_000_000),
        ]
    )

    grouped = [
        (customer, [(row.event.source, row.event.id) for row in stored])
        for customer, stored in ledger.iter_customers("acme")
    ]

    assert grouped == [
        (
            "customer-a",
            [
                (SOURCE, "event-7"),
                ("urn:a", "event-4"),
                ("urn:a", "event-5"),
                ("urn:a", "event-6"),
                ("urn:b", "event-2"),
                (SOURCE, "event-1"),
            ],
        ),
        ("customer-b", [(SOURCE, "event-3")]),
    ]


def test_reads_stop_at_the_seq_or_size_asked_for(ledger: SqliteLedger) -> None:
    ledger.append([event(n, tenant="acme", customer=f"c-{n % 2}") for n in range(4)])
    ledger.append([event(n, tenant="globex") for n in range(3)])
    ledger.append([event(n, tenant="acme", customer=f"c-{n % 2}") for n in range(4, 8)])

    def ids(read: Iterator[tuple[str, list[StoredEvent]]]) -> list[str]:
        return sorted(row.event.id for _, stored in read for row in stored)

    assert ids(ledger.iter_customers("acme", upto_seq=7)) == [f"event-{n}" for n in range(4)]
    assert ids(ledger.iter_customers("acme", upto_size=5)) == [f"event-{n}" for n in range(5)]
    assert ids(ledger.iter_customers("acme", upto_seq=9, upto_size=7)) == [
        f"event-{n}" for n in range(6)
    ]
    assert [row.log_index for row in ledger.iter_events("acme", upto_size=3)] == [0, 1, 2]
    assert [row.seq for row in ledger.iter_events("acme", upto_seq=8)] == [1, 2, 3, 4, 8]
    assert list(ledger.iter_customers("acme", upto_seq=0)) == []


def test_a_stream_sees_one_snapshot_while_appends_go_on(ledger: SqliteLedger) -> None:
    ledger.append([event(n, customer=f"c-{n}") for n in range(3)])
    stream = ledger.iter_customers("acme")
    first_customer, _ = next(stream)

    ledger.append([event(n, customer=f"c-{n}") for n in range(3, 6)])

    rest = [customer for customer, _ in stream]
    assert [first_customer, *rest] == ["c-0", "c-1", "c-2"]
    assert [customer for customer, _ in ledger.iter_customers("acme")] == [
        f"c-{n}" for n in range(6)
    ]


def test_get_returns_the_stored_event(ledger: SqliteLedger) -> None:
    ledger.append([event(0), event(1, tenant="globex")])
    found = ledger.get("globex", SOURCE, "event-1")
    assert found is not None
    assert (found.seq, found.tenant, found.log_index) == (2, "globex", 0)
    assert found.event == event(1, tenant="globex")
    assert ledger.get("acme", SOURCE, "event-1") is None


# -- failures ----------------------------------------------------------------------------------


def test_driver_errors_become_store_errors(tmp_path: Path) -> None:
    not_a_database = tmp_path / "notes.db"
    not_a_database.write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(StoreError, match="could not open the ledger"):
        SqliteLedger(not_a_database)
    with pytest.raises(StoreError):
        SqliteLedger(tmp_path / "missing-folder" / "ledger.db")


def test_a_closed_ledger_says_so(tmp_path: Path) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db")
    ledger.close()
    ledger.close()  # closing twice is harmless
    with pytest.raises(StoreError, match="closed"):
        ledger.append([event(0)])
    with pytest.raises(StoreError, match="closed"):
        ledger.head("acme")
    with pytest.raises(StoreError, match="closed"):
        list(ledger.iter_events("acme"))


def test_a_file_from_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteLedger(path)


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


texts = st.text(min_size=1, max_size=12)
datas = st.one_of(
    st.builds(Csat, score=st.integers(1, 5)),
    st.builds(Message, role=st.sampled_from(["customer", "ai"]), text=st.text(max_size=30)),
    st.builds(Handoff, context_passed=st.booleans(), reason=st.none() | texts),
    st.builds(
        ModelCall,
        tier=texts,
        model=texts,
        input_tokens=st.integers(0, 2**40),
        output_tokens=st.integers(0, 10**6),
        latency_ms=st.integers(0, 10**6),
        cost=st.decimals(min_value=0, max_value=10**4, places=8),
    ),
)
moments = st.datetimes(
    min_value=datetime(1, 1, 1),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=45))]),
) | st.builds(
    lambda seconds, milliseconds: START + timedelta(seconds=seconds, milliseconds=milliseconds),
    st.integers(-(10**8), 10**8),
    st.integers(0, 999),
)


# -- the batching property ---------------------------------------------------------------------

distinct_events = st.lists(
    st.builds(
        lambda tenant, source, number, customer, seconds, data: make_event(
            data,
            id=f"event-{number}",
            source=source,
            time=START + timedelta(milliseconds=seconds),
            tenant=tenant,
            customer=customer,
            conversation="conversation-1",
        ),
        st.sampled_from(["acme", "globex", "initech"]),
        st.sampled_from(["urn:a", "urn:b"]),
        st.integers(0, 30),
        st.sampled_from(["c-1", "c-2", "c-3"]),
        st.integers(0, 5_000),
        datas,
    ),
    max_size=25,
    unique_by=lambda e: (e.tenant, e.source, e.id),
)


@settings(max_examples=60, deadline=None)
@given(events=distinct_events, plan=st.data())
def test_any_batching_with_retries_in_any_order_stores_the_same_set(
    events: list[Event], plan: st.DataObject
) -> None:
    retries = plan.draw(st.lists(st.sampled_from(events))) if events else []
    deliveries = plan.draw(st.permutations(events + retries))
    cuts = sorted(plan.draw(st.lists(st.integers(0, len(deliveries)), max_size=6)))
    bounds = zip([0, *cuts], [*cuts, len(deliveries)], strict=True)
    batches = [deliveries[start:end] for start, end in bounds]

    with tempfile.TemporaryDirectory() as folder, SqliteLedger(Path(folder) / "l.db") as ledger:
        key = commitment_key(Path(folder) / "l.db")
        memory = MemoryLedger(commitment_key=key)
        for batch in batches:
            receipt = ledger.append(batch)
            assert receipt == memory.append(batch)
            assert receipt.stored + receipt.duplicates == len(batch)
        expected = {(e.tenant, e.source, e.id, leaf_hash(event_entry(e, key))) for e in events}
        tenants = sorted({e.tenant for e in events})
        assert ledger.tenants() == memory.tenants() == tenants
        found: set[tuple[str, str, str, bytes]] = set()
        for tenant in tenants:
            stored = rows(ledger, tenant)
            assert [row.log_index for row in stored] == list(range(len(stored)))
            assert ledger.head(tenant) == ledger.count(tenant) == len(stored)
            assert stored == rows(memory, tenant)
            assert list(ledger.iter_customers(tenant)) == list(memory.iter_customers(tenant))
            for row in stored:
                original = row.event
                found.add((row.tenant, original.source, original.id, row.leaf_hash))
            assert ledger.root(tenant) == memory.root(tenant)
        assert found == expected
        assert ledger.max_seq() == memory.max_seq() == len(events)
        assert ledger.check().problem is None


def test_every_event_type_reads_back_as_it_was_appended(ledger: SqliteLedger) -> None:
    examples = [
        ConversationStarted(channel="voice"),
        ConversationClosed(reason="timeout"),
        Message(role="human_agent", text='\u00e9\U0001f600 "quoted"'),
        ModelCall(
            tier="large",
            model="m",
            input_tokens=2**53 - 1,
            output_tokens=0,
            latency_ms=0,
            cost=Decimal("12.500"),
            currency="EUR",
        ),
        ToolCall(name="refund", ok=False),
        Handoff(context_passed=False),
        ResolutionClaimed(by="human_agent"),
        CustomerConfirmation(resolved=False),
        Csat(score=1),
        Recontact(previous_conversation="conversation-0"),
        ReviewVerdict(passed=True, reviewer="qa", note=None),
        BusinessEvent(kind="refund", amount=Decimal("0"), currency="USD"),
        HoldoutAssignment(group="treatment", experiment="x"),
        DisputeFiled(dispute_id="D", invoice_id="i", episodes=("e",), reason="r", filed_by="b"),
        DisputeRuled(dispute_id="D", ruling="rejected", ruled_by="r"),
    ]
    originals = [event(number, data=data) for number, data in enumerate(examples)]
    assert {original.type for original in originals} == set(DATA_TYPES)

    ledger.append(originals)

    assert [row.reveal() for row in rows(ledger, "acme")] == originals
    # What the judge reads (`event`) holds commitments in the personal fields, nothing else.
    for row, original in zip(rows(ledger, "acme"), originals, strict=True):
        if isinstance(original.data, Message):
            assert row.event.data.text.startswith("sha256:")
            assert row.event.data.role == original.data.role
        else:
            assert row.event == original


def test_the_money_in_a_stored_event_is_still_a_decimal(ledger: SqliteLedger) -> None:
    call = ModelCall(
        tier="small",
        model="m",
        input_tokens=1,
        output_tokens=1,
        latency_ms=1,
        cost=Decimal("0.000000001"),
    )
    ledger.append([event(0, data=call)])
    stored = ledger.get("acme", SOURCE, "event-0")
    assert stored is not None
    assert stored.event.data.cost == Decimal("0.000000001")

"""Every ledger store keeps the `LedgerStore` contract the same way: each test runs on SQLite and
on PostgreSQL (the `ledger` fixture), and the stores hold byte for byte the same entries, leaves,
roots, proofs, checkpoints and invoices for the same events.

What would break: a retried batch stored twice, a reused id with other content accepted or half a
batch kept after a conflict, a gap or repeat in a tenant's log_index or in the seqs, reads out of
the promised order or past the bound asked for, appenders in several processes or threads
breaking a log's density or its tree, a checkpoint signed that does not extend the last one, an
issued invoice that changes, or the PostgreSQL store drifting from the SQLite one.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from postgres import commitment_key_of, empty_tables, server_or_skip
from raas.audit.proofs import verify_consistency, verify_inclusion
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
from raas.errors import ConflictError, StoreError
from raas.ledger import MemoryLedger, PostgresLedger, SqliteLedger, open_ledger
from raas.ledger.checkpoint import open_checkpoint
from raas.ledger.keys import SignerKey

if TYPE_CHECKING:
    from raas.ledger import Ledger

START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
SOURCE = "urn:raas:test:agents"
SIGNER = SignerKey("contract-test", bytes(range(32)))


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
    )


def log(ledger: Ledger, tenant: str = "acme") -> list[tuple[int, int, bytes, bytes]]:
    """The tenant's log as stored: (log index, seq, entry, disclosures) in log order."""
    return [
        (row.log_index, row.seq, row.entry, row.disclosures) for row in ledger.iter_events(tenant)
    ]


# -- appending ---------------------------------------------------------------------------------


def test_append_stores_canonical_entries_under_the_ledgers_key(
    ledger: Ledger, ledger_location: str
) -> None:
    events = [event(n) for n in range(4)] + [event(9, data=Message(role="customer", text="hi"))]

    receipt = ledger.append(events)

    key = commitment_key_of(ledger_location)
    assert (receipt.stored, receipt.duplicates) == (5, 0)
    stored = list(ledger.iter_events("acme"))
    assert [row.entry for row in stored] == [event_entry(e, key) for e in events]
    assert [row.leaf_hash for row in stored] == [leaf_hash(row.entry) for row in stored]
    assert [row.reveal() for row in stored] == events
    assert [(row.seq, row.log_index) for row in stored] == [(n + 1, n) for n in range(5)]


def test_the_same_batch_twice_is_a_no_op(ledger: Ledger) -> None:
    events = [event(n) for n in range(4)]
    ledger.append(events)
    before = (log(ledger), ledger.max_seq(), ledger.root("acme"))

    receipt = ledger.append(events)

    assert (receipt.stored, receipt.duplicates) == (0, 4)
    assert (receipt.logs["acme"].size, receipt.logs["acme"].last_seq) == (4, 4)
    assert (log(ledger), ledger.max_seq(), ledger.root("acme")) == before


def test_a_batch_mixing_new_repeated_and_stored_events_stores_only_the_new(ledger: Ledger) -> None:
    ledger.append([event(0), event(1)])
    ledger.append([event(10, tenant="globex")])

    receipt = ledger.append(
        [event(1), event(2), event(0), event(2), event(3), event(11, tenant="globex")]
    )

    assert (receipt.stored, receipt.duplicates) == (3, 3)
    assert [row.event.id for row in ledger.iter_events("acme")] == [f"event-{n}" for n in range(4)]
    assert set(receipt.logs) == {"acme", "globex"}
    assert (receipt.logs["acme"].size, receipt.logs["globex"].size) == (4, 2)
    assert receipt.logs["globex"].last_seq == ledger.max_seq() == 6


def test_a_reused_id_with_other_content_rolls_back_the_whole_batch(
    ledger: Ledger, ledger_location: str
) -> None:
    ledger.append([event(0), event(1)])
    before = (log(ledger), ledger.max_seq(), ledger.tenants())
    changed = event(1, data=Csat(score=5))
    key = commitment_key_of(ledger_location)

    with pytest.raises(ConflictError) as conflict:
        ledger.append([event(2), event(7, tenant="globex"), changed, event(3)])

    error = conflict.value
    assert (error.tenant, error.source, error.event_id) == ("acme", SOURCE, "event-1")
    assert error.stored_hash == leaf_hash(event_entry(event(1), key)).hex()
    assert error.new_hash == leaf_hash(event_entry(changed, key)).hex()
    assert (log(ledger), ledger.max_seq(), ledger.tenants()) == before
    # The refused batch left no hole: the next one continues the log and the seqs densely.
    ledger.append([event(2), event(3)])
    assert [(index, seq) for index, seq, _, _ in log(ledger)] == [(n, n + 1) for n in range(4)]


def test_a_reused_id_inside_one_batch_is_refused_before_anything_is_written(
    ledger: Ledger,
) -> None:
    ledger.append([event(0)])

    with pytest.raises(ConflictError, match="event-5"):
        ledger.append([event(5), event(6), event(5, data=Csat(score=5)), event(7)])

    assert [row.event.id for row in ledger.iter_events("acme")] == ["event-0"]
    assert ledger.max_seq() == 1


def test_the_key_is_tenant_source_and_id(ledger: Ledger) -> None:
    receipt = ledger.append(
        [event(1), event(1, tenant="globex"), event(1, source="urn:raas:test:other")]
    )

    assert (receipt.stored, receipt.duplicates) == (3, 0)
    found = ledger.get("acme", "urn:raas:test:other", "event-1")
    assert found is not None
    assert (found.seq, found.log_index, found.event.source) == (3, 1, "urn:raas:test:other")
    assert ledger.get("acme", "urn:raas:test:nowhere", "event-1") is None
    assert ledger.get("nobody", SOURCE, "event-1") is None


def test_each_tenant_has_its_own_dense_log(ledger: Ledger) -> None:
    tenants = ["acme", "globex", "initech"]
    for batch in range(4):
        ledger.append([event(batch * 10 + n, tenant=tenants[n % 3]) for n in range(7)])

    assert ledger.tenants() == tenants
    for tenant in tenants:
        stored = log(ledger, tenant)
        assert [index for index, _, _, _ in stored] == list(range(len(stored)))
        assert [seq for _, seq, _, _ in stored] == sorted(seq for _, seq, _, _ in stored)
        assert ledger.head(tenant) == ledger.count(tenant) == len(stored)
    assert ledger.max_seq() == 28
    assert ledger.head("nobody") == ledger.count("nobody") == 0


def test_the_ledger_survives_reopening_and_keeps_its_vendor(ledger_location: str) -> None:
    with open_ledger(ledger_location, vendor="acme-ai") as ledger:
        ledger.append([event(n) for n in range(3)])
    with open_ledger(ledger_location) as ledger:
        assert ledger.vendor == "acme-ai"
        assert ledger.origin("acme") == "acme-ai/raas/acme"
        assert ledger.head("acme") == 3
        assert ledger.append([event(2), event(3)]).stored == 1
        assert [index for index, _, _, _ in log(ledger)] == [0, 1, 2, 3]
    with pytest.raises(StoreError, match="belongs to vendor 'acme-ai', not 'other'"):
        open_ledger(ledger_location, vendor="other")


def test_an_empty_batch_stores_nothing(ledger: Ledger) -> None:
    receipt = ledger.append([])

    assert (receipt.stored, receipt.duplicates, receipt.logs) == (0, 0, {})
    assert ledger.max_seq() == 0
    assert list(ledger.append_batches([[], []])) == []


def test_a_stream_of_batches_stores_what_appending_each_does(ledger: Ledger) -> None:
    batches = [[event(n) for n in range(start, start + 5)] for start in (0, 3, 8)]
    memory = MemoryLedger()

    receipts = list(ledger.append_batches([*batches[:2], [], batches[2]]))

    assert receipts == [memory.append(batch) for batch in batches]
    assert [row.event.id for row in ledger.iter_events("acme")] == [f"event-{n}" for n in range(13)]


def test_a_failing_batch_in_a_stream_keeps_the_batches_before_it(ledger: Ledger) -> None:
    receipts = []
    with pytest.raises(ConflictError):
        for receipt in ledger.append_batches(
            [[event(0), event(1)], [event(2)], [event(1, data=Csat(score=5)), event(3)]]
        ):
            receipts.append(receipt)

    assert [receipt.stored for receipt in receipts] == [2, 1]
    assert ledger.head("acme") == ledger.max_seq() == 3


def test_a_closed_ledger_says_so(ledger_location: str) -> None:
    ledger = open_ledger(ledger_location)
    ledger.close()
    ledger.close()

    with pytest.raises(StoreError, match="closed"):
        ledger.append([event(0)])
    with pytest.raises(StoreError, match="closed"):
        ledger.head("acme")
    with pytest.raises(StoreError, match="closed"):
        list(ledger.iter_events("acme"))


# -- reading -----------------------------------------------------------------------------------


def test_customers_come_sorted_and_each_ones_events_by_time_source_and_id(
    ledger: Ledger,
) -> None:
    # Appended out of order, with ties in time broken by source and then id; names that sort
    # differently by code point than by a locale's rules ("Z" < "a" < "é").
    ledger.append(
        [
            event(3, customer="customer-b", seconds=50),
            event(1, customer="customer-a", seconds=90),
            event(2, customer="customer-a", seconds=10, source="urn:b"),
            event(4, customer="customer-a", seconds=10, source="urn:a"),
            event(6, customer="customer-a", seconds=10, source="urn:a"),
            event(5, customer="customer-a", seconds=10, source="urn:a"),
            event(7, customer="customer-a", seconds=-1_000_000),
            event(8, customer="é"),
            event(9, customer="Zed"),
            event(10, customer="customer-a", seconds=10, source="urn:Z"),
        ]
    )

    grouped = [
        (customer, [(row.event.source, row.event.id) for row in stored])
        for customer, stored in ledger.iter_customers("acme")
    ]

    assert grouped == [
        ("Zed", [(SOURCE, "event-9")]),
        (
            "customer-a",
            [
                (SOURCE, "event-7"),
                ("urn:Z", "event-10"),
                ("urn:a", "event-4"),
                ("urn:a", "event-5"),
                ("urn:a", "event-6"),
                ("urn:b", "event-2"),
                (SOURCE, "event-1"),
            ],
        ),
        ("customer-b", [(SOURCE, "event-3")]),
        ("é", [(SOURCE, "event-8")]),
    ]
    assert grouped == [
        (customer, [(row.event.source, row.event.id) for row in stored])
        for customer, stored in _memory_of(ledger).iter_customers("acme")
    ]


def _memory_of(ledger: Ledger) -> MemoryLedger:
    """A MemoryLedger holding the same events in the same order (its own commitment key)."""
    memory = MemoryLedger()
    for tenant in ledger.tenants():
        memory.append([row.reveal() for row in ledger.iter_events(tenant)])
    return memory


def test_reads_stop_at_the_seq_or_size_asked_for(ledger: Ledger) -> None:
    ledger.append([event(n, tenant="acme", customer=f"c-{n % 2}") for n in range(4)])
    ledger.append([event(n, tenant="globex") for n in range(3)])
    ledger.append([event(n, tenant="acme", customer=f"c-{n % 2}") for n in range(4, 8)])

    def ids(read: Iterator[tuple[str, list[Any]]]) -> list[str]:
        return sorted(row.event.id for _, stored in read for row in stored)

    assert ids(ledger.iter_customers("acme", upto_seq=7)) == [f"event-{n}" for n in range(4)]
    assert ids(ledger.iter_customers("acme", upto_size=5)) == [f"event-{n}" for n in range(5)]
    assert ids(ledger.iter_customers("acme", upto_seq=9, upto_size=7)) == [
        f"event-{n}" for n in range(6)
    ]
    assert [row.log_index for row in ledger.iter_events("acme", upto_size=3)] == [0, 1, 2]
    assert [row.seq for row in ledger.iter_events("acme", upto_seq=8)] == [1, 2, 3, 4, 8]
    assert list(ledger.iter_customers("acme", upto_seq=0)) == []
    assert list(ledger.iter_events("nobody")) == []


def test_a_stream_sees_one_snapshot_while_appends_go_on(ledger: Ledger) -> None:
    ledger.append([event(n, customer=f"c-{n}") for n in range(3)])
    stream = ledger.iter_customers("acme")
    first_customer, _ = next(stream)

    ledger.append([event(n, customer=f"c-{n}") for n in range(3, 6)])

    rest = [customer for customer, _ in stream]
    assert [first_customer, *rest] == ["c-0", "c-1", "c-2"]
    assert [customer for customer, _ in ledger.iter_customers("acme")] == [
        f"c-{n}" for n in range(6)
    ]


def test_every_kind_of_data_and_money_reads_back_as_appended(ledger: Ledger) -> None:
    originals = [
        event(0, data=Message(role="human_agent", text='\u00e9\U0001f600 "quoted"')),
        event(
            1,
            data=ModelCall(
                tier="large",
                model="m",
                input_tokens=2**53 - 1,
                output_tokens=0,
                latency_ms=0,
                cost=Decimal("0.000000001"),
                currency="EUR",
            ),
        ),
        event(2, data=Handoff(context_passed=False, reason="angry")),
    ]

    ledger.append(originals)

    stored = list(ledger.iter_events("acme"))
    assert [row.reveal() for row in stored] == originals
    assert stored[0].event.data.text.startswith("sha256:")
    assert stored[1].event.data.cost == Decimal("0.000000001")


def test_every_event_type_reads_back_as_it_was_appended(ledger: Ledger) -> None:
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

    assert [row.reveal() for row in list(ledger.iter_events("acme"))] == originals
    # What the judge reads (`event`) holds commitments in the personal fields, nothing else.
    for row, original in zip(list(ledger.iter_events("acme")), originals, strict=True):
        if isinstance(original.data, Message):
            assert row.event.data.text.startswith("sha256:")
            assert row.event.data.role == original.data.role
        else:
            assert row.event == original


# -- the Merkle log, checkpoints and invoices --------------------------------------------------


def test_entries_leaves_roots_and_proofs_are_those_of_the_in_memory_tree(ledger: Ledger) -> None:
    for start in range(0, 37, 6):
        ledger.append([event(n) for n in range(start, min(start + 6, 37))])
    memory = _memory_of(ledger)
    leaves = ledger.leaf_hashes("acme", 0, 37)

    assert leaves == memory.leaf_hashes("acme", 0, 37)
    assert ledger.leaf_hashes("acme", 5, 9) == leaves[5:9]
    for size in range(38):
        assert ledger.root("acme", size) == memory.root("acme", size)
    assert ledger.root("acme") == memory.root("acme")
    proofs = ledger.inclusion_proofs("acme", list(range(20)), 20)
    for index, proof in enumerate(proofs):
        assert proof == memory.inclusion_proof("acme", index, 20)
        verify_inclusion(leaves[index], index, 20, proof, ledger.root("acme", 20))
    for old_size in (1, 6, 19, 37):
        proof = ledger.consistency_proof("acme", old_size, 37)
        assert proof == memory.consistency_proof("acme", old_size, 37)
        verify_consistency(old_size, 37, proof, ledger.root("acme", old_size), ledger.root("acme"))
    found = ledger.entries_by_leaf_hash("acme", [leaves[30], leaves[2]])
    assert [row.log_index for row in found] == [30, 2]
    assert [row.log_index for row in ledger.entries("acme", [4, 0, 4])] == [4, 0, 4]


@pytest.mark.parametrize(
    "ask",
    [
        lambda ledger: ledger.root("acme", 4),
        lambda ledger: ledger.inclusion_proof("acme", 3, 3),
        lambda ledger: ledger.consistency_proof("acme", 2, 4),
        lambda ledger: ledger.consistency_proof("acme", 3, 2),
        lambda ledger: ledger.leaf_hashes("acme", 0, 4),
        lambda ledger: ledger.entries("acme", [3]),
        lambda ledger: ledger.entries("acme", [-1]),
        lambda ledger: ledger.entries_by_leaf_hash("acme", [bytes(32)]),
    ],
)
def test_asking_beyond_the_log_is_a_store_error(ledger: Ledger, ask: Any) -> None:
    ledger.append([event(n) for n in range(3)])

    with pytest.raises(StoreError):
        ask(ledger)


def test_checkpoints_extend_the_last_one_signed(ledger: Ledger) -> None:
    with pytest.raises(StoreError, match="empty"):
        ledger.sign_checkpoint("acme", SIGNER)
    ledger.append([event(n) for n in range(5)])

    first = ledger.sign_checkpoint("acme", SIGNER)
    ledger.append([event(n) for n in range(5, 9)])
    second = ledger.sign_checkpoint("acme", [SIGNER])

    opened = open_checkpoint(second, [SIGNER.verifier()], origin=ledger.origin("acme"))
    assert (opened.size, opened.root) == (9, ledger.root("acme"))
    assert ledger.latest_checkpoint("acme") == second
    assert ledger.checkpoint_at("acme", 5) == first
    assert ledger.checkpoint_at("acme", 6) is None
    assert ledger.latest_checkpoint("globex") is None
    with pytest.raises(StoreError, match="refusing to sign one as 'other/raas/acme'"):
        ledger.sign_checkpoint("acme", SIGNER, origin="other/raas/acme")
    assert ledger.latest_checkpoint("acme") == second
    check = ledger.check([SIGNER.verifier()])
    assert (check.problem, check.checkpoints, check.signatures_verified) == (None, 2, 2)


def test_an_issued_invoice_never_changes(ledger: Ledger) -> None:
    ledger.store_invoice("inv-2", "acme", b'{"total": "1.00"}')
    ledger.store_invoice("inv-1", "acme", b'{"total": "2.00"}')
    ledger.store_invoice("inv-1", "acme", b'{"total": "2.00"}')
    ledger.store_invoice("inv-3", "globex", b"{}")

    with pytest.raises(StoreError, match="already issued with other content"):
        ledger.store_invoice("inv-1", "acme", b'{"total": "3.00"}')
    assert ledger.get_invoice("acme", "inv-1") == b'{"total": "2.00"}'
    assert ledger.get_invoice("acme", "inv-9") is None
    assert ledger.get_invoice("acme", "inv-3") is None  # globex's
    assert ledger.list_invoices("acme") == ["inv-1", "inv-2"]
    assert ledger.list_invoices("nobody") == []


def test_two_buyers_each_keep_their_invoice_of_a_shared_contract_name(ledger: Ledger) -> None:
    # A vendor names every buyer's contract alike: same contract, version and period, so the
    # same invoice id, issued to two tenants.
    invoice_id = "standard-support-v1-2026-11"
    ledger.store_invoice(invoice_id, "acme", b'{"buyer": "acme"}')
    ledger.store_invoice(invoice_id, "globex", b'{"buyer": "globex"}')
    ledger.store_invoice(invoice_id, "globex", b'{"buyer": "globex"}')  # the same again: a no-op

    with pytest.raises(StoreError, match="'standard-support-v1-2026-11' of tenant 'globex'"):
        ledger.store_invoice(invoice_id, "globex", b'{"buyer": "acme"}')
    assert ledger.get_invoice("acme", invoice_id) == b'{"buyer": "acme"}'
    assert ledger.get_invoice("globex", invoice_id) == b'{"buyer": "globex"}'
    assert ledger.get_invoice("initech", invoice_id) is None
    assert ledger.list_invoices("acme") == [invoice_id]
    assert ledger.list_invoices("globex") == [invoice_id]


def test_both_stores_hold_the_same_bytes_for_the_same_events(
    tmp_path: Path, postgres_url: str
) -> None:
    # Csat events have no personal field: their entries do not depend on the commitment key,
    # so two ledgers with different keys must agree on every byte.
    events = [event(n, tenant=("acme", "globex")[n % 2], customer=f"c-{n % 3}") for n in range(41)]
    invoice = b'{"id": "inv-1", "lines": []}'
    notes = {}
    held = {}
    for name, location in (("sqlite", str(tmp_path / "ledger.db")), ("postgres", postgres_url)):
        with open_ledger(location, vendor="acme-ai") as ledger:
            for start in range(0, 41, 10):
                ledger.append(events[start : start + 10])
            notes[name] = [ledger.sign_checkpoint(tenant, SIGNER) for tenant in ("acme", "globex")]
            ledger.store_invoice("inv-1", "acme", invoice)
            held[name] = (
                [list(ledger.iter_events(tenant)) for tenant in ledger.tenants()],
                [list(ledger.iter_customers(tenant)) for tenant in ledger.tenants()],
                [ledger.root("acme", size) for size in range(22)],
                ledger.inclusion_proofs("acme", list(range(21)), 21),
                [ledger.consistency_proof("globex", size, 20) for size in range(1, 21)],
                ledger.get_invoice("acme", "inv-1"),
            )
    assert held["sqlite"] == held["postgres"]
    assert notes["sqlite"] == notes["postgres"]


# -- several appenders at once -----------------------------------------------------------------


def _append_overlapping(location: str, worker: int) -> int:
    """One appender: 12 batches of 25 events, half its own, half shared with the next worker."""
    stored = 0
    with open_ledger(location) as ledger:
        for batch in range(12):
            own = [event(worker * 1000 + batch * 25 + n, customer=f"c-{n % 4}") for n in range(13)]
            shared = [event(90_000 + ((worker + 1) % 3) * 1000 + batch * 25 + n) for n in range(12)]
            shared += [event(90_000 + worker * 1000 + batch * 25 + n) for n in range(12)]
            stored += ledger.append(
                own + shared + [event(n, tenant="globex") for n in range(5)]
            ).stored
    return stored


def _check_appended_by_three(ledger: Ledger, stored_total: int) -> None:
    ids = [row.event.id for row in ledger.iter_events("acme")]
    assert len(ids) == len(set(ids)) == ledger.head("acme") == 3 * 12 * (13 + 12)
    assert [row.log_index for row in ledger.iter_events("acme")] == list(range(len(ids)))
    assert ledger.head("globex") == 5
    assert stored_total == ledger.max_seq() == len(ids) + 5
    seqs = sorted(row.seq for tenant in ledger.tenants() for row in ledger.iter_events(tenant))
    assert seqs == list(range(1, ledger.max_seq() + 1))
    assert ledger.check().problem is None


def test_appenders_in_several_processes_keep_every_log_dense_and_each_event_once(
    ledger_location: str,
) -> None:
    open_ledger(ledger_location).close()  # created (or migrated) before the workers race
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        stored = pool.starmap(_append_overlapping, [(ledger_location, w) for w in range(3)])

    with open_ledger(ledger_location) as ledger:
        _check_appended_by_three(ledger, sum(stored))


def test_appenders_in_several_threads_with_their_own_connections(ledger_location: str) -> None:
    open_ledger(ledger_location).close()
    stored = [0, 0, 0]

    def work(worker: int) -> None:
        stored[worker] = _append_overlapping(ledger_location, worker)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    with open_ledger(ledger_location) as ledger:
        _check_appended_by_three(ledger, sum(stored))


def test_threads_sharing_one_ledger_keep_its_log_dense(ledger: Ledger) -> None:
    def work(offset: int) -> None:
        for batch in range(10):
            ledger.append([event(offset + batch * 20 + n) for n in range(20)])

    threads = [threading.Thread(target=work, args=(offset,)) for offset in (0, 10_000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [row.log_index for row in ledger.iter_events("acme")] == list(range(400))
    assert ledger.check().problem is None


# -- failures ----------------------------------------------------------------------------------


def test_a_retry_after_a_dropped_connection_is_stored_once(postgres_url: str) -> None:
    events = [event(n) for n in range(10)]
    with PostgresLedger(postgres_url) as ledger:
        ledger.append(events[:4])
        # The server ends the ledger's session, as a restart or a network cut would.
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreError, match="could not"):
            ledger.append(events)
        receipt = ledger.append(events)  # the sender retries the same batch

        assert (receipt.stored, receipt.duplicates) == (6, 4)
        assert [row.event.id for row in ledger.iter_events("acme")] == [e.id for e in events]
        assert ledger.check().problem is None


def test_a_postgres_ledger_with_no_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="could not"):
        PostgresLedger("postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2")


def test_keys_postgres_text_cannot_hold_are_refused_whole(ledger: Ledger) -> None:
    # A NUL in a key or customer: SQLite keeps it; PostgreSQL text cannot, so the batch is
    # refused as a whole, naming the field, rather than half stored.
    bad = make_event(
        Csat(score=1),
        id="event-\x00",
        source=SOURCE,
        time=START,
        tenant="acme",
        customer="c",
        conversation="x",
    )
    if isinstance(ledger, SqliteLedger):
        assert ledger.append([event(0), bad]).stored == 2
        return
    with pytest.raises(StoreError, match="field 'id' holds a NUL character"):
        ledger.append([event(0), bad])
    assert ledger.head("acme") == 0


# -- the batching property ---------------------------------------------------------------------

texts = st.text(min_size=1, max_size=12)
datas = st.one_of(
    st.builds(Csat, score=st.integers(1, 5)),
    st.builds(Message, role=st.sampled_from(["customer", "ai"]), text=st.text(max_size=30)),
    st.builds(Handoff, context_passed=st.booleans(), reason=st.none() | texts),
)
distinct_events = st.lists(
    st.builds(
        lambda tenant, source, number, customer, milliseconds, data: make_event(
            data,
            id=f"event-{number}",
            source=source,
            time=START + timedelta(milliseconds=milliseconds),
            tenant=tenant,
            customer=customer,
            conversation="conversation-1",
        ),
        st.sampled_from(["acme", "globex", "initech"]),
        st.sampled_from(["urn:a", "urn:b", "urn:B"]),
        st.integers(0, 30),
        st.sampled_from(["c-1", "c-2", "C-3"]),
        st.integers(0, 5_000),
        datas,
    ),
    max_size=25,
    unique_by=lambda e: (e.tenant, e.source, e.id),
)


@contextmanager
def fresh(kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty ledger location of the kind, for one hypothesis example."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield str(Path(folder) / "ledger.db")
        return
    server_or_skip()
    url: str = request.getfixturevalue("postgres_database")
    empty_tables(url)
    yield url


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=distinct_events, plan=st.data())
def test_any_batching_with_retries_in_any_order_stores_what_the_fake_stores(
    kind: str, request: pytest.FixtureRequest, events: list[Event], plan: st.DataObject
) -> None:
    retries = plan.draw(st.lists(st.sampled_from(events))) if events else []
    deliveries = plan.draw(st.permutations(events + retries))
    cuts = sorted(plan.draw(st.lists(st.integers(0, len(deliveries)), max_size=6)))
    batches = [
        deliveries[start:end]
        for start, end in zip([0, *cuts], [*cuts, len(deliveries)], strict=True)
    ]

    with fresh(kind, request) as location, open_ledger(location) as ledger:
        memory = MemoryLedger(commitment_key=commitment_key_of(location))
        for batch in batches:
            receipt = ledger.append(batch)
            assert receipt == memory.append(batch)
        assert ledger.tenants() == memory.tenants() == sorted({e.tenant for e in events})
        for tenant in ledger.tenants():
            assert list(ledger.iter_events(tenant)) == list(memory.iter_events(tenant))
            assert list(ledger.iter_customers(tenant)) == list(memory.iter_customers(tenant))
            assert ledger.head(tenant) == ledger.count(tenant) == memory.head(tenant)
            assert ledger.root(tenant) == memory.root(tenant)
        assert ledger.max_seq() == memory.max_seq() == len(events)
        assert ledger.check().problem is None

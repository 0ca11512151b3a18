"""The per-tenant Merkle logs of both stores: roots, proofs, checkpoints and invoices.

What would break: a root or proof that disagrees with a tree rebuilt naively from the stored leaf
hashes (auditors would reject honest evidence), one tenant's events in another's log, a frontier
that drifts from the log it summarises, a checkpoint signed over a log that no longer extends the
last one signed (the log could rewrite history unseen), an issued invoice overwritten, or the
in-memory fake answering differently from SQLite.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raas.audit.proofs import verify_consistency, verify_inclusion
from raas.core.events import Csat, Event, Message, make_event
from raas.errors import StoreError
from raas.ledger import LedgerStore, MemoryLedger, SqliteLedger
from raas.ledger.checkpoint import open_checkpoint
from raas.ledger.keys import SignerKey
from raas.ledger.log import extend_frontier
from raas.ledger.merkle import EMPTY_ROOT, MerkleFrontier, MerkleTree

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SIGNER = SignerKey("helpdesk-ai-log", bytes(range(32)))
NEW_SIGNER = SignerKey("helpdesk-ai-log-2027", bytes(range(2, 34)))


def event(number: int, tenant: str = "acme", *, text: str | None = None) -> Event:
    return make_event(
        Message(role="customer", text=text) if text is not None else Csat(score=1 + number % 5),
        id=f"event-{number}",
        source="urn:raas:test",
        time=START + timedelta(seconds=number),
        tenant=tenant,
        customer=f"customer-{number % 4}",
        conversation=f"conversation-{number // 5}",
    )


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    if request.param == "memory":
        yield MemoryLedger(vendor="helpdesk-ai")
        return
    with SqliteLedger(tmp_path / "ledger.db", vendor="helpdesk-ai") as ledger:
        yield ledger


def naive_tree(store: LedgerStore, tenant: str) -> MerkleTree:
    return MerkleTree(row.leaf_hash for row in store.iter_events(tenant))


def fill(store: LedgerStore, sizes: dict[str, int], batch_events: int = 7) -> None:
    """Interleave the tenants' events in batches, as a sender would deliver them."""
    events = [
        event(number * 3 + offset, tenant, text=f"hello {number}" if number % 3 == 0 else None)
        for offset, (tenant, size) in enumerate(sizes.items())
        for number in range(size)
    ]
    events.sort(key=lambda item: item.time)
    for start in range(0, len(events), batch_events):
        store.append(events[start : start + batch_events])


# -- roots and proofs ---------------------------------------------------------------------------


def test_each_tenant_has_its_own_tree(store: LedgerStore) -> None:
    fill(store, {"acme": 40, "globex": 9})

    for tenant, size in (("acme", 40), ("globex", 9)):
        tree = naive_tree(store, tenant)
        assert tree.size == store.head(tenant) == size
        assert store.root(tenant) == tree.root()
        assert store.leaf_hashes(tenant, 0, size) == [
            row.leaf_hash for row in store.iter_events(tenant)
        ]
        for past in (0, 1, 2, 3, 8, size - 1, size):
            assert store.root(tenant, past) == tree.root(past)
    assert store.root("acme") != store.root("globex")
    assert store.root("nobody") == EMPTY_ROOT


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=4),
    batch_events=st.integers(1, 40),
    data=st.data(),
)
def test_proofs_verify_against_the_roots_the_store_gives(
    sizes: list[int], batch_events: int, data: st.DataObject
) -> None:
    # Both stores, the same appends: every answer must agree and verify independently.
    import tempfile

    with tempfile.TemporaryDirectory() as folder, SqliteLedger(Path(folder) / "l.db") as sqlite:
        memory = MemoryLedger(commitment_key=_commitment_key(Path(folder) / "l.db"))
        for batch_size in sizes:
            for ledger in (sqlite, memory):
                fill(ledger, {"acme": batch_size, "globex": batch_size // 2}, batch_events)
        size = sqlite.head("acme")
        assert size == memory.head("acme")
        tree = naive_tree(sqlite, "acme")
        new_size = data.draw(st.integers(1, size))
        old_size = data.draw(st.integers(0, new_size))
        indexes = data.draw(st.lists(st.integers(0, new_size - 1), min_size=1, max_size=8))
        leaves = sqlite.leaf_hashes("acme", 0, new_size)
        root = sqlite.root("acme", new_size)
        assert root == memory.root("acme", new_size) == tree.root(new_size)
        proofs = sqlite.inclusion_proofs("acme", indexes, new_size)
        assert proofs == memory.inclusion_proofs("acme", indexes, new_size)
        for index, proof in zip(indexes, proofs, strict=True):
            assert proof == sqlite.inclusion_proof("acme", index, new_size)
            verify_inclusion(leaves[index], index, new_size, proof, root)
        consistency = sqlite.consistency_proof("acme", old_size, new_size)
        assert consistency == memory.consistency_proof("acme", old_size, new_size)
        verify_consistency(old_size, new_size, consistency, sqlite.root("acme", old_size), root)


def _commitment_key(path: Path) -> bytes:
    connection = sqlite3.connect(path)
    try:
        row = connection.execute("SELECT value FROM meta WHERE name = 'commitment_key'").fetchone()
    finally:
        connection.close()
    return bytes(row[0])


@settings(max_examples=200)
@given(before=st.integers(0, 300), added=st.integers(0, 300))
def test_the_frontier_extended_level_by_level_is_the_leaf_by_leaf_one(
    before: int, added: int
) -> None:
    leaves = [
        hashlib.sha256(number.to_bytes(4, "big")).digest() for number in range(before + added)
    ]
    frontier = MerkleFrontier()
    frontier.extend(leaves[:before])
    expected = frontier.copy()
    expected.extend(leaves[before:])
    assert extend_frontier(frontier, leaves[before:]) == expected
    assert frontier.size == before  # the frontier given is left as it was


def test_the_stored_frontier_moves_with_every_append(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path) as ledger:
        for batch in range(6):
            ledger.append([event(batch * 10 + n, "acme") for n in range(batch * 3 + 1)])
            connection = sqlite3.connect(path)
            size, frontier = connection.execute(
                "SELECT size, frontier FROM logs WHERE tenant = 'acme'"
            ).fetchone()
            connection.close()
            tree = naive_tree(ledger, "acme")
            assert MerkleFrontier.from_bytes(frontier) == tree.frontier()
            assert size == tree.size == ledger.head("acme")


def test_asking_beyond_the_log_is_refused(store: LedgerStore) -> None:
    fill(store, {"acme": 5})
    with pytest.raises(StoreError, match="size 6"):
        store.root("acme", 6)
    with pytest.raises(StoreError, match="log index 5"):
        store.inclusion_proof("acme", 5, 5)
    with pytest.raises(StoreError, match="size 9"):
        store.inclusion_proofs("acme", [0], 9)
    with pytest.raises(StoreError, match="old size 4"):
        store.consistency_proof("acme", 4, 3)
    with pytest.raises(StoreError, match="end 6"):
        store.leaf_hashes("acme", 0, 6)
    with pytest.raises(StoreError, match="log index 7"):
        store.entries("acme", [0, 7])
    with pytest.raises(StoreError, match="log index 0"):
        store.entries("nobody", [0])
    assert store.consistency_proof("acme", 0, 5) == []
    assert store.consistency_proof("acme", 5, 5) == []


# -- entries --------------------------------------------------------------------------------------


def test_entries_come_in_the_order_asked(store: LedgerStore) -> None:
    fill(store, {"acme": 12, "globex": 12})
    log = list(store.iter_events("acme"))

    chosen = store.entries("acme", [7, 0, 11, 7])

    assert chosen == [log[7], log[0], log[11], log[7]]
    assert store.entries("acme", []) == []
    by_leaf = store.entries_by_leaf_hash("acme", [log[3].leaf_hash, log[10].leaf_hash])
    assert by_leaf == [log[3], log[10]]
    assert all(row.tenant == "acme" for row in chosen)


def test_a_leaf_hash_of_another_tenant_is_not_found(store: LedgerStore) -> None:
    fill(store, {"acme": 4, "globex": 4})
    other = next(iter(store.iter_events("globex"))).leaf_hash
    with pytest.raises(StoreError, match=other.hex()):
        store.entries_by_leaf_hash("acme", [other])


def test_entries_keep_their_disclosures(store: LedgerStore) -> None:
    store.append([event(1, text="call me on +49 30 1234567"), event(2)])
    message, csat = store.entries("acme", [0, 1])
    assert b"1234567" not in message.entry and b"1234567" in message.disclosures
    assert message.reveal() == event(1, text="call me on +49 30 1234567")
    assert message.event.data.text.startswith("sha256:")
    assert csat.disclosures == b"{}" and csat.reveal() == csat.event == event(2)


# -- checkpoints ----------------------------------------------------------------------------------


def test_a_signed_checkpoint_states_the_logs_size_and_root(store: LedgerStore) -> None:
    fill(store, {"acme": 10, "globex": 3})

    note = store.sign_checkpoint("acme", SIGNER)

    assert store.origin("acme") == "helpdesk-ai/raas/acme"
    checkpoint = open_checkpoint(note, SIGNER.verifier(), origin="helpdesk-ai/raas/acme")
    assert (checkpoint.size, checkpoint.root) == (10, store.root("acme"))
    assert store.latest_checkpoint("acme") == store.checkpoint_at("acme", 10) == note
    assert store.latest_checkpoint("globex") is None
    assert store.checkpoint_at("acme", 9) is None


def test_later_checkpoints_extend_earlier_ones_and_keys_rotate(store: LedgerStore) -> None:
    fill(store, {"acme": 10})
    first = store.sign_checkpoint("acme", SIGNER)
    store.append([event(100 + n) for n in range(7)])
    second = store.sign_checkpoint("acme", [SIGNER, NEW_SIGNER])  # rotating: both sign
    third = store.sign_checkpoint("acme", NEW_SIGNER)  # the same size again, the new key only

    old = open_checkpoint(first, SIGNER.verifier())
    new = open_checkpoint(second, NEW_SIGNER.verifier())
    assert open_checkpoint(second, SIGNER.verifier()) == new
    verify_consistency(
        old.size, new.size, store.consistency_proof("acme", 10, 17), old.root, new.root
    )
    assert store.latest_checkpoint("acme") == third
    assert store.checkpoint_at("acme", 17) == third
    assert store.checkpoint_at("acme", 10) == first


def test_an_empty_log_or_another_origin_is_not_signed(store: LedgerStore) -> None:
    with pytest.raises(StoreError, match="empty"):
        store.sign_checkpoint("acme", SIGNER)
    fill(store, {"acme": 3})
    store.sign_checkpoint("acme", SIGNER)
    with pytest.raises(StoreError, match=r"example\.org/log"):
        store.sign_checkpoint("acme", SIGNER, origin="example.org/log")
    assert store.latest_checkpoint("acme") == store.checkpoint_at("acme", 3)


def test_a_rewritten_log_is_never_signed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path) as ledger:
        fill(ledger, {"acme": 6})
        signed = ledger.sign_checkpoint("acme", SIGNER)
    # Someone with the file rewrites entry 2 and makes leaves and frontier agree with it.
    rewritten = MemoryLedger()
    rewritten.append(
        [
            row.event if row.log_index != 2 else event(999)
            for row in SqliteLedger(path).iter_events("acme")
        ]
    )
    connection = sqlite3.connect(path)
    leaves = b"".join(rewritten.leaf_hashes("acme", 0, 6))
    tree = MerkleTree(rewritten.leaf_hashes("acme", 0, 6))
    connection.execute("UPDATE leaves SET hashes = ?", (leaves,))
    connection.execute("UPDATE logs SET frontier = ?", (tree.frontier().to_bytes(),))
    connection.commit()
    connection.close()

    with SqliteLedger(path) as ledger:
        ledger.append([event(50)])
        with pytest.raises(StoreError, match="not consistent with the checkpoint signed at size 6"):
            ledger.sign_checkpoint("acme", SIGNER)
        assert ledger.latest_checkpoint("acme") == signed


def test_leaves_that_disagree_with_the_frontier_are_not_signed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path) as ledger:
        fill(ledger, {"acme": 5})
        connection = sqlite3.connect(path)
        connection.execute("UPDATE leaves SET hashes = zeroblob(160)")
        connection.commit()
        connection.close()
        with pytest.raises(StoreError, match="stored leaves"):
            ledger.sign_checkpoint("acme", SIGNER)
        assert ledger.latest_checkpoint("acme") is None


def test_the_vendor_is_fixed_when_the_ledger_is_made(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with SqliteLedger(path, vendor="helpdesk-ai") as ledger:
        assert ledger.vendor == "helpdesk-ai"
    with SqliteLedger(path) as ledger:
        assert ledger.origin("acme") == "helpdesk-ai/raas/acme"
    with pytest.raises(StoreError, match="belongs to vendor 'helpdesk-ai'"):
        SqliteLedger(path, vendor="other")
    with SqliteLedger(tmp_path / "default.db") as ledger:
        assert ledger.origin("acme") == "raas/raas/acme"
    with pytest.raises(StoreError, match="no spaces"):
        SqliteLedger(tmp_path / "bad.db", vendor="help desk")


# -- invoices -------------------------------------------------------------------------------------


def test_an_issued_invoice_never_changes(store: LedgerStore) -> None:
    store.store_invoice("acme-support-v1-2026-11", "acme", b'{"total":"10.00"}')
    store.store_invoice("acme-support-v1-2026-11", "acme", b'{"total":"10.00"}')  # a no-op
    store.store_invoice("acme-support-v1-2026-10", "acme", b'{"total":"7.00"}')
    store.store_invoice("globex-v2-2026-11", "globex", b"{}")

    with pytest.raises(StoreError, match=r"'acme-support-v1-2026-11' of tenant 'acme'.*other"):
        store.store_invoice("acme-support-v1-2026-11", "acme", b'{"total":"11.00"}')
    # Another buyer's contract of the same name: its own invoice under the same id.
    store.store_invoice("acme-support-v1-2026-11", "globex", b'{"total":"3.00"}')

    assert store.get_invoice("acme", "acme-support-v1-2026-11") == b'{"total":"10.00"}'
    assert store.get_invoice("globex", "acme-support-v1-2026-11") == b'{"total":"3.00"}'
    assert store.get_invoice("acme", "nothing") is None
    assert store.get_invoice("acme", "globex-v2-2026-11") is None
    assert store.list_invoices("acme") == ["acme-support-v1-2026-10", "acme-support-v1-2026-11"]
    assert store.list_invoices("globex") == ["acme-support-v1-2026-11", "globex-v2-2026-11"]
    assert store.list_invoices("nobody") == []


# -- key hash collisions --------------------------------------------------------------------------


@pytest.mark.parametrize("hash_format", [">h", ">b"])
def test_keys_whose_hashes_collide_are_all_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hash_format: str
) -> None:
    # Shrink the key hash to 16 or 8 bits: collisions become certain, and some keys must probe
    # past their first hash (and, at 8 bits, past their second).
    import struct

    import raas.ledger.sqlite as sqlite_module

    monkeypatch.setattr(sqlite_module, "_KEY_HASH_FORMAT", struct.Struct(hash_format))
    count = 600 if hash_format == ">h" else 40
    events = [event(n, "acme" if n % 3 else "globex") for n in range(count)]
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        for start in range(0, count, 50):
            ledger.append(events[start : start + 50])
        receipt = ledger.append([*events[::7], event(count + 1)])
        assert (receipt.stored, receipt.duplicates) == (1, len(events[::7]))
        for original in events:
            found = ledger.get(original.tenant, original.source, original.id)
            assert found is not None and found.event == original
        assert ledger.get("acme", "urn:raas:test", "never-sent") is None
        assert ledger.check().problem is None
        connection = sqlite3.connect(tmp_path / "ledger.db")
        stored = connection.execute(
            "SELECT json_extract(CAST(entry AS TEXT), '$.tenant'),"
            " json_extract(CAST(entry AS TEXT), '$.source'),"
            " json_extract(CAST(entry AS TEXT), '$.id'), key_hash FROM events"
        ).fetchall()
        connection.close()
        probed = [
            row for row in stored if row[3] != sqlite_module._key_hash(row[0], row[1], row[2])
        ]
        assert probed, "no key had to move past its first hash"
        assert ledger.head("acme") + ledger.head("globex") == count + 1

"""`SqliteLedger.check` (behind `raas ledger check`) finds any change made to the file behind the
ledger's back, and names where: tenant, log index, seq, and what differs.

What would break: an edited entry, disclosure, leaf hash, frontier, customer row, seq or
checkpoint that the check passes over (tampering that only an auditor with a bundle would see,
or nobody), or a clean ledger reported as damaged.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from raas.core.events import Csat, Event, Message, make_event
from raas.ledger import SqliteLedger
from raas.ledger.keys import SignerKey
from raas.ledger.merkle import MerkleTree

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SIGNER = SignerKey("helpdesk-ai-log", bytes(range(32)))
STRANGER = SignerKey("helpdesk-ai-log", bytes(range(5, 37)))
ACME = 1 << 40  # the position of acme's first entry: acme is the first tenant the ledger met


def event(number: int, tenant: str) -> Event:
    return make_event(
        Message(role="customer", text=f"my order {number} is late")
        if number % 2
        else Csat(score=1 + number % 5),
        id=f"event-{number}",
        source="urn:raas:test",
        time=START + timedelta(seconds=number),
        tenant=tenant,
        customer=f"customer-{number % 3}",
        conversation=f"conversation-{number // 4}",
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """A ledger of two tenants, acme (the first) with checkpoints at sizes 13 and 17."""
    database = tmp_path / "ledger.db"
    with SqliteLedger(database) as ledger:
        ledger.append([event(n, "globex" if n % 4 == 3 else "acme") for n in range(10)])
        ledger.append([event(n, "acme") for n in range(10, 15)])
        ledger.sign_checkpoint("acme", SIGNER)
        ledger.append([event(n, "acme") for n in range(15, 19)])
        ledger.sign_checkpoint("acme", SIGNER)
        ledger.append([event(n, "globex") for n in range(19, 23)])
    return database


def tamper(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    connection = sqlite3.connect(path)
    for statement, parameters in statements:
        connection.execute(statement, parameters)
    connection.commit()
    connection.close()


def value(path: Path, query: str, parameters: tuple[object, ...] = ()) -> object:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(query, parameters).fetchone()[0]
    finally:
        connection.close()


def check(path: Path, verifiers: tuple[SignerKey, ...] = ()) -> str:
    with SqliteLedger(path) as ledger:
        found = ledger.check([signer.verifier() for signer in verifiers])
    assert found.problem is not None, "the check found nothing"
    return str(found.problem)


def test_a_ledger_nobody_touched_passes(path: Path) -> None:
    with SqliteLedger(path) as ledger:
        found = ledger.check([SIGNER.verifier()])
    assert found.problem is None and found.ok
    assert (found.tenants, found.entries, found.checkpoints) == (2, 23, 2)
    assert found.signatures_verified == 2


def byte_flipped(blob: bytes, offset: int) -> bytes:
    changed = bytearray(blob)
    changed[offset] ^= 0x01
    return bytes(changed)


@pytest.mark.parametrize("offset", [0, 30, 100, -3])
def test_an_edited_entry_is_found_at_its_index(path: Path, offset: int) -> None:
    entry = value(path, "SELECT entry FROM events WHERE position = ?", (ACME + 5,))
    assert isinstance(entry, bytes)
    seq = value(path, "SELECT seq FROM events WHERE position = ?", (ACME + 5,))
    tamper(
        path,
        (
            "UPDATE events SET entry = ? WHERE position = ?",
            (byte_flipped(entry, offset % len(entry)), ACME + 5),
        ),
    )
    assert check(path).startswith(f"tenant 'acme', log index 5, seq {seq}: the entry hashes to")


def test_an_edited_disclosure_is_named(path: Path) -> None:
    disclosures = value(path, "SELECT disclosures FROM events WHERE position = ?", (ACME + 1,))
    assert isinstance(disclosures, bytes) and b"is late" in disclosures
    tamper(
        path,
        (
            "UPDATE events SET disclosures = ? WHERE position = ?",
            (disclosures.replace(b"is late", b"is fine"), ACME + 1),
        ),
    )
    problem = check(path)
    assert "tenant 'acme', log index 1" in problem and "'data.text'" in problem


def test_a_removed_disclosure_is_found_by_remaking_the_entry(path: Path) -> None:
    # Dropping a disclosure is redaction in a bundle, but the ledger must keep every value.
    tamper(path, ("UPDATE events SET disclosures = X'7b7d' WHERE position = ?", (ACME + 1,)))
    assert "not what this ledger makes" in check(path)


def test_an_edited_leaf_hash_is_found(path: Path) -> None:
    hashes = value(path, "SELECT hashes FROM leaves WHERE position = ?", (ACME,))
    assert isinstance(hashes, bytes)
    tamper(
        path,
        ("UPDATE leaves SET hashes = ? WHERE position = ?", (byte_flipped(hashes, 32 * 7), ACME)),
    )
    assert "log index 7" in check(path) and "stored leaf hash" in check(path)


def test_a_deleted_event_is_found(path: Path) -> None:
    tamper(path, ("DELETE FROM events WHERE position = ?", (ACME + 9,)))
    assert check(path).startswith("tenant 'acme', log index 9: no entry is stored at log index 9")


def test_a_deleted_last_event_is_found(path: Path) -> None:
    size = value(path, "SELECT size FROM logs WHERE tenant = 'acme'")
    assert isinstance(size, int)
    tamper(path, ("DELETE FROM events WHERE position = ?", (ACME + size - 1,)))
    assert f"records {size} entries but only {size - 1} are stored" in check(path)


def test_an_edited_frontier_is_found(path: Path) -> None:
    frontier = value(path, "SELECT frontier FROM logs WHERE tenant = 'acme'")
    assert isinstance(frontier, bytes)
    tamper(
        path,
        ("UPDATE logs SET frontier = ? WHERE tenant = 'acme'", (byte_flipped(frontier, 20),)),
    )
    assert "stored frontier does not match" in check(path)


def test_a_repeated_seq_is_found(path: Path) -> None:
    tamper(path, ("UPDATE events SET seq = 1 WHERE position = ?", (ACME + 3,)))
    assert "seq 1 is repeated" in check(path)


def test_an_event_moved_to_another_customer_is_found(path: Path) -> None:
    tamper(
        path,
        (
            "UPDATE customer_entries SET customer = 'customer-9'"
            " WHERE tenant_number = 1 AND customer = 'customer-1'",
            (),
        ),
    )
    assert "customer rows list it under 'customer-9'" in check(path)


def test_an_event_moved_in_time_for_settlement_is_found(path: Path) -> None:
    places = value(
        path,
        "SELECT places FROM customer_entries WHERE tenant_number = 1 ORDER BY first_log_index",
    )
    assert isinstance(places, bytes)
    moved = places[:8] + (int.from_bytes(places[8:16], "big") + 1).to_bytes(8, "big") + places[16:]
    tamper(path, ("UPDATE customer_entries SET places = ? WHERE places = ?", (moved, places)))
    assert "the customer rows place the entry at another time" in check(path)


def test_a_checkpoint_whose_root_changed_is_found(path: Path) -> None:
    tamper(path, ("UPDATE checkpoints SET root = zeroblob(32) WHERE size = 13", ()))
    problem = check(path)
    assert "checkpoint at size 13 holds root" in problem and "log index 12" in problem


def test_a_rewritten_log_is_found_by_its_checkpoints(path: Path) -> None:
    # Entry 2 replaced, and leaves and frontier made to agree with the new entry: only the
    # checkpoints signed before remember the old log.
    with SqliteLedger(path) as ledger:
        rows = list(ledger.iter_events("acme"))
    replacement = event(2, "acme")
    entry = rows[1].entry.replace(b'"event-1"', b'"event-1b"')
    from raas.core.canonical import leaf_hash

    leaves = [row.leaf_hash for row in rows]
    leaves[1] = leaf_hash(entry)
    tamper(
        path,
        ("UPDATE events SET entry = ? WHERE position = ?", (entry, ACME + 1)),
        ("UPDATE leaves SET hashes = ? WHERE position = ?", (b"".join(leaves), ACME)),
        (
            "UPDATE logs SET frontier = ? WHERE tenant = 'acme'",
            (MerkleTree(leaves).frontier().to_bytes(),),
        ),
    )
    assert replacement.id == "event-2"
    problem = check(path)
    assert "tenant 'acme', log index 1" in problem


def test_checkpoint_signatures_are_checked_with_the_keys_given(path: Path) -> None:
    note = value(path, "SELECT note FROM checkpoints WHERE size = 13")
    assert isinstance(note, str)
    signature_line = note.rstrip("\n").rsplit("\n", 1)[1]
    forged = note.replace(signature_line, signature_line[:-6] + "AAAAA=")
    tamper(path, ("UPDATE checkpoints SET note = ? WHERE size = 13", (forged,)))

    with SqliteLedger(path) as ledger:
        assert ledger.check().problem is None  # without keys, only what the note states
    assert "checkpoint at size 13" in check(path, (SIGNER,))


def test_a_checkpoint_by_an_unknown_key_is_refused(path: Path) -> None:
    assert "no signature by a known key" in check(path, (STRANGER,))


def test_a_note_that_states_another_size_is_found(path: Path) -> None:
    note = value(path, "SELECT note FROM checkpoints WHERE size = 13")
    assert isinstance(note, str)
    tamper(
        path,
        ("UPDATE checkpoints SET note = ? WHERE size = 13", (note.replace("\n13\n", "\n12\n"),)),
    )
    assert "does not state its size" in check(path)


def test_rows_outside_every_log_are_found(path: Path) -> None:
    tamper(
        path,
        (
            "INSERT INTO events SELECT position + (5 << 40), seq + 1000, key_hash + 1,"
            " entry, disclosures FROM events WHERE position = ?",
            (ACME,),
        ),
    )
    assert check(path).startswith("the ledger: 24 event rows are stored but the logs hold 23")


def test_a_key_pair_cut_off_the_key_blocks_is_found(path: Path) -> None:
    tamper(path, ("UPDATE key_blocks SET pairs = substr(pairs, 1, length(pairs) - 16)", ()))
    assert (
        check(path) == "the ledger: the key blocks hold 352 bytes, not 16 for each of the 23 seqs"
    )


def test_a_key_pair_that_names_another_position_is_found(path: Path) -> None:
    # seq 3's pair (bytes 32-47): its position (the last 8) moved one entry on.
    pairs = value(path, "SELECT pairs FROM key_blocks WHERE block = 0")
    assert isinstance(pairs, bytes)
    position = int.from_bytes(pairs[40:48], "little")
    changed = pairs[:40] + (position + 1).to_bytes(8, "little") + pairs[48:]
    tamper(path, ("UPDATE key_blocks SET pairs = ? WHERE block = 0", (changed,)))
    assert check(path).endswith(
        "seq 3: the key blocks hold another key hash or position at its seq"
    )


def test_a_key_hash_stored_twice_is_found(path: Path) -> None:
    pairs = value(path, "SELECT pairs FROM key_blocks WHERE block = 0")
    assert isinstance(pairs, bytes)
    changed = pairs[:16] + pairs[:8] + pairs[24:]  # seq 2's hash replaced by seq 1's
    tamper(path, ("UPDATE key_blocks SET pairs = ? WHERE block = 0", (changed,)))
    assert check(path) == "the ledger: the key blocks hold 1 key hashes more than once"

"""Append-only, checked offline: a consistency proof file holds two signed checkpoints and the proof
that the newer log extends the older. What would break: a log rewritten under an old checkpoint
(an event changed, dropped or reordered) that still proves consistent, or a proof accepted
between two different logs or under a key nobody pinned."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from evidence_workloads import (
    OTHER_SIGNER,
    VERIFIER,
    FakeEvidenceStore,
    every_outcome,
)

from factories import NOVEMBER, conversation
from raas.audit.bundle import BundleError
from raas.audit.consistency import ConsistencyProof, decode_consistency, encode_consistency
from raas.audit.verify import verify_consistency_proof
from raas.core.events import Event
from raas.ledger.evidence import EvidenceError, export_consistency

LATER = conversation("c-december", customer="u-later", start=NOVEMBER + timedelta(days=31))


def grown(first: list[Event], then: list[Event]) -> tuple[FakeEvidenceStore, int, int]:
    """A log holding `first`, checkpointed, then `then`, checkpointed again."""
    store = FakeEvidenceStore()
    store.append(first)
    old_size = store.ledger.head("acme")
    store.sign("acme")
    store.append(then)
    store.sign("acme")
    return store, old_size, store.ledger.head("acme")


def check(item: ConsistencyProof) -> list[str]:
    return list(verify_consistency_proof(item.old, item.new, item.proof, [VERIFIER]).lines())


def test_a_grown_log_proves_it_extends_its_old_checkpoint() -> None:
    store, old_size, new_size = grown(every_outcome(), LATER)
    item = export_consistency(store, "acme", old_size, new_size)
    report = verify_consistency_proof(item.old, item.new, item.proof, [VERIFIER])
    assert list(report.lines()) == []
    assert report.ok and (report.old_size, report.new_size) == (old_size, new_size)
    assert old_size < new_size and item.proof


def test_equal_sizes_prove_with_an_empty_proof() -> None:
    store, old_size, _ = grown(every_outcome(), [])
    item = export_consistency(store, "acme", old_size, old_size)
    assert item.proof == () and check(item) == []


@pytest.mark.parametrize("position", [0, 7, 30, -1])
def test_a_rewritten_log_fails_the_consistency_check(position: int) -> None:
    """The vendor changes one old event (here: turns an AI answer into a confirmation), appends
    more, signs, and proves consistency from the old size of the rewritten log."""
    original_events = every_outcome()
    original, old_size, new_size = grown(original_events, LATER)
    old_note = original.checkpoint_at("acme", old_size)
    assert old_note is not None

    rewritten_events = list(original_events)
    target = rewritten_events[position]
    rewritten_events[position] = msgspec.structs.replace(target, id=target.id + "-rewritten")
    rewritten, _, rewritten_size = grown(rewritten_events, LATER)
    assert rewritten_size == new_size
    forged = export_consistency(rewritten, "acme", old_size, new_size)
    assert check(forged) == []  # consistent with its own rewritten past...
    report = verify_consistency_proof(old_note, forged.new, forged.proof, [VERIFIER])
    [finding] = report.lines()  # ...but not with the checkpoint the auditor kept
    assert not report.ok
    assert finding.startswith(
        f"consistency proof: the log at size {new_size} does not extend the log at size "
        f"{old_size}: consistency proof does not lead to the old root"
    )


def test_a_log_that_dropped_an_entry_fails() -> None:
    events = every_outcome()
    original, old_size, _ = grown(events, LATER)
    old_note = original.checkpoint_at("acme", old_size)
    assert old_note is not None
    shorter, _, _ = grown(events[:10] + events[11:] + LATER[:1], LATER[1:])
    forged = export_consistency(shorter, "acme", old_size, shorter.ledger.head("acme"))
    assert not verify_consistency_proof(old_note, forged.new, forged.proof, [VERIFIER]).ok


def test_checkpoints_of_two_logs_or_unknown_keys_fail() -> None:
    store, old_size, new_size = grown(every_outcome(), LATER)
    item = export_consistency(store, "acme", old_size, new_size)
    other = FakeEvidenceStore()
    other.ledger = store.ledger
    elsewhere = other.sign("acme", origin="example.com/raas/globex")
    assert check(msgspec.structs.replace(item, new=elsewhere)) == [
        "checkpoints: are of two logs: the old one of 'example.com/raas/acme', "
        "the new one of 'example.com/raas/globex'"
    ]
    unknown = other.sign("acme", signer=OTHER_SIGNER)
    [finding] = check(msgspec.structs.replace(item, new=unknown))
    assert finding.startswith("new checkpoint: no signature by a known key")
    swapped = msgspec.structs.replace(item, old=item.new, new=item.old)
    [finding] = check(swapped)
    assert finding == (
        f"consistency proof: the log at size {old_size} does not extend the log at size "
        f"{new_size}: old size {new_size} is larger than new size {old_size}"
    )


def test_the_file_reads_back_as_written_and_refuses_other_files() -> None:
    store, old_size, new_size = grown(every_outcome(), LATER)
    item = export_consistency(store, "acme", old_size, new_size)
    data = encode_consistency(item)
    assert decode_consistency(data) == item
    assert data == encode_consistency(export_consistency(store, "acme", old_size, new_size))
    with pytest.raises(BundleError, match="not a consistency proof"):
        decode_consistency(b'{"format": "raas-receipt"}')
    with pytest.raises(BundleError, match=r"proof\[0\] is not valid base64"):
        decode_consistency(data.replace(b'"proof": [\n    "', b'"proof": [\n    "!', 1))


def test_export_needs_signed_checkpoints_at_both_sizes() -> None:
    store, old_size, new_size = grown(every_outcome(), LATER)
    with pytest.raises(EvidenceError, match=f"no checkpoint signed at size {old_size - 1}"):
        export_consistency(store, "acme", old_size - 1, new_size)
    with pytest.raises(EvidenceError, match="must be between 0 and new size"):
        export_consistency(store, "acme", new_size, old_size)


def test_a_proof_file_naming_another_tree_at_the_old_size_is_a_fork() -> None:
    """The auditor kept the old checkpoint (from last month's bundle); the vendor's file names its
    own, rewritten, old checkpoint at the same size: two signed trees at one size."""
    events = every_outcome()
    original, old_size, new_size = grown(events, LATER)
    kept = original.checkpoint_at("acme", old_size)
    assert kept is not None
    rewritten_events = [*events[:5], msgspec.structs.replace(events[5], id="x"), *events[6:]]
    rewritten, _, _ = grown(rewritten_events, LATER)
    forged = export_consistency(rewritten, "acme", old_size, new_size)
    report = verify_consistency_proof(
        kept, forged.new, forged.proof, [VERIFIER], proof_old_note=forged.old
    )
    [finding] = report.lines()
    assert finding.startswith(
        f"old checkpoint: the log signed two different trees at size {old_size}"
    )
    assert finding.endswith("the log was rewritten (forked)")
    # A proof from another size than the checkpoint the auditor holds is named as such.
    earlier = FakeEvidenceStore()
    earlier.append(events[:9])
    older_note = earlier.sign("acme")
    report = verify_consistency_proof(
        older_note, forged.new, forged.proof, [VERIFIER], proof_old_note=forged.old
    )
    assert list(report.lines()) == [
        f"consistency proof: is from size {old_size}, but the old checkpoint is at size 9"
    ]
    # The same file with the checkpoint the auditor holds verifies when the log is honest.
    honest = export_consistency(original, "acme", old_size, new_size)
    assert verify_consistency_proof(
        kept, honest.new, honest.proof, [VERIFIER], proof_old_note=honest.old
    ).ok

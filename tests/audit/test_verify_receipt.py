"""Receipts: the entries behind one invoice line or one episode, each a C2SP tlog-proof under the
invoice's checkpoint. What would break: a receipt that misses an entry of its episodes, one that
other tlog-proof readers cannot parse, or a tampered receipt that still verifies."""

from __future__ import annotations

import base64

import msgspec
import pytest
from evidence_workloads import (
    CONTRACT_TEXT,
    INVOICE_ID,
    OTHER_SIGNER,
    VERIFIER,
    FakeEvidenceStore,
    hand_written_store,
)

from raas.audit.bundle import BundleError
from raas.audit.receipt import (
    TLOG_PROOF_HEADER,
    Receipt,
    TlogProof,
    decode_receipt,
    encode_receipt,
    parse_tlog_proof,
)
from raas.audit.verify import decode_event as decode_entry
from raas.audit.verify import verify_receipt
from raas.core.invoice import invoice_from_json
from raas.ledger.checkpoint import open_checkpoint
from raas.ledger.evidence import EvidenceError, export_receipt


@pytest.fixture(scope="module")
def store() -> FakeEvidenceStore:
    return hand_written_store()


@pytest.fixture(scope="module")
def line_receipt(store: FakeEvidenceStore) -> Receipt:
    return export_receipt(store, INVOICE_ID, CONTRACT_TEXT, line=1)


def test_a_line_receipt_covers_every_entry_of_the_lines_episodes(
    store: FakeEvidenceStore, line_receipt: Receipt
) -> None:
    invoice = invoice_from_json(store.invoices[INVOICE_ID])
    assert (line_receipt.invoice, line_receipt.line, line_receipt.outcome) == (
        INVOICE_ID,
        1,
        "ai_resolution",
    )
    assert line_receipt.episodes == invoice.lines[0].episodes
    conversations = {
        decode_entry(proof.extra).conversation
        for proof in line_receipt.proofs
        if proof.extra is not None
    }
    assert conversations == {"c-confirmed", "c-assumed"}
    # Every event of those two conversations (the customers have no others).
    expected = [
        row.log_index
        for row in store.ledger.iter_events("acme")
        if decode_entry(row.entry).conversation in conversations
    ]
    assert [proof.index for proof in line_receipt.proofs] == expected
    report = verify_receipt(line_receipt, [VERIFIER])
    assert list(report.lines()) == []
    assert report.ok and report.proofs_checked == len(expected)
    assert report.size == store.ledger.head("acme")


def test_an_episode_receipt_names_its_line_or_none(store: FakeEvidenceStore) -> None:
    handoff = export_receipt(store, INVOICE_ID, CONTRACT_TEXT, episode="c-handoff#refund")
    assert (handoff.line, handoff.outcome, handoff.episodes) == (
        2,
        "handoff",
        ("c-handoff#refund",),
    )
    assert verify_receipt(handoff, [VERIFIER]).ok
    # A reopened episode is billed nowhere, but its recording can still be proven.
    reopened = export_receipt(store, INVOICE_ID, CONTRACT_TEXT, episode="c-reopened-1#billing")
    assert (reopened.line, reopened.outcome) == (None, None)
    conversations = {decode_entry(proof.extra or b"").conversation for proof in reopened.proofs}
    assert conversations == {"c-reopened-1", "c-reopened-2"}
    assert verify_receipt(reopened, [VERIFIER]).ok


def test_each_proof_is_a_c2sp_tlog_proof(line_receipt: Receipt) -> None:
    proof = line_receipt.proofs[0]
    text = proof.to_text()
    lines = text.split("\n")
    assert lines[0] == TLOG_PROOF_HEADER == "c2sp.org/tlog-proof@v1"
    assert lines[1] == f"extra {base64.b64encode(proof.extra or b'').decode()}"
    assert lines[2] == f"index {proof.index}"
    assert lines[3 : 3 + len(proof.hashes)] == [base64.b64encode(h).decode() for h in proof.hashes]
    assert lines[3 + len(proof.hashes)] == ""
    assert text.endswith(proof.checkpoint)
    open_checkpoint(text.partition("\n\n")[2], [VERIFIER])
    assert parse_tlog_proof(text) == proof


def test_a_proof_without_extra_data_parses_as_the_spec_allows() -> None:
    node = base64.b64encode(bytes(range(32))).decode()
    text = f"{TLOG_PROOF_HEADER}\nindex 73894\n{node}\n{node}\n\nexample.com/log\n5\nx\n"
    proof = parse_tlog_proof(text)
    assert (proof.index, proof.extra, len(proof.hashes)) == (73894, None, 2)
    assert proof.checkpoint == "example.com/log\n5\nx\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("c2sp.org/tlog-proof@v2\nindex 1\n\nnote\n", "the first line is"),
        (f"{TLOG_PROOF_HEADER}\nindex 01\n\nnote\n", "leading zeros"),
        (f"{TLOG_PROOF_HEADER}\nindex -1\n\nnote\n", "not a decimal"),
        (f"{TLOG_PROOF_HEADER}\nindex 1\nAAF=\n\nnote\n", "proof hash #0 is not canonical"),
        (f"{TLOG_PROOF_HEADER}\nextra AA\nindex 1\n\nnote\n", "the extra data is not valid"),
        (f"{TLOG_PROOF_HEADER}\nindex 1\nnote\n", "no empty line"),
        (f"{TLOG_PROOF_HEADER}\n\nnote\n", "line 2 is not 'index <number>'"),
    ],
)
def test_malformed_tlog_proofs_are_refused(text: str, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        parse_tlog_proof(text)


def test_a_receipt_reads_back_as_written(line_receipt: Receipt, store: FakeEvidenceStore) -> None:
    data = encode_receipt(line_receipt)
    assert decode_receipt(data) == line_receipt
    assert data == encode_receipt(export_receipt(store, INVOICE_ID, CONTRACT_TEXT, line=1))
    with pytest.raises(BundleError, match="not a receipt"):
        decode_receipt(b'{"format": "raas-evidence-bundle"}')
    with pytest.raises(BundleError, match="receipt version 9"):
        decode_receipt(data.replace(b'"version": 1', b'"version": 9', 1))


def _replace_proof(receipt: Receipt, position: int, **changes: object) -> Receipt:
    proofs = list(receipt.proofs)
    proofs[position] = msgspec.structs.replace(proofs[position], **changes)
    return msgspec.structs.replace(receipt, proofs=tuple(proofs))


def test_a_tampered_receipt_fails_by_entry(line_receipt: Receipt) -> None:
    proof = line_receipt.proofs[2]
    changed = (proof.extra or b"").replace(b'"acme"', b'"acmf"', 1)
    report = verify_receipt(_replace_proof(line_receipt, 2, extra=changed), [VERIFIER])
    [finding] = report.lines()
    assert finding.startswith(f"entry {proof.index}: inclusion proof fails")
    report = verify_receipt(
        _replace_proof(line_receipt, 2, hashes=(bytes(32), *proof.hashes[1:])), [VERIFIER]
    )
    assert next(report.lines()).startswith(f"entry {proof.index}: inclusion proof fails")
    report = verify_receipt(_replace_proof(line_receipt, 2, extra=None), [VERIFIER])
    assert list(report.lines()) == [
        f"entry {proof.index}: has no extra data: the entry is needed to compute its leaf hash"
    ]


def test_a_receipt_must_carry_one_checkpoint_signed_by_a_known_key(
    line_receipt: Receipt, store: FakeEvidenceStore
) -> None:
    other = FakeEvidenceStore()
    other.ledger = store.ledger
    note = other.sign("acme", signer=OTHER_SIGNER)
    mixed = _replace_proof(line_receipt, 1, checkpoint=note)
    index = line_receipt.proofs[1].index
    assert list(verify_receipt(mixed, [VERIFIER]).lines()) == [
        f"entry {index}: proofs[1] carries another checkpoint than proofs[0]"
    ]
    foreign = msgspec.structs.replace(
        line_receipt,
        proofs=tuple(msgspec.structs.replace(p, checkpoint=note) for p in line_receipt.proofs),
    )
    [finding] = verify_receipt(foreign, [VERIFIER]).lines()
    assert finding.startswith("checkpoint: no signature by a known key")


def test_a_receipt_claiming_an_episode_its_entries_do_not_name_fails(line_receipt: Receipt) -> None:
    claimed = msgspec.structs.replace(line_receipt, episodes=(*line_receipt.episodes, "c-x#y"))
    assert list(verify_receipt(claimed, [VERIFIER]).lines()) == [
        "episode c-x#y: no entry of the receipt belongs to it (conversation#intent)"
    ]
    empty = msgspec.structs.replace(line_receipt, proofs=())
    assert list(verify_receipt(empty, [VERIFIER]).lines()) == ["receipt: holds no proofs"]


def test_receipts_are_refused_for_lines_and_episodes_that_are_not_there(
    store: FakeEvidenceStore,
) -> None:
    with pytest.raises(EvidenceError, match="has lines 1 to 2, there is no line 3"):
        export_receipt(store, INVOICE_ID, CONTRACT_TEXT, line=3)
    with pytest.raises(EvidenceError, match="give exactly one"):
        export_receipt(store, INVOICE_ID, CONTRACT_TEXT, line=1, episode="c-handoff#refund")
    with pytest.raises(EvidenceError, match="'c-nowhere#refund'"):
        export_receipt(store, INVOICE_ID, CONTRACT_TEXT, episode="c-nowhere#refund")


def test_a_tlog_proof_round_trips() -> None:
    proof = TlogProof(index=0, hashes=(), checkpoint="o\n0\nx\n\n— k y\n", extra=b"{}")
    assert parse_tlog_proof(proof.to_text()) == proof

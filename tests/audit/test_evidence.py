"""Exporting evidence from a store: the bundle holds the invoice's customers whole (or the whole
log), redaction drops personal data and keeps every proof, and an export that cannot be right is
refused by name. What would break: a bundle missing an entry the auditor needs, personal data
leaking into a redacted bundle, or evidence exported for the wrong contract or checkpoint."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
import pytest
from evidence_workloads import (
    CONTRACT_TEXT,
    INVOICE_ID,
    SIGNER,
    VERIFIER,
    FakeEvidenceStore,
    every_outcome,
    hand_written_store,
)

from raas.audit.bundle import Bundle, encode_bundle
from raas.audit.verify import decode_event, verify_bundle
from raas.core.commitments import decode_disclosures
from raas.core.invoice import invoice_from_json, invoice_json
from raas.ledger.evidence import EvidenceError, export_bundle
from raas.ledger.sqlite import SqliteLedger
from raas.ledger.store import MemoryLedger


@pytest.fixture(scope="module")
def store() -> FakeEvidenceStore:
    return hand_written_store()


@pytest.fixture(scope="module")
def bundle(store: FakeEvidenceStore) -> Bundle:
    return export_bundle(store, INVOICE_ID, CONTRACT_TEXT)


def test_a_bundle_holds_every_entry_of_the_invoice_customers_and_no_other(
    store: FakeEvidenceStore, bundle: Bundle
) -> None:
    billed = {"u-confirmed", "u-assumed", "u-handoff"}
    expected = [
        row.log_index
        for row in store.ledger.iter_events("acme")
        if decode_event(row.entry).customer in billed
    ]
    assert [item.index for item in bundle.entries] == expected
    assert bundle.invoice == store.invoices[INVOICE_ID]
    assert bundle.checkpoint == store.checkpoint_at("acme", store.ledger.head("acme"))
    assert bundle.contract == CONTRACT_TEXT
    complete = export_bundle(store, INVOICE_ID, CONTRACT_TEXT, scope="log")
    assert [item.index for item in complete.entries] == list(range(store.ledger.head("acme")))


def test_disclosures_open_personal_fields_and_redaction_drops_them_only(
    store: FakeEvidenceStore, bundle: Bundle
) -> None:
    messages = [item for item in bundle.entries if b'"type":"dev.raas.message"' in item.entry]
    assert messages and all(item.disclosures is not None for item in messages)
    assert all(
        item.disclosures is None for item in bundle.entries if item not in messages
    )  # nothing to disclose: the field is left out
    for item in messages:
        assert b'"text":"sha256:' in item.entry  # the entry holds the commitment only
        [(path, disclosure)] = decode_disclosures(item.disclosures or b"").items()
        assert path == "data.text" and disclosure.value
    report = verify_bundle(bundle, [VERIFIER])
    assert report.ok and report.disclosures_checked == len(messages)

    redacted = export_bundle(store, INVOICE_ID, CONTRACT_TEXT, redact=True)
    assert [(item.index, item.entry, item.proof) for item in redacted.entries] == [
        (item.index, item.entry, item.proof) for item in bundle.entries
    ]
    assert all(item.disclosures is None for item in redacted.entries)
    data = encode_bundle(redacted)
    assert b"I need help with" not in data and b"disclosures" not in data
    assert b"I need help with" in b"".join(
        base64.b64decode(item["disclosures"])
        for item in json.loads(encode_bundle(bundle))["entries"]
        if "disclosures" in item
    )
    report = verify_bundle(redacted, [VERIFIER])
    assert report.ok and report.disclosures_checked == 0
    assert report.line_totals == verify_bundle(bundle, [VERIFIER]).line_totals


def test_a_disclosure_that_does_not_open_its_commitment_fails_by_entry(bundle: Bundle) -> None:
    position, item = next(
        (position, item) for position, item in enumerate(bundle.entries) if item.disclosures
    )
    lied = (item.disclosures or b"").replace(b"I need help", b"I want help")
    assert lied != item.disclosures
    entries = list(bundle.entries)
    entries[position] = msgspec.structs.replace(item, disclosures=lied)
    report = verify_bundle(msgspec.structs.replace(bundle, entries=tuple(entries)), [VERIFIER])
    [finding] = report.lines()
    assert finding.startswith(
        f"entry {item.index}: disclosures do not open the entry's commitments: "
        "disclosure of field 'data.text': the value and salt do not hash"
    )


def test_exports_that_cannot_be_right_are_refused(store: FakeEvidenceStore) -> None:
    with pytest.raises(EvidenceError, match="no invoice 'acme-support-v1-2026-10'"):
        export_bundle(store, "acme-support-v1-2026-10", CONTRACT_TEXT)
    other_version = CONTRACT_TEXT.replace("version: 1 ", "version: 2 ")
    with pytest.raises(EvidenceError, match="the contract file is acme-support v2"):
        export_bundle(store, INVOICE_ID, other_version)

    unsigned = FakeEvidenceStore()
    unsigned.ledger = store.ledger
    unsigned.invoices = store.invoices
    with pytest.raises(EvidenceError, match="holds no checkpoint signed at that size"):
        export_bundle(unsigned, INVOICE_ID, CONTRACT_TEXT)

    # An invoice billing an episode the ledger does not hold: the two disagree.
    invoice = invoice_from_json(store.invoices[INVOICE_ID])
    line = invoice.lines[0]
    forged = msgspec.structs.replace(line, episodes=(*line.episodes, "c-ghost#refund"))
    lying = FakeEvidenceStore()
    lying.ledger, lying.checkpoints = store.ledger, store.checkpoints
    lying.invoices = {
        INVOICE_ID: invoice_json(msgspec.structs.replace(invoice, lines=(forged, line)))
    }
    with pytest.raises(
        EvidenceError, match=r"bills 1 episode\(s\) that are not in .*'c-ghost#refund'"
    ):
        export_bundle(lying, INVOICE_ID, CONTRACT_TEXT)


def test_the_bundle_reads_the_log_at_the_invoice_size_not_as_it_is_now() -> None:
    store = hand_written_store()
    before = encode_bundle(export_bundle(store, INVOICE_ID, CONTRACT_TEXT))
    late = [
        msgspec.structs.replace(event, id=event.id + "-late")
        for event in every_outcome()
        if event.customer == "u-assumed"
    ]
    store.append(late)  # arrives after the invoice was issued: an adjustment's business
    assert encode_bundle(export_bundle(store, INVOICE_ID, CONTRACT_TEXT)) == before


def test_the_stores_export_the_same_bundle_as_the_test_fake(tmp_path: Path) -> None:
    """The fake the other tests use agrees with the real stores, byte for byte."""
    fake = hand_written_store()
    expected = encode_bundle(export_bundle(fake, INVOICE_ID, CONTRACT_TEXT))
    memory = MemoryLedger()
    with SqliteLedger(tmp_path / "ledger.db", vendor="example.com") as sqlite:
        for store in (memory, sqlite):
            store.append(every_outcome())
            store.sign_checkpoint("acme", SIGNER, origin="example.com/raas/acme")
            store.store_invoice(INVOICE_ID, "acme", fake.invoices[INVOICE_ID])
        assert encode_bundle(export_bundle(memory, INVOICE_ID, CONTRACT_TEXT)) == expected
        from_sqlite = export_bundle(sqlite, INVOICE_ID, CONTRACT_TEXT)
    # SQLite drew its own commitment key: the message entries differ, nothing else does.
    assert [item.index for item in from_sqlite.entries] == [
        item.index for item in export_bundle(fake, INVOICE_ID, CONTRACT_TEXT).entries
    ]
    assert verify_bundle(from_sqlite, [VERIFIER]).ok

"""Tamper evidence, byte by byte: every single-byte change to a bundle's entries, proofs, indexes,
disclosures, checkpoint, signatures or invoice makes the auditor fail, and a change that leaves
the file unreadable is refused as unusable input, never accepted. What would break: one byte the
proofs or the re-derivation do not cover, i.e. a place where a vendor could change the bill unseen.

Two sweeps over bundles of the whole log (scope "log", where every invoice field is re-derived):
every position of every byte field of a small bundle (decoded), and a hypothesis sample of
positions and values over the raw file of a larger one. What may change and still verify is
exactly what `raas.audit.verify` documents as taken as stated: the invoice's `as_of` when it
bills the same, and the contract's text (whose terms the auditor compares with its own copy).
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from datetime import timedelta
from functools import cache

import msgspec
import pytest
from evidence_workloads import (
    CONTRACT_TEXT,
    INVOICE_ID,
    VERIFIER,
    FakeEvidenceStore,
    simulated_store,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import NOVEMBER, conversation
from raas.audit.bundle import Bundle, BundleError, decode_bundle, encode_bundle
from raas.audit.verify import verify_bundle
from raas.core.invoice import invoice_from_json
from raas.ledger.checkpoint import SIGNATURE_LINE_PREFIX
from raas.ledger.evidence import export_bundle


@pytest.fixture(scope="module")
def small() -> Bundle:
    store = FakeEvidenceStore()
    store.append(conversation("c-1", customer="u-1", confirm=True))
    store.append(conversation("c-2", customer="u-2", handoff="with", start=NOVEMBER + timedelta(1)))
    store.settle()
    bundle = export_bundle(store, INVOICE_ID, CONTRACT_TEXT, scope="log")
    assert verify_bundle(bundle, [VERIFIER]).ok
    return bundle


def _only_as_of_differs(original: Bundle, mutated: Bundle) -> bool:
    """True when the mutated bundle differs from the original only in its invoice's `as_of`."""
    try:
        invoice = invoice_from_json(mutated.invoice)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return False
    stated = invoice_from_json(original.invoice)
    same = msgspec.structs.replace(invoice, as_of=stated.as_of)
    return (
        same == stated
        and invoice.as_of >= stated.period_end
        and msgspec.structs.replace(mutated, invoice=original.invoice) == original
    )


def _changed(original: int, rng: random.Random) -> int:
    return (original + rng.randrange(1, 256)) % 256


def _mutations(bundle: Bundle) -> Iterator[tuple[str, Bundle]]:
    """Every single-byte change of every byte field, each position once with a random new value."""
    rng = random.Random(20261101)
    replace = msgspec.structs.replace
    for position, item in enumerate(bundle.entries):
        for offset in range(len(item.entry)):
            entry = bytearray(item.entry)
            entry[offset] = _changed(entry[offset], rng)
            yield (
                f"entry {item.index} byte {offset}",
                _with_entry(bundle, position, entry=bytes(entry)),
            )
        for level, node in enumerate(item.proof):
            for offset in range(len(node)):
                changed = bytearray(node)
                changed[offset] = _changed(changed[offset], rng)
                proof = (*item.proof[:level], bytes(changed), *item.proof[level + 1 :])
                yield (
                    f"entry {item.index} proof {level} byte {offset}",
                    _with_entry(bundle, position, proof=proof),
                )
        for offset in range(len(item.disclosures or b"")):
            disclosures = bytearray(item.disclosures or b"")
            disclosures[offset] = _changed(disclosures[offset], rng)
            yield (
                f"disclosures {item.index} byte {offset}",
                _with_entry(bundle, position, disclosures=bytes(disclosures)),
            )
        for index in (item.index - 1, item.index + 1):
            yield f"entry {item.index} index {index}", _with_entry(bundle, position, index=index)
    note = bundle.checkpoint.encode("utf-8")
    for offset in range(len(note)):
        if note[offset] >= 0x80:
            continue  # inside the em dash: any change is not UTF-8, which the raw sweep covers
        changed = bytearray(note)
        # Another ASCII byte, so that the note stays a string a bundle can hold.
        changed[offset] = (note[offset] + rng.randrange(1, 128)) % 128
        yield f"checkpoint byte {offset}", replace(bundle, checkpoint=changed.decode("utf-8"))
    body, _, signatures = bundle.checkpoint.partition("\n\n")
    for number, line in enumerate(signatures.splitlines()):
        name, _, encoded = line.removeprefix(SIGNATURE_LINE_PREFIX).partition(" ")
        raw = base64.b64decode(encoded)
        for offset in range(len(raw)):
            changed = bytearray(raw)
            changed[offset] = _changed(changed[offset], rng)
            signed = f"{SIGNATURE_LINE_PREFIX}{name} {base64.b64encode(changed).decode()}"
            lines = signatures.splitlines()
            lines[number] = signed
            note_text = body + "\n\n" + "\n".join(lines) + "\n"
            yield f"signature {number} byte {offset}", replace(bundle, checkpoint=note_text)
    for offset in range(len(bundle.invoice)):
        changed = bytearray(bundle.invoice)
        changed[offset] = _changed(changed[offset], rng)
        yield f"invoice byte {offset}", replace(bundle, invoice=bytes(changed))


def _with_entry(bundle: Bundle, position: int, **changes: object) -> Bundle:
    entries = list(bundle.entries)
    entries[position] = msgspec.structs.replace(entries[position], **changes)
    return msgspec.structs.replace(bundle, entries=tuple(entries))


def test_every_single_byte_change_of_a_small_bundle_fails(small: Bundle) -> None:
    counts: dict[str, int] = {}
    accepted = []
    for label, mutated in _mutations(small):
        kind = label.split(" ")[0]
        counts[kind] = counts.get(kind, 0) + 1
        report = verify_bundle(mutated, [VERIFIER])
        if report.ok and not _only_as_of_differs(small, mutated):
            accepted.append(label)
        assert report.ok or report.findings_total > 0, label
    assert accepted == []
    entry_bytes = sum(len(item.entry) for item in small.entries)
    proof_bytes = sum(32 * len(item.proof) for item in small.entries)
    assert counts["entry"] == entry_bytes + proof_bytes + 2 * len(small.entries)
    assert counts["disclosures"] == sum(len(item.disclosures or b"") for item in small.entries) > 0
    assert counts["signature"] == 68  # key id and Ed25519 signature
    assert counts["checkpoint"] == len(small.checkpoint.encode()) - 3  # all but the em dash
    assert counts["invoice"] == len(small.invoice)
    assert sum(counts.values()) > 5_000


# -- the raw file ---------------------------------------------------------------------------


@cache
def larger() -> tuple[bytes, Bundle]:
    """A simulated month's bundle and its file (not a fixture: hypothesis would print it)."""
    store = simulated_store(conversations=12, seed=5)
    bundle = export_bundle(store, INVOICE_ID, CONTRACT_TEXT, scope="log")
    assert verify_bundle(bundle, [VERIFIER]).ok
    return encode_bundle(bundle), bundle


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


@settings(max_examples=1_200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.integers(min_value=0), delta=st.integers(min_value=1, max_value=255))
def test_single_byte_changes_to_the_raw_file_fail_or_change_nothing(
    position: int, delta: int
) -> None:
    data, original = larger()
    position %= len(data)
    mutated = bytearray(data)
    mutated[position] = (mutated[position] + delta) % 256
    try:
        bundle = decode_bundle(bytes(mutated))
    except BundleError:
        return  # unusable input: `raas verify` exits 2
    assert _is_json(bytes(mutated)), "a file that is not JSON was read as a bundle"
    report = verify_bundle(bundle, [VERIFIER])
    if report.ok:
        # What may change and still verify: JSON whitespace between tokens (nothing changes),
        # the format version 1 read as 2 (version 2 only adds fields a version 1 bundle lacks,
        # so it is the same bundle), the contract's text, which nothing signs (the auditor holds
        # the terms; see test_verify.py for how `--contract` compares them), or an `as_of` that
        # bills the same.
        if bundle == original:
            assert data[position : position + 1] in b" \n\t\r"
        elif bundle.version != original.version:
            assert (original.version, bundle.version) == (1, 2)
            assert msgspec.structs.replace(bundle, version=original.version) == original
        elif bundle.contract == original.contract:
            assert _only_as_of_differs(original, bundle)
        else:
            assert msgspec.structs.replace(bundle, contract=original.contract) == original


def test_json_whitespace_between_tokens_changes_nothing() -> None:
    """The raw sweep above relies on this: a whitespace byte between tokens changed to another
    whitespace byte reads back as the same bundle; inside a string it does not."""
    data, original = larger()
    between = data.index(b'\n  "version"')
    respaced = data[:between] + b"\t" + data[between + 1 :]
    assert decode_bundle(respaced) == original
    inside = data.index(b"Problems resolved by the AI")
    changed = data[: inside + 8] + b"\t" + data[inside + 9 :]
    with pytest.raises(BundleError):
        decode_bundle(changed)  # a raw tab inside a JSON string is not JSON

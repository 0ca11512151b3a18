"""The evidence bundle format: what an auditor in another language reads. What would break: a bundle
that does not read back as written, two exports of one invoice that differ, a file that is not a
bundle (or is one of another version) read as one, or a byte string with two spellings."""

from __future__ import annotations

import base64
import json

import msgspec
import pytest
from evidence_workloads import CONTRACT_TEXT, INVOICE_ID, hand_written_store

from raas.audit.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    Bundle,
    BundleEntry,
    BundleError,
    assemble_bundle,
    decode_bundle,
    encode_bundle,
    file_format,
    strict_base64,
)
from raas.ledger.evidence import export_bundle


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return export_bundle(hand_written_store(), INVOICE_ID, CONTRACT_TEXT)


@pytest.fixture(scope="module")
def data(bundle: Bundle) -> bytes:
    return encode_bundle(bundle)


def test_a_bundle_reads_back_as_written(bundle: Bundle, data: bytes) -> None:
    assert decode_bundle(data) == bundle
    assert encode_bundle(decode_bundle(data)) == data


def test_the_file_is_the_documented_json(bundle: Bundle, data: bytes) -> None:
    plain = json.loads(data)
    assert list(plain) == [
        "format",
        "version",
        "scope",
        "checkpoint",
        "invoice",
        "contract",
        "entries",
    ]
    assert plain["format"] == BUNDLE_FORMAT == "raas-evidence-bundle"
    assert plain["version"] == BUNDLE_VERSION == 1
    assert plain["scope"] == "customers"
    assert plain["checkpoint"] == bundle.checkpoint
    assert plain["invoice"].encode("utf-8") == bundle.invoice
    assert plain["contract"] == CONTRACT_TEXT
    first = plain["entries"][0]
    assert set(first) <= {"index", "entry", "proof", "disclosures"}
    assert base64.b64decode(first["entry"]) == bundle.entries[0].entry
    assert [base64.b64decode(node) for node in first["proof"]] == list(bundle.entries[0].proof)
    indexes = [item["index"] for item in plain["entries"]]
    assert indexes == sorted(set(indexes))
    assert data.endswith(b"}\n")


def test_the_same_invoice_exports_to_the_same_bytes() -> None:
    first = encode_bundle(export_bundle(hand_written_store(), INVOICE_ID, CONTRACT_TEXT))
    second = encode_bundle(export_bundle(hand_written_store(), INVOICE_ID, CONTRACT_TEXT))
    assert first == second


def test_file_format_names_the_kind_of_file(data: bytes) -> None:
    assert file_format(data) == BUNDLE_FORMAT
    assert file_format(b"example.com/log\n5\nroot=\n\n- sig\n") is None
    assert file_format(b"[1, 2]") is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda plain: plain.update(format="raas-receipt"), "format is 'raas-receipt'"),
        (lambda plain: plain.pop("format"), "format is None"),
        (lambda plain: plain.update(version=3), "version 3: this raas reads versions 1 and 2"),
        (lambda plain: plain.update(scope="some"), "scope"),
        (lambda plain: plain.update(extra=1), "extra"),
        (lambda plain: plain.pop("contract"), "contract"),
        (lambda plain: plain["entries"][1].update(entry="not base64!"), "entries[1]"),
        (lambda plain: plain["entries"][2]["proof"].append(7), "entries[2].proof"),
        (lambda plain: plain["entries"][0].update(index="3"), "index"),
    ],
)
def test_a_file_that_is_not_a_bundle_of_this_version_is_refused_by_name(
    data: bytes, change: object, message: str
) -> None:
    plain = json.loads(data)
    change(plain)  # type: ignore[operator]
    with pytest.raises(BundleError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode_bundle(json.dumps(plain).encode())


@pytest.mark.parametrize(
    "text", [b"", b"{", b"\xff", b'{"format": "raas-evidence-bundle"', b"null"]
)
def test_bytes_that_are_not_json_are_refused(text: bytes) -> None:
    with pytest.raises(BundleError, match="not an evidence bundle"):
        decode_bundle(text)


def test_invalid_utf8_inside_a_string_is_refused_not_crashed_on(data: bytes) -> None:
    position = data.index(b'"contract": "') + len(b'"contract": "') + 3
    broken = data[:position] + b"\xff" + data[position + 1 :]
    with pytest.raises(BundleError):
        decode_bundle(broken)


def test_each_byte_string_has_one_spelling(data: bytes) -> None:
    # "AAE=" and "AAF=" both decode to b"\x00\x01"; only the first is canonical.
    assert strict_base64("AAE=", "x") == b"\x00\x01"
    with pytest.raises(BundleError, match="x is not canonical base64"):
        strict_base64("AAF=", "x")
    with pytest.raises(BundleError, match="x is not valid base64"):
        strict_base64("AAE", "x")
    plain = json.loads(data)
    proof = plain["entries"][0]["proof"]
    node = proof[0]
    assert node.endswith("=")  # 32 bytes: 44 characters, one of them padding
    # The last character before "=" holds 4 bits of the hash and 2 padding bits: flip one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    proof[0] = node[:-2] + alphabet[alphabet.index(node[-2]) ^ 1] + "="
    assert base64.b64decode(proof[0]) == base64.b64decode(node)
    with pytest.raises(
        BundleError, match=r"entries\[0\] \(index \d+\)\.proof\[0\] is not canonical"
    ):
        decode_bundle(json.dumps(plain).encode())


def test_assembling_sorts_entries_refuses_repeats_and_redacts() -> None:
    entries = [
        BundleEntry(index=5, entry=b"{}", proof=(), disclosures=b'{"a":1}'),
        BundleEntry(index=2, entry=b"{}", proof=()),
    ]
    parts = {"scope": "customers", "checkpoint": "c", "invoice": b"{}", "contract": "x"}
    bundle = assemble_bundle(entries=entries, **parts)  # type: ignore[arg-type]
    assert [item.index for item in bundle.entries] == [2, 5]
    assert bundle.entries[1].disclosures == b'{"a":1}'
    redacted = assemble_bundle(entries=entries, redact=True, **parts)  # type: ignore[arg-type]
    assert all(item.disclosures is None for item in redacted.entries)
    assert b"disclosures" not in encode_bundle(redacted)
    with pytest.raises(BundleError, match="two entries at log index 2"):
        assemble_bundle(entries=[*entries, entries[1]], **parts)  # type: ignore[arg-type]
    with pytest.raises(BundleError, match="the invoice is not UTF-8"):
        assemble_bundle(entries=entries, **{**parts, "invoice": b"\xff"})  # type: ignore[arg-type]


def test_an_oversized_file_is_refused_before_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import raas.audit.bundle as module

    monkeypatch.setattr(module, "BUNDLE_BYTES_MAX", 10)
    with pytest.raises(BundleError, match="more than 10"):
        module.decode_bundle(b'{"format": "raas-evidence-bundle"}')


def test_every_field_is_documented_in_the_module_docstring() -> None:
    import raas.audit.bundle as module

    doc = module.__doc__ or ""
    for name in ("format", "version", "scope", "checkpoint", "invoice", "contract", "entries"):
        assert f"\n    {name} " in doc, name
    for name in msgspec.structs.fields(BundleEntry):
        assert f"\n      {name.name} " in doc, name.name

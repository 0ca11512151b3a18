"""Evidence bundles: one JSON file holding everything an auditor needs to re-derive one invoice
offline (contract, signed checkpoint, invoice, ledger entries with inclusion proofs). Pure.

The format, version 1, field by field, so that an auditor can read it in any language. The file
is one JSON object (UTF-8, RFC 8259); raas writes it deterministically (the same inputs give the
same bytes: fields in the order below, entries by index, indented by two spaces, a final newline),
but readers must not depend on whitespace or key order. Every byte string is standard, padded
base64 (RFC 4648 section 4) in its canonical spelling: unused padding bits are zero.

    format      "raas-evidence-bundle"
    version     1, or 2 when `versions` or `earlier` are there (raas writes 1 otherwise). A
                reader refuses a version it does not know.
    scope       which entries the bundle holds:
                "customers": every entry, up to the checkpoint's size, of every customer with an
                  episode on one of the invoice's lines (a customer's whole history, because the
                  episodes are derived from it). The auditor re-derives every line; the counts of
                  what was not billed (`not_billed`, `provisional`) need the other customers too,
                  and an entry left out of the bundle cannot be noticed.
                "log": every entry of the log up to the checkpoint's size (indexes 0 to size - 1).
                  Complete: the auditor re-derives the whole invoice, and an entry left out
                  is noticed.
    checkpoint  text: the signed checkpoint note the invoice was settled at, verbatim
                (c2sp.org/tlog-checkpoint in a c2sp.org/signed-note: origin, tree size, base64
                root hash, a blank line, signature lines).
    invoice     text: the invoice's JSON exactly as issued; its UTF-8 bytes are the invoice's
                bytes (`raas.core.invoice.invoice_json`). Its `ledger` names the log and size.
    contract    text: the contract version's YAML exactly as given, read with raas's loader:
                the version the invoice names (`contract_version`).
    versions    (version 2) a list of text: the contract's other versions' YAML, when the
                invoice's period is split by versions, an earlier period it adjusts was
                settled under another version, or the run of its minimum commitment or its
                prepaid credit began under another version. Absent in version 1.
    earlier     (version 2) a list of text: the contract's invoices issued for earlier periods,
                each its JSON exactly as issued, which the invoice's `adjustments` correct and
                its `audits` sample, whose charges the true-up of a minimum commitment over
                several periods counts (`raas.core.minimum_runs`), and whose drawdowns of
                prepaid credit the invoice's balance follows from (`raas.core.prepaid`).
                Absent in version 1.
    entries     a list, in ascending `index` order, one object per ledger entry:
      index       integer: the entry's 0-based position in the log.
      entry       base64: the entry's canonical bytes (RFC 8785 JSON of the CloudEvents event),
                  exactly the bytes the log's leaf commits to: leaf hash = SHA-256(0x00 || entry).
                  Personal fields (message text, a reviewer's note) hold a commitment in place of
                  the value: "sha256:" + hex(SHA-256(salt || UTF-8 value)).
      proof       list of base64 32-byte hashes: the RFC 9162 section 2.1.3.1 inclusion proof of
                  the leaf at `index` in the tree of the checkpoint's size, from the leaf's
                  sibling upwards.
      disclosures base64, optional: the canonical JSON (RFC 8785) object {field path: {"salt":
                  base64 of 16 bytes, "value": text}} that opens some or all of the entry's
                  commitments (`raas.core.commitments.verify_disclosure` checks it). Absent when
                  the bundle was redacted, or when the entry commits to no personal field; proofs
                  verify either way, since the entry holds only the commitments.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Final, Literal

import msgspec

from raas.errors import RaasError

__all__ = [
    "BUNDLE_BYTES_MAX",
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "BUNDLE_VERSION_OVER_TIME",
    "Bundle",
    "BundleEntry",
    "BundleError",
    "Scope",
    "assemble_bundle",
    "decode_bundle",
    "encode_bundle",
    "file_format",
    "strict_base64",
]

BUNDLE_FORMAT: Final = "raas-evidence-bundle"
BUNDLE_VERSION: Final = 1
# The version of a bundle that holds other contract versions or earlier invoices.
BUNDLE_VERSION_OVER_TIME: Final = 2
# One buyer's month fits far below this; a larger file is refused before it is read into memory.
BUNDLE_BYTES_MAX: Final = 2**31

Scope = Literal["customers", "log"]


class BundleError(RaasError):
    """A file is not a readable evidence bundle (or receipt, or consistency proof): where, and why.

    Unusable input, as distinct from evidence that was read and does not verify.
    """


class BundleEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One ledger entry with its inclusion proof and, unless redacted, its disclosures."""

    index: int
    entry: bytes
    proof: tuple[bytes, ...]
    disclosures: bytes | None = None


class Bundle(msgspec.Struct, frozen=True, kw_only=True):
    """An evidence bundle, read: the fields of the format (module docstring) with bytes decoded."""

    scope: Scope
    checkpoint: str
    invoice: bytes
    contract: str
    entries: tuple[BundleEntry, ...]
    versions: tuple[str, ...] = ()
    earlier: tuple[bytes, ...] = ()
    version: int = BUNDLE_VERSION


# -- the wire form: byte strings stay text until they are decoded strictly ----------------------


class _WireEntry(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    index: int
    entry: str
    proof: list[str]
    disclosures: str | None = None


class _WireBundle(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    format: str
    version: int
    scope: Scope
    checkpoint: str
    invoice: str
    contract: str
    versions: list[str] = msgspec.field(default_factory=list)
    earlier: list[str] = msgspec.field(default_factory=list)
    entries: list[_WireEntry]


# msgspec raises UnicodeDecodeError, not DecodeError, for a string that is not UTF-8.
_DECODE_ERRORS: Final = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


class _Header(msgspec.Struct, frozen=True):
    format: str | None = None
    version: int | None = None


def strict_base64(text: str, what: str) -> bytes:
    """Decode standard padded base64, refusing every other spelling of the same bytes."""
    try:
        encoded = text.encode("ascii")
        decoded = binascii.a2b_base64(encoded, strict_mode=True)
    except (UnicodeEncodeError, binascii.Error) as error:
        raise BundleError(f"{what} is not valid base64") from error
    # Strict mode still ignores non-zero padding bits; re-encoding catches them.
    if binascii.b2a_base64(decoded, newline=False) != encoded:
        raise BundleError(f"{what} is not canonical base64 (its padding bits are not zero)")
    return decoded


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_bundle(bundle: Bundle) -> bytes:
    """The bundle's file bytes: the same bundle always gives the same bytes."""
    wire = _WireBundle(
        format=BUNDLE_FORMAT,
        version=bundle.version,
        scope=bundle.scope,
        checkpoint=bundle.checkpoint,
        invoice=bundle.invoice.decode("utf-8"),
        contract=bundle.contract,
        versions=list(bundle.versions),
        earlier=[invoice.decode("utf-8") for invoice in bundle.earlier],
        entries=[
            _WireEntry(
                index=item.index,
                entry=_b64(item.entry),
                proof=[_b64(node) for node in item.proof],
                disclosures=None if item.disclosures is None else _b64(item.disclosures),
            )
            for item in bundle.entries
        ],
    )
    return msgspec.json.format(msgspec.json.encode(wire), indent=2) + b"\n"


def file_format(data: bytes) -> str | None:
    """The `format` a JSON evidence file names ("raas-evidence-bundle", "raas-receipt", ...), or
    None when `data` is not a JSON object naming one (a checkpoint note, say)."""
    try:
        return msgspec.json.decode(data, type=_Header).format
    except _DECODE_ERRORS:
        return None


def decode_bundle(data: bytes) -> Bundle:
    """Read a bundle file's bytes; raises BundleError naming the field when they are not one.

    Only the form is checked here (JSON, fields, types, base64); whether the evidence holds is
    `raas.audit.verify`'s question.
    """
    if len(data) > BUNDLE_BYTES_MAX:
        raise BundleError(f"the file has {len(data):,} bytes, more than {BUNDLE_BYTES_MAX:,}")
    try:
        header = msgspec.json.decode(data, type=_Header)
    except _DECODE_ERRORS as error:
        raise BundleError(f"not an evidence bundle: {error}") from error
    if header.format != BUNDLE_FORMAT:
        raise BundleError(
            f"not an evidence bundle: format is {header.format!r}, not {BUNDLE_FORMAT!r}"
        )
    if header.version not in (BUNDLE_VERSION, BUNDLE_VERSION_OVER_TIME):
        raise BundleError(
            f"evidence bundle version {header.version!r}: this raas reads versions "
            f"{BUNDLE_VERSION} and {BUNDLE_VERSION_OVER_TIME}"
        )
    try:
        wire = msgspec.json.decode(data, type=_WireBundle)
    except _DECODE_ERRORS as error:
        raise BundleError(f"malformed evidence bundle: {error}") from error
    entries = []
    for position, item in enumerate(wire.entries):
        where = f"entries[{position}] (index {item.index})"
        entries.append(
            BundleEntry(
                index=item.index,
                entry=strict_base64(item.entry, f"{where}.entry"),
                proof=tuple(
                    strict_base64(node, f"{where}.proof[{level}]")
                    for level, node in enumerate(item.proof)
                ),
                disclosures=(
                    None
                    if item.disclosures is None
                    else strict_base64(item.disclosures, f"{where}.disclosures")
                ),
            )
        )
    return Bundle(
        version=wire.version,
        scope=wire.scope,
        checkpoint=wire.checkpoint,
        invoice=wire.invoice.encode("utf-8"),
        contract=wire.contract,
        entries=tuple(entries),
        versions=tuple(wire.versions),
        earlier=tuple(invoice.encode("utf-8") for invoice in wire.earlier),
    )


def assemble_bundle(
    *,
    scope: Scope,
    checkpoint: str,
    invoice: bytes,
    contract: str,
    entries: Iterable[BundleEntry],
    redact: bool = False,
    versions: Sequence[str] = (),
    earlier: Sequence[bytes] = (),
) -> Bundle:
    """A bundle from its parts: entries sorted by index, disclosures dropped when `redact`;
    of version 2 when it holds other contract `versions` or `earlier` invoices.

    Raises BundleError if two entries share an index or the invoice is not UTF-8 text.
    """
    ordered = sorted(entries, key=lambda item: item.index)
    for before, after in pairwise(ordered):
        if before.index == after.index:
            raise BundleError(f"two entries at log index {after.index}")
    if redact:
        ordered = [msgspec.structs.replace(item, disclosures=None) for item in ordered]
    try:
        invoice.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BundleError(f"the invoice is not UTF-8 text (byte {error.start})") from error
    return Bundle(
        scope=scope,
        checkpoint=checkpoint,
        invoice=invoice,
        contract=contract,
        entries=tuple(ordered),
        versions=tuple(versions),
        earlier=tuple(earlier),
        version=BUNDLE_VERSION_OVER_TIME if versions or earlier else BUNDLE_VERSION,
    )

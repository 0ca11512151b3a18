"""Receipts: a small file proving that the entries behind one invoice line or one episode are in the
log under a signed checkpoint, each as a C2SP tlog-proof (c2sp.org/tlog-proof) anyone can check.

A receipt is one JSON object (UTF-8):

    format    "raas-receipt"
    version   1
    invoice   the invoice's id
    line      the invoice line, numbered from 1, or null for an episode not billed
    outcome   that line's outcome, or null
    episodes  the episode ids the receipt covers, sorted
    proofs    one text per entry, in ascending log index order, each a complete
              c2sp.org/tlog-proof@v1:

                  c2sp.org/tlog-proof@v1
                  extra <base64 of the entry's canonical bytes>
                  index <log index, decimal>
                  <base64 hash>          one per line: the inclusion proof, leaf's sibling first
                  ...
                  (an empty line)
                  <the signed checkpoint note, verbatim>

              The leaf hash is SHA-256(0x00 || extra). Every proof carries the same checkpoint.
              Entries hold commitments in place of personal fields; receipts carry no
              disclosures.

Receipts prove recording, not billing: that these entries were in the log when it was checkpointed.
The evidence bundle is what re-derives the bill.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Final

import msgspec

from raas.audit.bundle import BundleEntry, BundleError, strict_base64

__all__ = [
    "RECEIPT_FORMAT",
    "RECEIPT_VERSION",
    "TLOG_PROOF_HEADER",
    "Receipt",
    "TlogProof",
    "decode_receipt",
    "encode_receipt",
    "make_receipt",
    "parse_tlog_proof",
]

RECEIPT_FORMAT: Final = "raas-receipt"
RECEIPT_VERSION: Final = 1
TLOG_PROOF_HEADER: Final = "c2sp.org/tlog-proof@v1"
# An inclusion proof in a tree of up to 2^64 leaves has at most 64 hashes.
PROOF_HASHES_MAX: Final = 64
# A receipt covers one line: large lines make large receipts, but never beyond this.
RECEIPT_BYTES_MAX: Final = 2**30


class TlogProof(msgspec.Struct, frozen=True, kw_only=True):
    """One c2sp.org/tlog-proof@v1: an entry (the extra data), its index, path and checkpoint."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def to_text(self) -> str:
        """The proof in its C2SP text form."""
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {_b64(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(_b64(node) for node in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    """A receipt, read: the fields of the format (module docstring) with the proofs parsed."""

    invoice: str
    line: int | None
    outcome: str | None
    episodes: tuple[str, ...]
    proofs: tuple[TlogProof, ...]
    version: int = RECEIPT_VERSION


class _WireReceipt(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: str
    version: int
    invoice: str
    line: int | None
    outcome: str | None
    episodes: list[str]
    proofs: list[str]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def make_receipt(
    *,
    invoice_id: str,
    line: int | None,
    outcome: str | None,
    episodes: Iterable[str],
    checkpoint: str,
    entries: Iterable[BundleEntry],
) -> Receipt:
    """A receipt from bundle entries (their disclosures are left out) and their checkpoint."""
    proofs = tuple(
        TlogProof(index=item.index, hashes=item.proof, checkpoint=checkpoint, extra=item.entry)
        for item in sorted(entries, key=lambda item: item.index)
    )
    return Receipt(
        invoice=invoice_id,
        line=line,
        outcome=outcome,
        episodes=tuple(sorted(episodes)),
        proofs=proofs,
    )


def encode_receipt(receipt: Receipt) -> bytes:
    """The receipt's file bytes: the same receipt always gives the same bytes."""
    wire = _WireReceipt(
        format=RECEIPT_FORMAT,
        version=receipt.version,
        invoice=receipt.invoice,
        line=receipt.line,
        outcome=receipt.outcome,
        episodes=list(receipt.episodes),
        proofs=[proof.to_text() for proof in receipt.proofs],
    )
    return msgspec.json.format(msgspec.json.encode(wire), indent=2) + b"\n"


def parse_tlog_proof(text: str, what: str = "tlog-proof") -> TlogProof:
    """Read a c2sp.org/tlog-proof@v1 text strictly; raises BundleError saying where it is wrong.

    The checkpoint is returned as the text after the empty line, unparsed: opening it with the
    log's keys is the verifier's work.
    """
    head, separator, checkpoint = text.partition("\n\n")
    if not separator:
        raise BundleError(f"{what}: no empty line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise BundleError(f"{what}: the first line is {lines[0]!r:.60}, not {TLOG_PROOF_HEADER!r}")
    position = 1
    extra = None
    if position < len(lines) and lines[position].startswith("extra "):
        extra = strict_base64(lines[position][len("extra ") :], f"{what}: the extra data")
        position += 1
    if position >= len(lines) or not lines[position].startswith("index "):
        raise BundleError(f"{what}: line {position + 1} is not 'index <number>'")
    index_text = lines[position][len("index ") :]
    if not (index_text.isascii() and index_text.isdigit()) or (
        index_text != "0" and index_text.startswith("0")
    ):
        raise BundleError(
            f"{what}: index {index_text!r:.40} is not a decimal without leading zeros"
        )
    if len(index_text) > 20:
        raise BundleError(f"{what}: index {index_text:.40} is beyond 2^64 - 1")
    hash_lines = lines[position + 1 :]
    if len(hash_lines) > PROOF_HASHES_MAX:
        raise BundleError(f"{what}: {len(hash_lines)} proof hashes, more than {PROOF_HASHES_MAX}")
    hashes = tuple(
        strict_base64(line, f"{what}: proof hash #{number}")
        for number, line in enumerate(hash_lines)
    )
    return TlogProof(index=int(index_text), hashes=hashes, checkpoint=checkpoint, extra=extra)


def decode_receipt(data: bytes) -> Receipt:
    """Read a receipt file's bytes; raises BundleError naming the field when they are not one."""
    if len(data) > RECEIPT_BYTES_MAX:
        raise BundleError(f"the receipt has {len(data):,} bytes, more than {RECEIPT_BYTES_MAX:,}")
    try:
        wire = msgspec.json.decode(data, type=_WireReceipt)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as error:
        raise BundleError(f"not a receipt: {error}") from error
    if wire.format != RECEIPT_FORMAT:
        raise BundleError(f"not a receipt: format is {wire.format!r}, not {RECEIPT_FORMAT!r}")
    if wire.version != RECEIPT_VERSION:
        raise BundleError(
            f"receipt version {wire.version!r}: this raas reads version {RECEIPT_VERSION}"
        )
    return Receipt(
        version=wire.version,
        invoice=wire.invoice,
        line=wire.line,
        outcome=wire.outcome,
        episodes=tuple(wire.episodes),
        proofs=tuple(
            parse_tlog_proof(text, f"proofs[{position}]")
            for position, text in enumerate(wire.proofs)
        ),
    )

"""Consistency proof files: two signed checkpoints of one log and the RFC 9162 proof that the newer
extends the older, so an auditor can check offline that nothing before the old size was rewritten.

The file is one JSON object (UTF-8):

    format   "raas-consistency-proof"
    version  1
    old      the older signed checkpoint note, verbatim (c2sp.org/tlog-checkpoint)
    new      the newer signed checkpoint note, verbatim
    proof    list of base64 32-byte hashes: RFC 9162 section 2.1.4.1 PROOF(old size, new tree);
             empty when the sizes are equal or the old size is 0
"""

from __future__ import annotations

import base64
from typing import Final

import msgspec

from raas.audit.bundle import BundleError, strict_base64

__all__ = [
    "CONSISTENCY_FORMAT",
    "CONSISTENCY_VERSION",
    "ConsistencyProof",
    "decode_consistency",
    "encode_consistency",
]

CONSISTENCY_FORMAT: Final = "raas-consistency-proof"
CONSISTENCY_VERSION: Final = 1
# Two notes of a few hundred bytes and at most 2 * 64 hashes: anything far larger is not one.
CONSISTENCY_BYTES_MAX: Final = 1_048_576


class ConsistencyProof(msgspec.Struct, frozen=True, kw_only=True):
    """Two signed checkpoint notes of one log and the consistency proof between them."""

    old: str
    new: str
    proof: tuple[bytes, ...]
    version: int = CONSISTENCY_VERSION


class _WireConsistency(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: str
    version: int
    old: str
    new: str
    proof: list[str]


def encode_consistency(item: ConsistencyProof) -> bytes:
    """The file's bytes: the same proof always gives the same bytes."""
    wire = _WireConsistency(
        format=CONSISTENCY_FORMAT,
        version=item.version,
        old=item.old,
        new=item.new,
        proof=[base64.b64encode(node).decode("ascii") for node in item.proof],
    )
    return msgspec.json.format(msgspec.json.encode(wire), indent=2) + b"\n"


def decode_consistency(data: bytes) -> ConsistencyProof:
    """Read a consistency proof file; raises BundleError naming the field when it is not one."""
    if len(data) > CONSISTENCY_BYTES_MAX:
        raise BundleError(
            f"the file has {len(data):,} bytes, more than a consistency proof's "
            f"{CONSISTENCY_BYTES_MAX:,}"
        )
    try:
        wire = msgspec.json.decode(data, type=_WireConsistency)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as error:
        raise BundleError(f"not a consistency proof: {error}") from error
    if wire.format != CONSISTENCY_FORMAT:
        raise BundleError(
            f"not a consistency proof: format is {wire.format!r}, not {CONSISTENCY_FORMAT!r}"
        )
    if wire.version != CONSISTENCY_VERSION:
        raise BundleError(
            f"consistency proof version {wire.version!r}: this raas reads version "
            f"{CONSISTENCY_VERSION}"
        )
    return ConsistencyProof(
        version=wire.version,
        old=wire.old,
        new=wire.new,
        proof=tuple(
            strict_base64(node, f"proof[{position}]") for position, node in enumerate(wire.proof)
        ),
    )

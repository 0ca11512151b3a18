"""Canonical bytes of a JSON value (RFC 8785, JCS) and the RFC 6962 leaf hash of an entry.

Entries never hold floats (money is a decimal string, durations are integers), so JCS reduces to
sorted keys, minimal string escaping and integer literals; msgspec's sorted encoder produces
exactly that, which tests check against an independent RFC 8785 implementation.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

# I-JSON (RFC 7493) interoperable integers: an auditor in JavaScript must read them exactly.
INTEGER_ABS_MAX = 2**53 - 1

_encoder = msgspec.json.Encoder(order="sorted")


def _check(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: object key {key!r} is not a string")
            if not key.isascii():
                # JCS sorts keys by UTF-16 code units; ASCII keeps that equal to code point order.
                raise ValueError(f"{path}: object key {key!r} must be ASCII")
            _check(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if abs(value) > INTEGER_ABS_MAX:
            raise ValueError(f"{path}: integer {value} is outside the I-JSON range +-(2^53-1)")
    else:
        raise ValueError(f"{path}: {type(value).__name__} is not allowed in a canonical entry")


def canonical_bytes(value: Any, *, checked: bool = True) -> bytes:
    """RFC 8785 bytes of a plain JSON value (dicts, lists, str, int, bool, None).

    `checked=False` skips the walk for values built from validated types (the ingest hot path).
    """
    if checked:
        _check(value, "$")
    return _encoder.encode(value)


def leaf_hash(entry: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()

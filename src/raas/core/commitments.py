"""Salted commitments to personal fields, so evidence can drop personal data and still verify.

A ledger entry never holds the value of a personal field (`PERSONAL_FIELDS`): it holds the
commitment "sha256:" + hex(SHA-256(salt || UTF-8 value)). The value and its salt travel beside
the entry as its *disclosures*, canonical JSON (RFC 8785) of {field path: {"salt": base64 of 16
bytes, "value": text}}. Dropping a field from the disclosures redacts it: the entry, its leaf
hash and every proof stay as they were, and what is still disclosed still checks.

The salt of a field is HMAC-SHA256(commitment key, canonical JSON of [tenant, source, id, field
path])[:16]. The 32-byte commitment key is the ledger's secret, kept in the ledger's own file
and never exported (no evidence or export holds it), so:
- the same event always gives the same entry (appends stay idempotent, byte for byte), and
- nobody without the key can test a guessed value against a commitment, while anyone with a
  disclosure can check it (`verify_disclosure`), with no key at all.

A personal field that holds its default (an empty message text, no review note) is left out of
the entry like every default, so it has no commitment and no disclosure.

Everything here is pure: no I/O, no clock, no randomness (the ledger draws the key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import msgspec

from raas.errors import RaasError
from raas.native import speedups

if TYPE_CHECKING:
    from raas.core.events import Event

__all__ = [
    "COMMITMENT_KEY_SIZE_BYTES",
    "COMMITMENT_PREFIX",
    "EMPTY_DISCLOSURES",
    "PERSONAL_FIELDS",
    "SALT_SIZE_BYTES",
    "Disclosure",
    "DisclosureError",
    "commitment",
    "decode_disclosures",
    "encode_disclosures",
    "field_salt",
    "redact",
    "reveal",
    "salted_commitment",
    "verify_disclosure",
]

# The one list of personal fields: by CloudEvents type, the paths of the fields in the entry.
# Each is a text field of the event's data (`tests/core/test_commitments.py` holds the types to
# this); any field added here is committed from the next append on.
PERSONAL_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "dev.raas.message": ("data.text",),
    "dev.raas.review.verdict": ("data.note",),
}

COMMITMENT_PREFIX: Final = "sha256:"
COMMITMENT_KEY_SIZE_BYTES: Final = 32
SALT_SIZE_BYTES: Final = 16
# The disclosures of an event without personal fields, or with all of them redacted.
EMPTY_DISCLOSURES: Final = b"{}"

_COMMITMENT_PATTERN: Final = re.compile(r"sha256:[0-9a-f]{64}")
_HMAC_BLOCK_SIZE_BYTES: Final = 64
_encoder: Final = msgspec.json.Encoder(order="sorted")


class DisclosureError(RaasError):
    """A disclosure does not match its entry, or is malformed: which field, and why."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"disclosure of field {field!r}: {reason}")


class Disclosure(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The cleartext of one personal field and the salt its commitment was made with."""

    salt: str  # standard base64 with padding, of SALT_SIZE_BYTES bytes
    value: str


_disclosures_decoder: Final = msgspec.json.Decoder(dict[str, Disclosure])


@lru_cache(maxsize=16)
def _hmac_states(commitment_key: bytes) -> tuple[Any, Any]:
    """SHA-256 states after HMAC's inner and outer key blocks (RFC 2104), computed once per key.

    Copying them per salt is HMAC-SHA256 exactly, at about half the cost of `hmac.digest`.
    """
    if len(commitment_key) != COMMITMENT_KEY_SIZE_BYTES:
        raise ValueError(
            f"a commitment key has {COMMITMENT_KEY_SIZE_BYTES} bytes, got {len(commitment_key)}"
        )
    block = commitment_key.ljust(_HMAC_BLOCK_SIZE_BYTES, b"\x00")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))
    return inner, outer


def field_salt(commitment_key: bytes, tenant: str, source: str, event_id: str, path: str) -> bytes:
    """HMAC-SHA256(commitment_key, canonical JSON [tenant, source, id, path])[:16]."""
    inner_start, outer_start = _hmac_states(commitment_key)
    inner = inner_start.copy()
    inner.update(_salt_material(tenant, source, event_id, path))
    outer = outer_start.copy()
    outer.update(inner.digest())
    salt: bytes = outer.digest()[:SALT_SIZE_BYTES]
    return salt


def _salt_material(tenant: str, source: str, event_id: str, path: str) -> bytes:
    """What a field's salt is the HMAC of: canonical JSON [tenant, source, id, path]."""
    return _encoder.encode((tenant, source, event_id, path))


def commitment(salt: bytes, value: str) -> str:
    """The text an entry holds for a personal field: "sha256:" + hex(SHA-256(salt || value))."""
    return COMMITMENT_PREFIX + hashlib.sha256(salt + value.encode("utf-8")).hexdigest()


def salted_commitment(
    commitment_key: bytes, tenant: str, source: str, event_id: str, path: str, value: str
) -> tuple[str, str]:
    """A personal field's salt (base64, as its disclosure holds it) and its commitment.

    `field_salt` and `commitment` in one call, natively where raas.native has its speed-ups.
    """
    if speedups is not None:
        material = _salt_material(tenant, source, event_id, path)
        salt_text, committed = speedups.salted_commitment(commitment_key, material, value)
        return salt_text, committed
    salt = field_salt(commitment_key, tenant, source, event_id, path)
    return base64.b64encode(salt).decode("ascii"), commitment(salt, value)


def encode_disclosures(disclosures: Mapping[str, Disclosure]) -> bytes:
    """Canonical JSON (RFC 8785) of {field path: disclosure}; b"{}" when there is none."""
    if not disclosures:
        return EMPTY_DISCLOSURES
    return _encoder.encode(disclosures)


def decode_disclosures(disclosures: bytes) -> dict[str, Disclosure]:
    """Read disclosures back, refusing any form but the canonical one and salts of the wrong size.

    Strict so that disclosures have one spelling: any changed byte either changes a salt or a
    value (and then fails `verify_disclosure`) or fails here.
    """
    try:
        decoded = _disclosures_decoder.decode(disclosures)
    # UnicodeDecodeError: msgspec raises it, not DecodeError, for a string that is not UTF-8.
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError) as error:
        raise DisclosureError("$", f"not a JSON object of {{salt, value}}: {error}") from None
    if encode_disclosures(decoded) != bytes(disclosures):
        raise DisclosureError("$", "not in canonical form (RFC 8785)")
    for path, disclosure in decoded.items():
        _salt_bytes(path, disclosure.salt)
    return decoded


def _salt_bytes(path: str, text: str) -> bytes:
    try:
        salt = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise DisclosureError(path, f"salt {text!r:.40} is not base64") from None
    if base64.b64encode(salt).decode("ascii") != text:
        raise DisclosureError(path, f"salt {text!r:.40} is not canonical base64")
    if len(salt) != SALT_SIZE_BYTES:
        raise DisclosureError(path, f"salt has {len(salt)} bytes, expected {SALT_SIZE_BYTES}")
    return salt


def _committed_fields(entry: bytes) -> tuple[str, dict[str, str]]:
    """The entry's type and, for each personal field it holds, the commitment it holds there."""
    try:
        plain = msgspec.json.decode(entry)
    except (msgspec.DecodeError, UnicodeDecodeError) as error:
        raise DisclosureError("$", f"the entry is not JSON: {error}") from None
    type_name = plain.get("type") if isinstance(plain, dict) else None
    if not isinstance(type_name, str):
        raise DisclosureError("type", "the entry has no event type")
    committed: dict[str, str] = {}
    for path in PERSONAL_FIELDS.get(type_name, ()):
        value: Any = plain
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue  # the field holds its default, and defaults are left out
        if not isinstance(value, str) or not _COMMITMENT_PATTERN.fullmatch(value):
            raise DisclosureError(
                path, f"the entry holds {value!r:.80} there, not a sha256: commitment"
            )
        committed[path] = value
    return type_name, committed


def verify_disclosure(entry: bytes, disclosures: bytes) -> None:
    """Check every disclosed field against the commitment the entry holds for it.

    Fields the entry commits to but the disclosures leave out are redacted, which is allowed;
    a disclosure for a field the entry does not commit to is not. Raises DisclosureError naming
    the first field that fails.
    """
    _verified(entry, disclosures)


def _verified(entry: bytes, disclosures: bytes) -> dict[str, Disclosure]:
    type_name, committed = _committed_fields(entry)
    decoded = decode_disclosures(disclosures)
    for path, disclosure in decoded.items():
        held = committed.get(path)
        if held is None:
            if path in PERSONAL_FIELDS.get(type_name, ()):
                raise DisclosureError(path, "the entry commits to no value in this field")
            raise DisclosureError(path, f"not a personal field of a {type_name} event")
        salt = _salt_bytes(path, disclosure.salt)
        if commitment(salt, disclosure.value) != held:
            raise DisclosureError(
                path, f"the value and salt do not hash to the entry's commitment {held}"
            )
    return decoded


def reveal(entry: bytes, disclosures: bytes) -> Event:
    """The event with every disclosed personal field in cleartext, after `verify_disclosure`.

    A redacted field (committed to, not disclosed) keeps its "sha256:..." commitment text.
    """
    # Imported here because raas.core.events builds entries with this module.
    from raas.core.events import decode_entry

    decoded = _verified(entry, disclosures)
    event = decode_entry(entry)
    if not decoded:
        return event
    values = {path.removeprefix("data."): disclosure.value for path, disclosure in decoded.items()}
    return msgspec.structs.replace(event, data=msgspec.structs.replace(event.data, **values))


def redact(disclosures: bytes, keep: Collection[str] = ()) -> bytes:
    """The disclosures with every field not in `keep` dropped (by default, all of them)."""
    decoded = decode_disclosures(disclosures)
    return encode_disclosures({path: value for path, value in decoded.items() if path in keep})

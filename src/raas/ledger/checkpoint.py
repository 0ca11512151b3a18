"""Signed checkpoints of the ledger: a C2SP tlog-checkpoint (origin, tree size, root hash) signed
as a C2SP signed note with Ed25519, and the strict parser an auditor opens one with.

A checkpoint note, byte for byte (c2sp.org/tlog-checkpoint, c2sp.org/signed-note):

    <origin>\\n                       non-empty
    <tree size>\\n                    ASCII decimal, no leading zeros ("0" for the empty tree)
    <base64 root hash>\\n             canonical standard base64 of 32 bytes
    [<extension line>\\n ...]         optional, each non-empty
    \\n                               one blank line
    — <key name> <base64(key id || signature)>\\n     one or more signature lines

The signature covers the note text: the lines above the blank line, with their final newline.
Parsing is exact: valid UTF-8, no control character but newline, no carriage returns, a final
newline, no extra blank line, canonical base64 only, so any change to a signed note either fails
to parse or fails its signature. Signatures by keys the verifier does not know (name and key id
both matching) are ignored; a signature by a known key that fails rejects the whole note; a note
with no verified signature by a known key is rejected.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from raas.errors import RaasError
from raas.ledger.keys import (
    KEY_ID_SIZE_BYTES,
    NoteKeyError,
    SignerKey,
    VerifierKey,
    check_key_name,
)

__all__ = [
    "NOTE_SIZE_MAX_BYTES",
    "SIGNATURE_LINES_MAX",
    "Checkpoint",
    "CheckpointError",
    "open_checkpoint",
    "sign_checkpoint",
    "stated_checkpoint",
]

ROOT_SIZE_BYTES = 32
# The tree size is a uint64 in every other implementation (Go, Rust); stay within it.
TREE_SIZE_MAX_LEAVES = 2**64 - 1
# The signed-note spec asks verifiers to cap signatures and to accept at least 16.
SIGNATURE_LINES_MAX = 100
# A checkpoint is a few hundred bytes; the cap only stops a hostile note from costing memory.
NOTE_SIZE_MAX_BYTES = 65_536

SIGNATURE_LINE_PREFIX = "— "  # U+2014 EM DASH, then a space
_FORBIDDEN_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class CheckpointError(RaasError):
    """A checkpoint cannot be signed as asked, or a note is not a validly signed checkpoint."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a signed checkpoint states: the log `origin` had `size` leaves with this `root`."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_fields(self.origin, self.size, self.root, self.extensions)

    def body(self) -> str:
        """The note text the signatures cover, ending in a newline."""
        root_text = base64.b64encode(self.root).decode("ascii")
        lines = [self.origin, str(self.size), root_text, *self.extensions]
        return "".join(line + "\n" for line in lines)


def _check_line(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise CheckpointError(f"{what} must be a non-empty string")
    if "\n" in value or "\r" in value or _FORBIDDEN_CONTROL.search(value):
        raise CheckpointError(
            f"{what} {value!r:.80} may not contain newlines or control characters"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise CheckpointError(f"{what} {value!r:.80} is not valid Unicode text") from error


def _check_fields(origin: str, size: int, root: bytes, extensions: Sequence[str]) -> None:
    _check_line(origin, "origin")
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= TREE_SIZE_MAX_LEAVES:
        raise CheckpointError(f"tree size must be an integer in [0, 2^64 - 1], got {size!r}")
    if not isinstance(root, bytes) or len(root) != ROOT_SIZE_BYTES:
        raise CheckpointError(f"root must be {ROOT_SIZE_BYTES} bytes, got {root!r:.80}")
    for position, extension in enumerate(extensions):
        _check_line(extension, f"extension line #{position}")


def sign_checkpoint(
    origin: str,
    size: int,
    root: bytes,
    signer: SignerKey | Sequence[SignerKey],
    *,
    extensions: Sequence[str] = (),
) -> str:
    """The signed checkpoint note for `origin` at `size` with `root`.

    Several signers each add a signature line, in the order given: while rotating keys, sign with
    the old and the new key so that auditors holding either can open the note.
    """
    signers = [signer] if isinstance(signer, SignerKey) else list(signer)
    if not signers:
        raise CheckpointError("a checkpoint needs at least one signer")
    identities = [(key.name, key.key_id) for key in signers]
    if len(set(identities)) != len(identities):
        raise CheckpointError("the same key is given twice as a signer")
    body = Checkpoint(origin, size, root, tuple(extensions)).body()
    message = body.encode("utf-8")
    lines = []
    for key in signers:
        signature = base64.b64encode(key.key_id + key.sign(message)).decode("ascii")
        lines.append(f"{SIGNATURE_LINE_PREFIX}{key.name} {signature}\n")
    note = body + "\n" + "".join(lines)
    if len(note.encode("utf-8")) > NOTE_SIZE_MAX_BYTES:
        raise CheckpointError(f"the signed note would exceed {NOTE_SIZE_MAX_BYTES} bytes")
    return note


def _strict_base64(text: str, what: str) -> bytes:
    """Decode standard padded base64, refusing every other spelling of the same bytes."""
    try:
        decoded = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as error:
        raise CheckpointError(f"{what} is not valid base64") from error
    # b64decode ignores non-zero padding bits; re-encoding catches them.
    if base64.b64encode(decoded).decode("ascii") != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return decoded


def _parse_signature_line(line: str, number: int) -> tuple[str, bytes, bytes]:
    """One signature line: (key name, key id, signature)."""
    if not line.startswith(SIGNATURE_LINE_PREFIX):
        raise CheckpointError(f"signature line {number} does not start with '— '")
    name, separator, encoded = line[len(SIGNATURE_LINE_PREFIX) :].partition(" ")
    if not separator:
        raise CheckpointError(f"signature line {number} has no space between name and signature")
    try:
        check_key_name(name)
    except NoteKeyError as error:
        raise CheckpointError(f"signature line {number}: {error}") from error
    raw = _strict_base64(encoded, f"signature line {number}")
    if len(raw) <= KEY_ID_SIZE_BYTES:
        raise CheckpointError(f"signature line {number} holds no signature after the key id")
    return name, raw[:KEY_ID_SIZE_BYTES], raw[KEY_ID_SIZE_BYTES:]


def _parse_body(body: str) -> Checkpoint:
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(
            f"a checkpoint has origin, size and root lines; this note text has {len(lines)} lines"
        )
    for number, line in enumerate(lines, start=1):
        if not line:
            raise CheckpointError(f"checkpoint line {number} is empty")
    origin, size_text, root_text, *extensions = lines
    if not (size_text.isascii() and size_text.isdigit()):
        raise CheckpointError(f"tree size {size_text!r:.40} is not a decimal number")
    if size_text != "0" and size_text.startswith("0"):
        raise CheckpointError(f"tree size {size_text!r:.40} has a leading zero")
    if len(size_text) > len(str(TREE_SIZE_MAX_LEAVES)) or int(size_text) > TREE_SIZE_MAX_LEAVES:
        raise CheckpointError(f"tree size {size_text:.40} is beyond 2^64 - 1")
    root = _strict_base64(root_text, "root hash")
    if len(root) != ROOT_SIZE_BYTES:
        raise CheckpointError(f"root hash has {len(root)} bytes, not {ROOT_SIZE_BYTES}")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def stated_checkpoint(note_text: str) -> Checkpoint:
    """What a checkpoint note states (origin, size, root), its signatures not checked.

    For notes the ledger signed and keeps itself, read back to settle or export at their size;
    a note from elsewhere is opened with `open_checkpoint`. Raises CheckpointError if the text
    before the signatures is not a checkpoint.
    """
    split = note_text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("the note has no blank line before its signatures")
    return _parse_body(note_text[: split + 1])


def open_checkpoint(
    note_text: str | bytes,
    verifiers: VerifierKey | Iterable[VerifierKey],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Parse a signed checkpoint note and check its signatures against `verifiers`.

    Accepts the note if at least one signature is by a known key (same name and key id) and
    every signature by a known key verifies; signatures by other keys are ignored. If `origin` is
    given, the checkpoint must be for that log. Raises CheckpointError otherwise.
    """
    if isinstance(note_text, str):
        text = note_text
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise CheckpointError("the note is not valid Unicode text") from error
    else:
        data = bytes(note_text)
        if len(data) > NOTE_SIZE_MAX_BYTES:
            raise CheckpointError(f"the note exceeds {NOTE_SIZE_MAX_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CheckpointError(f"the note is not UTF-8 (byte {error.start})") from error
    if len(data) > NOTE_SIZE_MAX_BYTES:
        raise CheckpointError(f"the note exceeds {NOTE_SIZE_MAX_BYTES} bytes")
    control = _FORBIDDEN_CONTROL.search(text)
    if control:
        raise CheckpointError(
            f"the note holds control character {control.group()!r} at {control.start()}"
        )
    if not text.endswith("\n"):
        raise CheckpointError("the note does not end with a newline")
    # The text ends at the last blank line; checkpoint lines are never empty, so an extra blank
    # line anywhere leaves an empty line in the text or in the signatures, and fails below.
    split = text.rfind("\n\n")
    if split < 0:
        raise CheckpointError("the note has no blank line before its signatures")
    body = text[: split + 1]
    signature_block = text[split + 2 :]
    if not signature_block:
        raise CheckpointError("the note has no signature lines")
    signature_lines = signature_block[:-1].split("\n")
    if len(signature_lines) > SIGNATURE_LINES_MAX:
        raise CheckpointError(
            f"the note has {len(signature_lines)} signatures, more than {SIGNATURE_LINES_MAX}"
        )
    signatures = [
        _parse_signature_line(line, number) for number, line in enumerate(signature_lines, 1)
    ]
    checkpoint = _parse_body(body)

    known = {
        (key.name, key.key_id): key
        for key in ([verifiers] if isinstance(verifiers, VerifierKey) else verifiers)
    }
    message = body.encode("utf-8")
    verified_by = []
    for name, key_id, signature in signatures:
        verifier = known.get((name, key_id))
        if verifier is None:
            continue
        if not verifier.verify(message, signature):
            raise CheckpointError(f"the signature by known key {name} ({key_id.hex()}) is invalid")
        verified_by.append(name)
    if not verified_by:
        seen = ", ".join(f"{name} ({key_id.hex()})" for name, key_id, _ in signatures)
        raise CheckpointError(f"no signature by a known key; the note is signed by {seen}")
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"the checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint

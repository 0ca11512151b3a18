"""Ed25519 keys that sign ledger checkpoints as C2SP signed notes: generation, the note key text
forms, and private key files that only their owner may read.

Text forms (those of Go's golang.org/x/mod/sumdb/note, so other tools read our keys):

    signer key    PRIVATE+KEY+<name>+<key id, 8 hex digits>+<base64(0x01 || 32-byte seed)>
    verifier key  <name>+<key id, 8 hex digits>+<base64(0x01 || 32-byte public key)>

The key id is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key), as c2sp.org/
signed-note recommends; parsing recomputes it and refuses a key whose id does not match. A key
name is non-empty and holds no Unicode space, no "+" and no control character.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from raas.errors import RaasError

__all__ = [
    "SIGNATURE_TYPE_ED25519",
    "NoteKeyError",
    "SignerKey",
    "VerifierKey",
    "check_key_name",
    "compute_key_id",
    "generate",
    "load_signer_key",
    "load_verifier_keys",
    "parse_signer_key",
    "parse_verifier_key",
    "parse_verifier_keys",
    "write_signer_key",
]

SIGNATURE_TYPE_ED25519 = 0x01
SIGNER_KEY_PREFIX = "PRIVATE+KEY+"
KEY_ID_SIZE_BYTES = 4
PUBLIC_KEY_SIZE_BYTES = 32
SEED_SIZE_BYTES = 32
SIGNATURE_SIZE_BYTES = 64
# A key file holds one line of about 100 bytes; anything far larger is not a key.
KEY_FILE_SIZE_MAX_BYTES = 4_096
# Owner-only: a key readable or writable by the group or others is refused, as ssh does.
KEY_FILE_MODE = 0o600
_KEY_FILE_FORBIDDEN_MODE_BITS = 0o077


class NoteKeyError(RaasError):
    """A signer or verifier key is malformed, or its file is unsafe or cannot be written."""


def check_key_name(name: str) -> None:
    """Raise NoteKeyError unless `name` may name a note key (c2sp.org/signed-note)."""
    if not isinstance(name, str) or not name:
        raise NoteKeyError("a key name must be a non-empty string")
    for character in name:
        if character == "+" or character.isspace() or ord(character) < 0x20:
            raise NoteKeyError(
                f"key name {name!r} may not contain {character!r}: no spaces, '+' or controls"
            )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as error:
        raise NoteKeyError(f"key name {name!r} is not valid Unicode text") from error


def compute_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    material = name.encode("utf-8") + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_SIZE_BYTES]


def _strict_base64(text: str, what: str) -> bytes:
    """Decode standard padded base64, refusing any other spelling of the same bytes."""
    try:
        decoded = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as error:
        raise NoteKeyError(f"{what} is not valid base64") from error
    if base64.b64encode(decoded).decode("ascii") != text:
        raise NoteKeyError(f"{what} is not canonical base64")
    return decoded


def _parse_key_id(text: str, what: str) -> bytes:
    if len(text) != 2 * KEY_ID_SIZE_BYTES or any(c not in "0123456789abcdef" for c in text):
        raise NoteKeyError(f"{what}: key id {text!r} must be 8 lowercase hex digits")
    return bytes.fromhex(text)


class VerifierKey:
    """The public half of a note key: checks signatures made by the matching `SignerKey`."""

    __slots__ = ("_public", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        check_key_name(name)
        if len(public_key) != PUBLIC_KEY_SIZE_BYTES:
            raise NoteKeyError(
                f"an Ed25519 public key has {PUBLIC_KEY_SIZE_BYTES} bytes, got {len(public_key)}"
            )
        try:
            self._public = Ed25519PublicKey.from_public_bytes(bytes(public_key))
        except ValueError as error:
            raise NoteKeyError(f"key {name!r}: not an Ed25519 public key") from error
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = compute_key_id(name, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if `signature` (64 bytes, without the key id) signs `message` under this key."""
        if len(signature) != SIGNATURE_SIZE_BYTES:
            return False
        try:
            self._public.verify(bytes(signature), bytes(message))
        except InvalidSignature:
            return False
        return True

    def to_text(self) -> str:
        """The verifier key text: name+hex key id+base64(0x01 || public key)."""
        encoded = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{encoded.decode('ascii')}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VerifierKey):
            return NotImplemented
        return self.name == other.name and self.public_key == other.public_key

    def __hash__(self) -> int:
        return hash((self.name, self.public_key))

    def __repr__(self) -> str:
        return f"VerifierKey({self.to_text()!r})"


class SignerKey:
    """The private half of a note key. Its repr never shows the secret."""

    __slots__ = ("_private", "key_id", "name", "public_key")

    def __init__(self, name: str, seed: bytes) -> None:
        check_key_name(name)
        if len(seed) != SEED_SIZE_BYTES:
            raise NoteKeyError(
                f"an Ed25519 private key seed has {SEED_SIZE_BYTES} bytes, got {len(seed)}"
            )
        self._private = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        self.name = name
        self.public_key = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = compute_key_id(name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of `message` (deterministic, RFC 8032)."""
        return self._private.sign(bytes(message))

    def verifier(self) -> VerifierKey:
        """The matching public key."""
        return VerifierKey(self.name, self.public_key)

    def to_text(self) -> str:
        """The signer key text: PRIVATE+KEY+name+hex key id+base64(0x01 || seed). Secret."""
        seed = self._private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        encoded = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + seed).decode("ascii")
        return f"{SIGNER_KEY_PREFIX}{self.name}+{self.key_id.hex()}+{encoded}"

    def __repr__(self) -> str:
        return f"SignerKey(name={self.name!r}, key_id={self.key_id.hex()!r})"


def generate(name: str) -> tuple[str, str]:
    """A new key pair for `name`: (signer key text, verifier key text). Keep the first secret."""
    check_key_name(name)
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    signer = SignerKey(name, seed)
    return signer.to_text(), signer.verifier().to_text()


def _split_typed_key(encoded: str, what: str, size_bytes: int) -> bytes:
    raw = _strict_base64(encoded, what)
    if len(raw) != 1 + size_bytes or raw[0] != SIGNATURE_TYPE_ED25519:
        raise NoteKeyError(
            f"{what} must be base64 of 0x01 followed by {size_bytes} bytes (Ed25519)"
        )
    return raw[1:]


def parse_verifier_key(text: str) -> VerifierKey:
    """Read a verifier key text; the key id must match the name and public key."""
    # The base64 key may itself hold '+'; the name and the key id never do.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteKeyError(f"verifier key {text!r:.80} is not name+keyid+base64key")
    name, key_id_text, encoded = parts
    check_key_name(name)
    key_id = _parse_key_id(key_id_text, f"verifier key {name!r}")
    key = VerifierKey(
        name, _split_typed_key(encoded, f"verifier key {name!r}", PUBLIC_KEY_SIZE_BYTES)
    )
    if key.key_id != key_id:
        raise NoteKeyError(
            f"verifier key {name!r}: key id {key_id_text} does not match the name and key "
            f"(expected {key.key_id.hex()})"
        )
    return key


def parse_signer_key(text: str) -> SignerKey:
    """Read a signer key text; the key id must match the name and the derived public key."""
    if not text.startswith(SIGNER_KEY_PREFIX):
        # Never echo the text: it may be a secret with a typo.
        raise NoteKeyError(f"a signer key starts with {SIGNER_KEY_PREFIX!r}")
    parts = text[len(SIGNER_KEY_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise NoteKeyError("a signer key is PRIVATE+KEY+name+keyid+base64key")
    name, key_id_text, encoded = parts
    check_key_name(name)
    key_id = _parse_key_id(key_id_text, f"signer key {name!r}")
    key = SignerKey(name, _split_typed_key(encoded, f"signer key {name!r}", SEED_SIZE_BYTES))
    if key.key_id != key_id:
        raise NoteKeyError(
            f"signer key {name!r}: key id {key_id_text} does not match the name and key"
        )
    return key


def write_signer_key(path: str | os.PathLike[str], signer_key_text: str) -> None:
    """Write a signer key to a new file readable by its owner only (mode 0600).

    Refuses to overwrite anything already at `path`, including a symbolic link.
    """
    parse_signer_key(signer_key_text)
    target = Path(path)
    try:
        descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except FileExistsError as error:
        raise NoteKeyError(f"{target} already exists; refusing to overwrite a key") from error
    except OSError as error:
        raise NoteKeyError(f"cannot create key file {target}: {error.strerror}") from error
    try:
        # The umask can only clear bits, but be exact about the mode whatever it is.
        os.fchmod(descriptor, KEY_FILE_MODE)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(signer_key_text + "\n")
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        target.unlink(missing_ok=True)
        raise NoteKeyError(f"cannot write key file {target}: {error.strerror}") from error


def load_signer_key(path: str | os.PathLike[str]) -> SignerKey:
    """Read a signer key file, refusing one that the group or others may read or write."""
    target = Path(path)
    try:
        # Non-blocking so that a FIFO planted at the path cannot hang us; no effect on files.
        descriptor = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise NoteKeyError(f"cannot open key file {target}: {error.strerror}") from error
    try:
        # Check the file actually opened, not the path, so a swap in between changes nothing.
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NoteKeyError(f"key file {target} is not a regular file")
        mode = stat.S_IMODE(status.st_mode)
        if os.name == "posix" and mode & _KEY_FILE_FORBIDDEN_MODE_BITS:
            raise NoteKeyError(
                f"key file {target} has mode {mode:04o}: others may read or change it; "
                f"run chmod 600 {target}"
            )
        data = os.read(descriptor, KEY_FILE_SIZE_MAX_BYTES + 1)
    finally:
        os.close(descriptor)
    if len(data) > KEY_FILE_SIZE_MAX_BYTES:
        raise NoteKeyError(f"key file {target} is too large to be a key")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NoteKeyError(f"key file {target} is not UTF-8 text") from error
    # One line, with or without its newline.
    text = text.removesuffix("\n")
    if "\n" in text:
        raise NoteKeyError(f"key file {target} must hold a single line")
    return parse_signer_key(text)


def parse_verifier_keys(text: str) -> list[VerifierKey]:
    """Verifier keys from text holding one key per line (a key set, e.g. during rotation).

    Blank lines and lines starting with '#' are skipped, so a key set can carry comments such
    as which key is being retired.
    """
    keys = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keys.append(parse_verifier_key(stripped))
    return keys


def load_verifier_keys(path: str | os.PathLike[str]) -> list[VerifierKey]:
    """Verifier keys from a file, one per line, as `parse_verifier_keys` reads them."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise NoteKeyError(f"cannot read verifier keys from {target}: {error}") from error
    return parse_verifier_keys(text)

"""Note keys: the Go sumdb/note known answer, text forms, key ids, and key files that refuse to
be overwritten or read when others could see them."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from raas.errors import RaasError
from raas.ledger.keys import (
    NoteKeyError,
    SignerKey,
    VerifierKey,
    compute_key_id,
    generate,
    load_signer_key,
    load_verifier_keys,
    parse_signer_key,
    parse_verifier_key,
    parse_verifier_keys,
    write_signer_key,
)

# The worked example of golang.org/x/mod/sumdb/note (its package documentation): same key, same
# text, so Ed25519's determinism must reproduce the published signature byte for byte.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    b"If you think cryptography is the answer to your problem,\n"
    b"then you don't know what your problem is.\n"
)
GO_SIGNATURE = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)


def test_go_known_answer() -> None:
    signer = parse_signer_key(GO_SIGNER)
    assert signer.name == "PeterNeumann"
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.to_text() == GO_SIGNER
    assert signer.verifier().to_text() == GO_VERIFIER
    assert base64.b64encode(signer.key_id + signer.sign(GO_TEXT)).decode() == GO_SIGNATURE
    verifier = parse_verifier_key(GO_VERIFIER)
    assert verifier == signer.verifier()
    assert verifier.verify(GO_TEXT, base64.b64decode(GO_SIGNATURE)[4:])
    assert not verifier.verify(GO_TEXT + b"\n", base64.b64decode(GO_SIGNATURE)[4:])
    assert not verifier.verify(GO_TEXT, base64.b64decode(GO_SIGNATURE)[4:-1])


def test_key_id_is_the_signed_note_recommendation() -> None:
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    expected = hashlib.sha256(b"example.com/raas\n\x01" + public).digest()[:4]
    assert compute_key_id("example.com/raas", public) == expected
    signer = SignerKey("example.com/raas", bytes(range(32)))
    assert signer.key_id == expected
    assert signer.verifier().to_text() == (
        "example.com/raas+" + expected.hex() + "+" + base64.b64encode(b"\x01" + public).decode()
    )


def test_generate_gives_a_matching_pair_of_fresh_keys() -> None:
    signer_text, verifier_text = generate("log.example/raas")
    signer = parse_signer_key(signer_text)
    verifier = parse_verifier_key(verifier_text)
    assert signer_text.startswith("PRIVATE+KEY+log.example/raas+" + signer.key_id.hex() + "+")
    assert verifier_text.startswith("log.example/raas+" + signer.key_id.hex() + "+")
    assert verifier.verify(b"hello\n", signer.sign(b"hello\n"))
    assert generate("log.example/raas")[0] != signer_text


def test_signer_repr_hides_the_secret() -> None:
    signer = parse_signer_key(GO_SIGNER)
    assert repr(signer) == "SignerKey(name='PeterNeumann', key_id='c74f20a3')"
    assert "AYEKFALV" not in repr(signer)
    assert isinstance(NoteKeyError("x"), RaasError)


@pytest.mark.parametrize(
    "name", ["", "has space", "has+plus", "tab\there", "nbsp\u00a0here", "bell\x07", "line\nbreak"]
)
def test_bad_key_names_are_refused(name: str) -> None:
    with pytest.raises(NoteKeyError):
        generate(name)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("PeterNeumann+c74f20a3", "is not name\\+keyid\\+base64key"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "not valid base64"),
        # Python's decoder takes surplus padding; the canonical check does not.
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=", "not canonical"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX", "does not match"),
        # Go's own bad keys: wrong length, unknown algorithm (ids adjusted to match).
        (
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "canonical",
        ),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "0x01 followed"),
        (GO_SIGNER, "key id 'KEY' must be 8 lowercase hex digits"),
    ],
)
def test_malformed_verifier_keys_are_refused(text: str, message: str) -> None:
    with pytest.raises(NoteKeyError, match=message):
        parse_verifier_key(text)


def test_every_single_byte_change_to_a_verifier_key_is_refused() -> None:
    data = GO_VERIFIER.encode()
    for position in range(len(data)):
        changed = data[:position] + bytes([data[position] + 1]) + data[position + 1 :]
        with pytest.raises(NoteKeyError):
            parse_verifier_key(changed.decode("latin-1"))


def test_malformed_signer_keys_are_refused_without_echoing_them() -> None:
    with pytest.raises(NoteKeyError, match="starts with 'PRIVATE\\+KEY\\+'") as caught:
        parse_signer_key(GO_SIGNER.removeprefix("PRIVATE+"))
    assert "AYEKFALV" not in str(caught.value)
    with pytest.raises(NoteKeyError, match="does not match"):
        parse_signer_key(GO_SIGNER.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(NoteKeyError, match="0x01 followed by 32 bytes"):
        parse_signer_key(GO_SIGNER[:-4] + "KDE=")
    with pytest.raises(NoteKeyError, match="PRIVATE\\+KEY\\+name\\+keyid\\+base64key"):
        parse_signer_key("PRIVATE+KEY+PeterNeumann")


def test_key_file_is_written_owner_only_and_loads_back(tmp_path: Path) -> None:
    signer_text, verifier_text = generate("example.com/raas")
    path = tmp_path / "checkpoint.key"
    write_signer_key(path, signer_text)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == signer_text + "\n"
    loaded = load_signer_key(path)
    assert loaded.to_text() == signer_text
    assert loaded.verifier().to_text() == verifier_text


def test_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.key"
    first, _ = generate("example.com/raas")
    write_signer_key(path, first)
    second, _ = generate("example.com/raas")
    with pytest.raises(NoteKeyError, match="already exists; refusing to overwrite"):
        write_signer_key(path, second)
    assert path.read_text() == first + "\n"
    # Not through a symbolic link either, even a dangling one.
    link = tmp_path / "link.key"
    link.symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(NoteKeyError, match="already exists"):
        write_signer_key(link, second)
    assert not (tmp_path / "elsewhere.key").exists()


def test_write_refuses_a_malformed_key_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.key"
    with pytest.raises(NoteKeyError):
        write_signer_key(path, "PRIVATE+KEY+oops")
    assert not path.exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602, 0o620, 0o610, 0o601, 0o666])
def test_key_files_that_others_may_read_or_change_are_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "checkpoint.key"
    write_signer_key(path, generate("example.com/raas")[0])
    path.chmod(mode)
    with pytest.raises(NoteKeyError, match=f"has mode {mode:04o}: others may read or change it"):
        load_signer_key(path)
    path.chmod(0o400)
    assert load_signer_key(path).name == "example.com/raas"


def test_key_file_must_be_one_key_line(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.key"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(GO_SIGNER + "\n" + GO_SIGNER + "\n")
    with pytest.raises(NoteKeyError, match="single line"):
        load_signer_key(path)
    with pytest.raises(NoteKeyError, match="cannot open key file"):
        load_signer_key(tmp_path / "missing.key")
    with pytest.raises(NoteKeyError, match="not a regular file"):
        load_signer_key(tmp_path)


def test_verifier_key_sets_for_rotation(tmp_path: Path) -> None:
    _, old_verifier = generate("example.com/raas")
    _, new_verifier = generate("example.com/raas")
    text = f"# retiring 2026-12\n{old_verifier}\n\n  {new_verifier}  \n"
    keys = parse_verifier_keys(text)
    assert [key.to_text() for key in keys] == [old_verifier, new_verifier]
    path = tmp_path / "verifiers.txt"
    path.write_text(text)
    assert load_verifier_keys(path) == keys
    with pytest.raises(NoteKeyError, match="cannot read verifier keys"):
        load_verifier_keys(tmp_path / "missing.txt")
    with pytest.raises(NoteKeyError):
        parse_verifier_keys(old_verifier + "\nnot a key\n")


def test_verifier_key_equality_and_hash() -> None:
    first = parse_verifier_key(GO_VERIFIER)
    second = parse_verifier_key(GO_VERIFIER)
    assert first == second
    assert len({first, second}) == 1
    assert isinstance(first, VerifierKey)
    assert first != "PeterNeumann"

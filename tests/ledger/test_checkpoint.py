"""Signed checkpoints: the exact note bytes, strict parsing, unknown and failing signatures, key
rotation, and that no single-byte change to a signed note opens."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from raas.errors import RaasError
from raas.ledger.checkpoint import (
    NOTE_SIZE_MAX_BYTES,
    SIGNATURE_LINES_MAX,
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    sign_checkpoint,
    stated_checkpoint,
)
from raas.ledger.keys import SignerKey, VerifierKey, parse_signer_key

ORIGIN = "example.com/raas"
SEED = bytes(range(32))
SIGNER = SignerKey(ORIGIN, SEED)
VERIFIER = SIGNER.verifier()
ROOT = hashlib.sha256(b"a root").digest()
EMPTY_ROOT = hashlib.sha256(b"").digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def signed(body: str, signer: SignerKey = SIGNER) -> str:
    """A note over any text, signed correctly: so only the text's format can be at fault."""
    signature = signer.sign(body.encode("utf-8"))
    return f"{body}\n— {signer.name} {b64(signer.key_id + signature)}\n"


def other_signer(name: str = ORIGIN, seed_byte: int = 7) -> SignerKey:
    return SignerKey(name, bytes([seed_byte]) * 32)


def test_signed_note_is_exactly_the_c2sp_format() -> None:
    # Built here from the specs with the cryptography library directly, not with raas.
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    body = f"{ORIGIN}\n20852163\n{b64(ROOT)}\n"
    expected = f"{body}\n— {ORIGIN} {b64(key_id + private.sign(body.encode()))}\n"
    assert sign_checkpoint(ORIGIN, 20852163, ROOT, SIGNER) == expected
    assert Checkpoint(ORIGIN, 20852163, ROOT).body() == body


def test_open_returns_what_was_signed() -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER)
    assert open_checkpoint(note, [VERIFIER]) == Checkpoint(ORIGIN, 5, ROOT, ())
    assert open_checkpoint(note.encode("utf-8"), VERIFIER) == Checkpoint(ORIGIN, 5, ROOT)
    assert open_checkpoint(note, [VERIFIER], origin=ORIGIN).size == 5


def test_stated_reads_what_a_note_states_without_its_signatures() -> None:
    note = sign_checkpoint(ORIGIN, 20852163, ROOT, SIGNER)
    assert stated_checkpoint(note) == Checkpoint(ORIGIN, 20852163, ROOT)
    for broken in (note.replace("\n\n", "\n"), note.replace("20852163", "0208")):
        with pytest.raises(CheckpointError):
            stated_checkpoint(broken)


def test_the_empty_tree_has_size_0() -> None:
    note = sign_checkpoint(ORIGIN, 0, EMPTY_ROOT, SIGNER)
    assert note.startswith(f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— ")
    assert open_checkpoint(note, [VERIFIER]) == Checkpoint(ORIGIN, 0, EMPTY_ROOT)


def test_largest_size_is_uint64() -> None:
    note = sign_checkpoint(ORIGIN, 2**64 - 1, ROOT, SIGNER)
    assert open_checkpoint(note, [VERIFIER]).size == 18446744073709551615
    with pytest.raises(CheckpointError, match="beyond 2\\^64 - 1"):
        open_checkpoint(signed(f"{ORIGIN}\n18446744073709551616\n{b64(ROOT)}\n"), [VERIFIER])


def test_extension_lines_are_signed_and_returned() -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER, extensions=["period 2026-11", "x y"])
    assert note.startswith(f"{ORIGIN}\n5\n{b64(ROOT)}\nperiod 2026-11\nx y\n\n— ")
    opened = open_checkpoint(note, [VERIFIER])
    assert opened == Checkpoint(ORIGIN, 5, ROOT, ("period 2026-11", "x y"))


def test_checkpoint_error_is_a_raas_error() -> None:
    assert issubclass(CheckpointError, RaasError)


# --- which signatures count ----------------------------------------------------------------


def test_a_note_without_a_known_key_is_refused_and_names_its_signers() -> None:
    stranger = other_signer("stranger.example/log")
    note = sign_checkpoint(ORIGIN, 5, ROOT, stranger)
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(note, [VERIFIER])
    assert str(caught.value) == (
        f"no signature by a known key; the note is signed by "
        f"stranger.example/log ({stranger.key_id.hex()})"
    )
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        open_checkpoint(note, [])


def test_signatures_by_unknown_keys_are_ignored() -> None:
    witness = other_signer("witness.example/w1")
    note = sign_checkpoint(ORIGIN, 5, ROOT, [witness, SIGNER])
    assert open_checkpoint(note, [VERIFIER]) == Checkpoint(ORIGIN, 5, ROOT)
    # A garbage signature from an unknown key changes nothing either.
    garbage = f"— witness.example/w2 {b64(bytes(4 + 64))}\n"
    assert open_checkpoint(note + garbage, [VERIFIER]).size == 5


def test_same_name_other_key_is_an_unknown_key() -> None:
    impostor = other_signer(ORIGIN)
    assert impostor.key_id != SIGNER.key_id
    note = sign_checkpoint(ORIGIN, 5, ROOT, impostor)
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        open_checkpoint(note, [VERIFIER])


def test_same_key_id_other_name_is_an_unknown_key() -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER)
    renamed = note.replace(f"— {ORIGIN} ", "— other.example/log ")
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        open_checkpoint(renamed, [VERIFIER])


def test_a_failing_signature_by_a_known_key_rejects_the_whole_note() -> None:
    witness = other_signer("witness.example/w1")
    good = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER)
    forged = f"— {witness.name} {b64(witness.key_id + bytes(64))}\n"
    assert open_checkpoint(good + forged, [VERIFIER]).size == 5
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(good + forged, [VERIFIER, witness.verifier()])
    assert str(caught.value) == (
        f"the signature by known key witness.example/w1 ({witness.key_id.hex()}) is invalid"
    )
    short = f"— {witness.name} {b64(witness.key_id + bytes(63))}\n"
    with pytest.raises(CheckpointError, match="is invalid"):
        open_checkpoint(good + short, [VERIFIER, witness.verifier()])


def test_rotation_old_and_new_keys_in_one_key_set() -> None:
    old = SIGNER
    new = other_signer(ORIGIN, seed_byte=9)
    key_set = [old.verifier(), new.verifier()]
    signed_by_new = sign_checkpoint(ORIGIN, 6, ROOT, new)
    assert open_checkpoint(signed_by_new, key_set) == Checkpoint(ORIGIN, 6, ROOT)
    assert open_checkpoint(signed_by_new, [new.verifier()]).size == 6
    with pytest.raises(CheckpointError, match="no signature by a known key"):
        open_checkpoint(signed_by_new, [old.verifier()])
    # During the switch the log signs with both, so auditors holding either key can open it.
    signed_by_both = sign_checkpoint(ORIGIN, 6, ROOT, [old, new])
    assert signed_by_both.count("\n— ") == 2
    for verifiers in ([old.verifier()], [new.verifier()], key_set):
        assert open_checkpoint(signed_by_both, verifiers).size == 6


def test_expected_origin_is_checked() -> None:
    note = sign_checkpoint("other.example/log", 5, ROOT, SIGNER)
    assert open_checkpoint(note, [VERIFIER]).origin == "other.example/log"
    with pytest.raises(CheckpointError, match=r"is for log 'other\.example/log', not"):
        open_checkpoint(note, [VERIFIER], origin=ORIGIN)


def test_the_c2sp_example_parses_and_names_its_key() -> None:
    example = (
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n"
        "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5"
        "/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    )
    with pytest.raises(CheckpointError) as caught:
        open_checkpoint(example, [VERIFIER])
    assert str(caught.value) == (
        "no signature by a known key; the note is signed by example.com/behind-the-sofa (033de0ae)"
    )


# --- strict parsing ---------------------------------------------------------------------------

GOOD_BODY = f"{ORIGIN}\n5\n{b64(ROOT)}\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{ORIGIN}\n05\n{b64(ROOT)}\n", "leading zero"),
        (f"{ORIGIN}\n00\n{b64(ROOT)}\n", "leading zero"),
        (f"{ORIGIN}\n-1\n{b64(ROOT)}\n", "not a decimal number"),
        (f"{ORIGIN}\n+5\n{b64(ROOT)}\n", "not a decimal number"),
        (f"{ORIGIN}\n 5\n{b64(ROOT)}\n", "not a decimal number"),
        (f"{ORIGIN}\n5 \n{b64(ROOT)}\n", "not a decimal number"),
        (f"{ORIGIN}\n\u0665\n{b64(ROOT)}\n", "not a decimal number"),  # Arabic-Indic five
        (f"{ORIGIN}\n5_000\n{b64(ROOT)}\n", "not a decimal number"),
        (f"{ORIGIN}\n0x5\n{b64(ROOT)}\n", "not a decimal number"),
        (f"{ORIGIN}\n5\n{b64(ROOT)}=\n", "root hash is not valid base64"),
        (f"{ORIGIN}\n5\n{b64(ROOT)[:-1]}\n", "root hash is not valid base64"),
        (f"{ORIGIN}\n5\n{b64(ROOT[:31])}\n", "root hash has 31 bytes, not 32"),
        (f"{ORIGIN}\n5\n{b64(ROOT + ROOT)}\n", "root hash has 64 bytes, not 32"),
        (f"{ORIGIN}\n5\n {b64(ROOT)}\n", "root hash is not valid base64"),
        (f"{ORIGIN}\n5\n-{b64(ROOT)[1:]}\n", "not valid base64"),  # URL-safe alphabet
        (f"\n5\n{b64(ROOT)}\n", "line 1 is empty"),
        (f"{ORIGIN}\n5\n", "this note text has 2 lines"),
        (f"{ORIGIN}\n5\n{b64(ROOT)}\n\nextension\n", "line 4 is empty"),
        (f"{ORIGIN}\n5\n{b64(ROOT)}\n\n", "line 4 is empty"),
    ],
)
def test_malformed_checkpoint_text_is_refused_even_when_signed(body: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        open_checkpoint(signed(body), [VERIFIER])


def test_the_root_hash_padding_bits_must_be_zero() -> None:
    # 32 bytes take 43 base64 characters and one '='; the last character carries 2 spare bits.
    text = b64(ROOT)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(text[-2])
    assert last % 4 == 0
    sloppy = text[:-2] + alphabet[last + 1] + "="
    assert base64.b64decode(sloppy) == ROOT  # Python alone would take it
    with pytest.raises(CheckpointError, match="not canonical base64"):
        open_checkpoint(signed(f"{ORIGIN}\n5\n{sloppy}\n"), [VERIFIER])


def test_the_signature_padding_bits_must_be_zero() -> None:
    # 68 bytes (key id and signature) end in a 2-byte group: one '=' and 2 spare bits before it.
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(note[-3])
    assert note.endswith("=\n") and last % 4 == 0
    sloppy = note[:-3] + alphabet[last + 2] + "=\n"
    assert base64.b64decode(sloppy.split(" ")[-1]) == base64.b64decode(note.split(" ")[-1])
    with pytest.raises(CheckpointError, match="signature line 1 is not canonical base64"):
        open_checkpoint(sloppy, [VERIFIER])


def note_parts() -> tuple[str, str]:
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER)
    body, signature_line = note.split("\n\n")
    return body + "\n", signature_line  # the signature line keeps its newline


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda body, line: body + "\n" + line.rstrip("\n"), "does not end with a newline"),
        (lambda body, line: body + line, "no blank line before its signatures"),
        (lambda body, line: body + "\n\n" + line, "line 4 is empty"),
        (lambda body, line: body + "\n" + line + "\n", "no signature lines"),
        (lambda body, line: body + "\n" + line + "\n" + line, "line 4 is empty"),
        (lambda body, line: body + "\n", "no signature lines"),
        (lambda body, line: body.replace("\n", "\r\n") + "\r\n" + line, "control character"),
        (lambda body, line: body + "\n" + line.replace("\n", "\r\n"), "control character"),
        (lambda body, line: "\t" + body + "\n" + line, "control character '\\\\t'"),
        (lambda body, line: body + "\n" + line.replace("— ", "-- "), "does not start with '— '"),
        (lambda body, line: body + "\n" + line.replace("— ", "—"), "does not start with '— '"),
        (lambda body, line: body + "\n" + line.replace("— ", "—  "), "key name must be"),
        (lambda body, line: body + "\n" + line.replace(f"{ORIGIN} ", f"{ORIGIN}  "), "base64"),
        (lambda body, line: body + "\n" + line.replace(f"{ORIGIN} ", ORIGIN), "no space"),
        (lambda body, line: body + "\n" + line.replace(f"{ORIGIN} ", "a+b "), "may not contain"),
        (lambda body, line: body + "\n" + line[:-2] + "\n", "not valid base64"),
        (lambda body, line: body + "\n" + line[:-1] + "=\n", "not valid base64"),
        (lambda body, line: body + "\n" + line[:-1] + " \n", "not valid base64"),
        (
            lambda body, line: body + "\n" + f"— {ORIGIN} {b64(SIGNER.key_id)}\n",
            "no signature after the key id",
        ),
    ],
)
def test_malformed_notes_are_refused(make: object, message: str) -> None:
    body, line = note_parts()
    note = make(body, line)  # type: ignore[operator]
    with pytest.raises(CheckpointError, match=message):
        open_checkpoint(note, [VERIFIER])


def test_signature_count_is_capped() -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER)
    stranger = f"— stranger.example/log {b64(bytes(68))}\n"
    assert open_checkpoint(note + stranger * (SIGNATURE_LINES_MAX - 1), [VERIFIER]).size == 5
    with pytest.raises(CheckpointError, match=f"more than {SIGNATURE_LINES_MAX}"):
        open_checkpoint(note + stranger * SIGNATURE_LINES_MAX, [VERIFIER])


def test_note_size_is_capped() -> None:
    padding = "x" * NOTE_SIZE_MAX_BYTES
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER)
    with pytest.raises(CheckpointError, match=f"exceeds {NOTE_SIZE_MAX_BYTES} bytes"):
        open_checkpoint(padding + note, [VERIFIER])
    with pytest.raises(CheckpointError, match=f"exceeds {NOTE_SIZE_MAX_BYTES} bytes"):
        open_checkpoint((padding + note).encode(), [VERIFIER])
    with pytest.raises(CheckpointError, match="would exceed"):
        sign_checkpoint(ORIGIN, 5, ROOT, SIGNER, extensions=[padding])


def test_text_must_be_utf8() -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER).encode()
    with pytest.raises(CheckpointError, match="not UTF-8 \\(byte 0\\)"):
        open_checkpoint(b"\xff" + note, [VERIFIER])
    with pytest.raises(CheckpointError, match="not valid Unicode"):
        open_checkpoint("\udc80" + note.decode(), [VERIFIER])


def test_every_single_byte_change_fails_to_open() -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER).encode("utf-8")
    assert open_checkpoint(note, [VERIFIER]).size == 5
    opened = []
    for position in range(len(note)):
        variants = [note[:position] + note[position + 1 :]]  # the byte deleted
        variants.append(note[:position] + note[position : position + 1] + note[position:])
        for value in range(256):
            if value != note[position]:
                variants.append(note[:position] + bytes([value]) + note[position + 1 :])
        for variant in variants:
            try:
                open_checkpoint(variant, [VERIFIER])
            except CheckpointError:
                continue
            opened.append((position, variant))
    assert opened == []


# --- signing inputs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("", 5, ROOT), "origin must be a non-empty string"),
        (("a\nb", 5, ROOT), "may not contain newlines"),
        (("a\tb", 5, ROOT), "may not contain newlines or control"),
        ((ORIGIN, -1, ROOT), "tree size must be an integer"),
        ((ORIGIN, 2**64, ROOT), "tree size must be an integer"),
        ((ORIGIN, True, ROOT), "tree size must be an integer"),
        ((ORIGIN, 5, ROOT[:31]), "root must be 32 bytes"),
        ((ORIGIN, 5, ROOT.hex()), "root must be 32 bytes"),
    ],
)
def test_bad_signing_inputs_are_refused(arguments: tuple[object, ...], message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        origin, size, root = arguments
        sign_checkpoint(origin, size, root, SIGNER)  # type: ignore[arg-type]


def test_bad_extensions_and_signers_are_refused() -> None:
    with pytest.raises(CheckpointError, match="extension line #1 must be a non-empty"):
        sign_checkpoint(ORIGIN, 5, ROOT, SIGNER, extensions=["ok", ""])
    with pytest.raises(CheckpointError, match=r"extension line #0 .* may not contain newlines"):
        sign_checkpoint(ORIGIN, 5, ROOT, SIGNER, extensions=["a\n\nb"])
    with pytest.raises(CheckpointError, match="at least one signer"):
        sign_checkpoint(ORIGIN, 5, ROOT, [])
    with pytest.raises(CheckpointError, match="the same key is given twice"):
        sign_checkpoint(ORIGIN, 5, ROOT, [SIGNER, parse_signer_key(SIGNER.to_text())])


def test_verifier_keys_are_matched_by_name_and_id_not_object() -> None:
    note = sign_checkpoint(ORIGIN, 5, ROOT, SIGNER)
    copy = VerifierKey(ORIGIN, VERIFIER.public_key)
    assert open_checkpoint(note, [copy]).size == 5

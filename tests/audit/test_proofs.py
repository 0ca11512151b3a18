"""The verifiers' rules, one by one: size 0, equal sizes, bounds, hash lengths, and the error's
roots. Known-good proofs are the classic CT vectors, written out here so this file does not lean
on the prover."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from raas.audit.proofs import EMPTY_ROOT, ProofError, verify_consistency, verify_inclusion
from raas.errors import RaasError


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# Leaf hashes and roots of the classic eight-entry CT tree (certificate-transparency-go).
LEAF_0 = hashlib.sha256(b"\x00").digest()  # leaf hash of the empty entry
LEAF_5 = hashlib.sha256(b"\x00" + bytes.fromhex("40414243")).digest()
ROOT_1 = h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
ROOT_2 = h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")
ROOT_4 = h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")
ROOT_6 = h("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef")
ROOT_8 = h("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
PROOF_0_IN_8 = [
    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
]
PROOF_5_IN_8 = [
    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
]
CONSISTENCY_6_TO_8 = [
    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
]
SOME_HASH = bytes(range(32))


def test_known_good_proofs_verify() -> None:
    assert LEAF_0 == ROOT_1
    verify_inclusion(LEAF_0, 0, 1, [], ROOT_1)
    verify_inclusion(LEAF_0, 0, 8, PROOF_0_IN_8, ROOT_8)
    verify_inclusion(LEAF_5, 5, 8, PROOF_5_IN_8, ROOT_8)
    verify_consistency(6, 8, CONSISTENCY_6_TO_8, ROOT_6, ROOT_8)
    verify_consistency(1, 8, PROOF_0_IN_8, ROOT_1, ROOT_8)


def test_proof_error_is_a_raas_error_and_carries_both_roots() -> None:
    wrong_root = bytes(32)
    with pytest.raises(ProofError) as caught:
        verify_inclusion(LEAF_5, 5, 8, PROOF_5_IN_8, wrong_root)
    error = caught.value
    assert isinstance(error, RaasError)
    assert error.expected_root == wrong_root
    assert error.actual_root == ROOT_8
    assert str(error) == (
        "inclusion proof for leaf 5 does not lead to the root of size 8 "
        f"(expected root {wrong_root.hex()}, proof gives {ROOT_8.hex()})"
    )


def test_a_proof_for_another_leaf_gives_another_root() -> None:
    with pytest.raises(ProofError) as caught:
        verify_inclusion(LEAF_0, 5, 8, PROOF_5_IN_8, ROOT_8)
    assert caught.value.expected_root == ROOT_8
    assert caught.value.actual_root is not None
    assert caught.value.actual_root != ROOT_8


# --- inclusion: size 0 and bounds -----------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1, 5])
def test_inclusion_in_size_0_is_always_an_error(index: int) -> None:
    for root in (EMPTY_ROOT, SOME_HASH):
        with pytest.raises(ProofError, match="a tree of size 0 includes no leaf"):
            verify_inclusion(SOME_HASH, index, 0, [], root)


@pytest.mark.parametrize(("index", "size"), [(1, 1), (8, 8), (9, 8), (2**64, 8)])
def test_index_at_or_beyond_size_is_an_error(index: int, size: int) -> None:
    with pytest.raises(ProofError, match=f"leaf index {index} is not in a tree of size {size}"):
        verify_inclusion(LEAF_0, index, size, PROOF_0_IN_8, ROOT_8)


@pytest.mark.parametrize(("index", "size"), [(-1, 8), (0, -1), (True, 8)])
def test_negative_or_non_integer_positions_are_errors(index: int, size: int) -> None:
    with pytest.raises(ProofError, match="must be a non-negative integer"):
        verify_inclusion(LEAF_0, index, size, PROOF_0_IN_8, ROOT_8)


def test_inclusion_proof_must_have_the_exact_length() -> None:
    with pytest.raises(ProofError, match="has 3 hashes, got 2"):
        verify_inclusion(LEAF_0, 0, 8, PROOF_0_IN_8[:2], ROOT_8)
    with pytest.raises(ProofError, match="has 3 hashes, got 4"):
        verify_inclusion(LEAF_0, 0, 8, [*PROOF_0_IN_8, ROOT_8], ROOT_8)
    with pytest.raises(ProofError, match="has 0 hashes, got 1"):
        verify_inclusion(LEAF_0, 0, 1, [ROOT_1], ROOT_1)


def test_hashes_must_be_32_bytes() -> None:
    with pytest.raises(ProofError, match="leaf hash must be a 32-byte hash, got 31"):
        verify_inclusion(LEAF_0[:31], 0, 1, [], ROOT_1)
    with pytest.raises(ProofError, match="root must be a 32-byte hash, got 0"):
        verify_inclusion(LEAF_0, 0, 1, [], b"")
    with pytest.raises(ProofError, match="proof element #1 must be a 32-byte hash"):
        verify_inclusion(LEAF_0, 0, 8, [PROOF_0_IN_8[0], b"", PROOF_0_IN_8[2]], ROOT_8)


def test_an_interior_node_cannot_pass_for_a_leaf() -> None:
    # Node [0, 2) is SHA-256(0x01 || leaf 0 || leaf 1). Offered as a 64-byte "leaf" with an
    # empty first proof element, the same bytes would hash to that node and then to the root of
    # size 4, "including" a leaf that was never appended, if lengths went unchecked.
    leaf_1 = PROOF_0_IN_8[0]
    node_2_to_4 = PROOF_0_IN_8[1]
    assert hashlib.sha256(b"\x01" + LEAF_0 + leaf_1).digest() == ROOT_2
    assert hashlib.sha256(b"\x01" + ROOT_2 + node_2_to_4).digest() == ROOT_4
    with pytest.raises(ProofError, match="leaf hash must be a 32-byte hash, got 64"):
        verify_inclusion(LEAF_0 + leaf_1, 0, 4, [b"", node_2_to_4], ROOT_4)
    with pytest.raises(ProofError, match="proof element #0 must be a 32-byte hash"):
        verify_inclusion(LEAF_0, 0, 4, [leaf_1[:16], leaf_1[16:] + node_2_to_4], ROOT_4)


# --- consistency: size 0, equal sizes, order -------------------------------------------------


def test_consistency_from_0_accepts_only_an_empty_proof_and_any_new_root() -> None:
    verify_consistency(0, 8, [], EMPTY_ROOT, ROOT_8)
    verify_consistency(0, 1, [], EMPTY_ROOT, SOME_HASH)
    with pytest.raises(ProofError, match="from size 0 is empty, got 1"):
        verify_consistency(0, 8, [ROOT_8], EMPTY_ROOT, ROOT_8)


def test_consistency_from_0_needs_the_empty_tree_root_and_a_32_byte_new_root() -> None:
    with pytest.raises(ProofError, match="not the root of the empty tree") as caught:
        verify_consistency(0, 8, [], SOME_HASH, ROOT_8)
    assert (caught.value.expected_root, caught.value.actual_root) == (SOME_HASH, EMPTY_ROOT)
    with pytest.raises(ProofError, match="new root must be a 32-byte hash, got 12"):
        verify_consistency(0, 1, [], EMPTY_ROOT, b"don't care 2")


def test_equal_sizes_need_an_empty_proof_and_equal_roots() -> None:
    verify_consistency(8, 8, [], ROOT_8, ROOT_8)
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="between equal sizes is empty, got 1"):
        verify_consistency(8, 8, [ROOT_8], ROOT_8, ROOT_8)
    with pytest.raises(ProofError, match="two roots given for the same size 8") as caught:
        verify_consistency(8, 8, [], ROOT_6, ROOT_8)
    assert (caught.value.expected_root, caught.value.actual_root) == (ROOT_8, ROOT_6)


def test_equal_size_0_needs_the_empty_tree_root() -> None:
    with pytest.raises(ProofError, match="not the root of the empty tree"):
        verify_consistency(0, 0, [], SOME_HASH, SOME_HASH)
    with pytest.raises(ProofError, match="two roots given for the same size 0"):
        verify_consistency(0, 0, [], EMPTY_ROOT, SOME_HASH)


@pytest.mark.parametrize(("old_size", "new_size"), [(1, 0), (9, 8), (8, 6)])
def test_old_size_beyond_new_size_is_an_error(old_size: int, new_size: int) -> None:
    with pytest.raises(ProofError, match=f"old size {old_size} is larger than new size {new_size}"):
        verify_consistency(old_size, new_size, [], ROOT_8, ROOT_8)


def test_growing_sizes_need_a_proof_of_exactly_the_right_length() -> None:
    with pytest.raises(ProofError, match="from size 6 to 8 is empty"):
        verify_consistency(6, 8, [], ROOT_6, ROOT_8)
    with pytest.raises(ProofError, match="shorter than the path"):
        verify_consistency(6, 8, CONSISTENCY_6_TO_8[:2], ROOT_6, ROOT_8)
    with pytest.raises(ProofError, match="longer than the path"):
        verify_consistency(6, 8, [*CONSISTENCY_6_TO_8, ROOT_8], ROOT_6, ROOT_8)
    with pytest.raises(ProofError, match="proof element #0 must be a 32-byte hash"):
        verify_consistency(6, 8, [b"", *CONSISTENCY_6_TO_8], ROOT_6, ROOT_8)


def test_consistency_names_the_root_that_does_not_match() -> None:
    with pytest.raises(ProofError, match="does not lead to the old root of size 6") as caught:
        verify_consistency(6, 8, CONSISTENCY_6_TO_8, SOME_HASH, ROOT_8)
    assert (caught.value.expected_root, caught.value.actual_root) == (SOME_HASH, ROOT_6)
    with pytest.raises(ProofError, match="does not lead to the new root of size 8") as caught:
        verify_consistency(6, 8, CONSISTENCY_6_TO_8, ROOT_6, SOME_HASH)
    assert (caught.value.expected_root, caught.value.actual_root) == (SOME_HASH, ROOT_8)


def test_consistency_roots_must_be_hashes_when_sizes_grow() -> None:
    with pytest.raises(ProofError, match="old root must be a 32-byte hash"):
        verify_consistency(6, 8, CONSISTENCY_6_TO_8, ROOT_6[:16], ROOT_8)
    with pytest.raises(ProofError, match="new root must be a 32-byte hash"):
        verify_consistency(6, 8, CONSISTENCY_6_TO_8, ROOT_6, ROOT_8 + b"\x00")


def test_verifier_does_not_import_the_prover() -> None:
    import raas.audit.proofs as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"__future__", "hashlib", "collections.abc", "raas.errors"}

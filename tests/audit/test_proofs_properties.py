"""Prover against verifier on random trees of up to 3,000 leaves: roots equal a naive recursive
MTH, proofs verify, and flipping any single byte of a proof, a leaf hash or a root is caught."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raas.audit.proofs import ProofError, verify_consistency, verify_inclusion
from raas.ledger.merkle import MerkleFrontier, MerkleTree

SIZE_MAX_LEAVES = 3_000
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def naive_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 MTH straight from its recursive definition."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return sha256(b"\x01" + naive_root(leaves[:split]) + naive_root(leaves[split:]))


def make_leaves(size: int, salt: bytes) -> list[bytes]:
    return [sha256(b"\x00" + salt + index.to_bytes(4, "big")) for index in range(size)]


def flipped(value: bytes, position: int, mask: int) -> bytes:
    return value[:position] + bytes([value[position] ^ mask]) + value[position + 1 :]


def raises_proof_error(check: Callable[..., None], *arguments: object) -> bool:
    try:
        check(*arguments)
    except ProofError:
        return True
    return False


@PROPERTY_SETTINGS
@given(
    size=st.integers(1, SIZE_MAX_LEAVES),
    salt=st.binary(max_size=4),
    data=st.data(),
)
def test_inclusion_proofs_verify_and_any_flipped_byte_fails(
    size: int, salt: bytes, data: st.DataObject
) -> None:
    leaves = make_leaves(size, salt)
    tree = MerkleTree(leaves)
    root = tree.root()
    assert root == naive_root(leaves)
    mask = data.draw(st.integers(1, 255), label="mask")
    for index in {0, size - 1, data.draw(st.integers(0, size - 1), label="index")}:
        proof = tree.inclusion_proof(index, size)
        verify_inclusion(leaves[index], index, size, proof, root)
        for element_position, element in enumerate(proof):
            for position in range(len(element)):
                bad_proof = list(proof)
                bad_proof[element_position] = flipped(element, position, mask)
                assert raises_proof_error(
                    verify_inclusion, leaves[index], index, size, bad_proof, root
                )
        for position in range(32):
            assert raises_proof_error(
                verify_inclusion, leaves[index], index, size, proof, flipped(root, position, mask)
            )
            assert raises_proof_error(
                verify_inclusion, flipped(leaves[index], position, mask), index, size, proof, root
            )


@PROPERTY_SETTINGS
@given(
    new_size=st.integers(2, SIZE_MAX_LEAVES),
    salt=st.binary(max_size=4),
    data=st.data(),
)
def test_consistency_proofs_verify_and_any_flipped_byte_fails(
    new_size: int, salt: bytes, data: st.DataObject
) -> None:
    leaves = make_leaves(new_size, salt)
    tree = MerkleTree(leaves)
    old_size = data.draw(st.integers(1, new_size - 1), label="old_size")
    old_root, new_root = tree.root(old_size), tree.root(new_size)
    assert old_root == naive_root(leaves[:old_size])
    assert new_root == naive_root(leaves)
    proof = tree.consistency_proof(old_size, new_size)
    verify_consistency(old_size, new_size, proof, old_root, new_root)
    mask = data.draw(st.integers(1, 255), label="mask")
    for element_position, element in enumerate(proof):
        for position in range(len(element)):
            bad_proof = list(proof)
            bad_proof[element_position] = flipped(element, position, mask)
            assert raises_proof_error(
                verify_consistency, old_size, new_size, bad_proof, old_root, new_root
            )
    for position in range(32):
        bad_old_root = flipped(old_root, position, mask)
        bad_new_root = flipped(new_root, position, mask)
        assert raises_proof_error(
            verify_consistency, old_size, new_size, proof, bad_old_root, new_root
        )
        assert raises_proof_error(
            verify_consistency, old_size, new_size, proof, old_root, bad_new_root
        )
    # The same proof says nothing about other sizes.
    for other_old in {old_size - 1, old_size + 1} - {0, new_size}:
        assert raises_proof_error(
            verify_consistency, other_old, new_size, proof, old_root, new_root
        )


@PROPERTY_SETTINGS
@given(size=st.integers(0, SIZE_MAX_LEAVES), salt=st.binary(max_size=4))
def test_frontier_and_tree_agree_with_the_naive_root(size: int, salt: bytes) -> None:
    leaves = make_leaves(size, salt)
    frontier = MerkleFrontier()
    frontier.extend(leaves)
    expected = naive_root(leaves)
    assert frontier.root() == expected
    assert MerkleFrontier.from_bytes(frontier.to_bytes()).root() == expected
    assert MerkleTree(leaves).root() == expected

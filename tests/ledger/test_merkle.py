"""The prover: roots, inclusion and consistency proofs against RFC 6962's definitions and the
classic CT test vectors, and the frontier a store persists."""

from __future__ import annotations

import hashlib

import pytest

from raas.core.canonical import leaf_hash
from raas.ledger.merkle import (
    EMPTY_ROOT,
    MerkleFrontier,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    node_hash,
    root,
)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def naive_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, recursively, over leaf hashes."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return sha256(b"\x01" + naive_root(leaves[:split]) + naive_root(leaves[split:]))


def naive_path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 section 2.1.3.1 PATH(m, D[n])."""
    if len(leaves) <= 1:
        return []
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    if index < split:
        return [*naive_path(index, leaves[:split]), naive_root(leaves[split:])]
    return [*naive_path(index - split, leaves[split:]), naive_root(leaves[:split])]


def naive_subproof(old_size: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    """RFC 9162 section 2.1.4.1 SUBPROOF(m, D[n], b)."""
    if old_size == len(leaves):
        return [] if complete else [naive_root(leaves)]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    if old_size <= split:
        return [*naive_subproof(old_size, leaves[:split], complete), naive_root(leaves[split:])]
    return [
        *naive_subproof(old_size - split, leaves[split:], False),
        naive_root(leaves[:split]),
    ]


# The classic CT vectors (certificate-transparency-go, transparency-dev/merkle verify_test.go):
# eight entries, the roots of the first 1..8 of them, and a few known proofs.
CT_ENTRIES = [
    bytes.fromhex(text)
    for text in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                 "606162636465666768696a6b6c6d6e6f"]
]  # fmt: skip
CT_ROOTS = [
    bytes.fromhex(text)
    for text in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
CT_LEAVES = [leaf_hash(entry) for entry in CT_ENTRIES]

CT_INCLUSION_PROOFS = {
    # (index, size): proof
    (0, 1): [],
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}

CT_CONSISTENCY_PROOFS = {
    # (old size, new size): proof
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (6, 7): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


def leaves_for(count: int, salt: bytes = b"") -> list[bytes]:
    return [leaf_hash(salt + index.to_bytes(4, "big")) for index in range(count)]


def test_hashing_primitives_are_rfc_6962() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    left, right = bytes(range(32)), bytes(range(32, 64))
    assert node_hash(left, right) == sha256(b"\x01" + left + right)


def test_roots_of_the_ct_vectors() -> None:
    tree = MerkleTree(CT_LEAVES)
    assert tree.root(0) == EMPTY_ROOT
    for size in range(1, 9):
        assert tree.root(size) == CT_ROOTS[size - 1], size
        assert root(CT_LEAVES, size) == CT_ROOTS[size - 1], size
    assert tree.root() == CT_ROOTS[7]


@pytest.mark.parametrize(("index", "size"), sorted(CT_INCLUSION_PROOFS))
def test_inclusion_proofs_of_the_ct_vectors(index: int, size: int) -> None:
    expected = [bytes.fromhex(text) for text in CT_INCLUSION_PROOFS[(index, size)]]
    assert MerkleTree(CT_LEAVES).inclusion_proof(index, size) == expected
    assert inclusion_proof(CT_LEAVES, index, size) == expected


@pytest.mark.parametrize(("old_size", "new_size"), sorted(CT_CONSISTENCY_PROOFS))
def test_consistency_proofs_of_the_ct_vectors(old_size: int, new_size: int) -> None:
    expected = [bytes.fromhex(text) for text in CT_CONSISTENCY_PROOFS[(old_size, new_size)]]
    assert MerkleTree(CT_LEAVES).consistency_proof(old_size, new_size) == expected
    assert consistency_proof(CT_LEAVES, old_size, new_size) == expected


def test_every_proof_up_to_size_70_equals_the_rfc_definitions() -> None:
    leaves = leaves_for(70)
    tree = MerkleTree(leaves)
    for size in range(71):
        prefix = leaves[:size]
        assert tree.root(size) == naive_root(prefix)
        for index in range(size):
            assert tree.inclusion_proof(index, size) == naive_path(index, prefix), (index, size)
        for old_size in range(1, size):
            assert tree.consistency_proof(old_size, size) == naive_subproof(
                old_size, prefix, True
            ), (old_size, size)
        assert tree.consistency_proof(size, size) == []
        assert tree.consistency_proof(0, size) == []


def test_a_callable_source_is_read_in_ranges() -> None:
    leaves = leaves_for(1000)
    asked: list[tuple[int, int]] = []

    def read(start: int, end: int) -> list[bytes]:
        asked.append((start, end))
        return leaves[start:end]

    assert root(read, 1000) == naive_root(leaves)
    assert asked == [(0, 1000)]
    assert inclusion_proof(read, 999, 1000) == naive_path(999, leaves)
    assert consistency_proof(read, 3, 700) == naive_subproof(3, leaves[:700], True)
    assert asked[-1] == (0, 700)


def test_a_source_that_gives_the_wrong_count_is_refused() -> None:
    with pytest.raises(ValueError, match=r"gave 2 hashes for \[0, 3\)"):
        MerkleTree.from_source(lambda start, end: leaves_for(2), 3)
    with pytest.raises(ValueError, match="holds 2 hashes, need 3"):
        MerkleTree.from_source(leaves_for(2), 3)


def test_bad_requests_are_refused() -> None:
    tree = MerkleTree(leaves_for(5))
    with pytest.raises(ValueError, match="leaf index 5 is not in a tree of size 5"):
        tree.inclusion_proof(5, 5)
    with pytest.raises(ValueError, match="leaf index 0 is not in a tree of size 0"):
        tree.inclusion_proof(0, 0)
    with pytest.raises(ValueError, match="size 6 is beyond the tree's 5 leaves"):
        tree.root(6)
    with pytest.raises(ValueError, match="old size 4 is larger than new size 3"):
        tree.consistency_proof(4, 3)
    with pytest.raises(ValueError, match="non-negative"):
        tree.inclusion_proof(-1, 5)
    with pytest.raises(ValueError, match="must be 32 bytes"):
        tree.append(b"short")
    assert tree.size == 5


def test_extending_a_tree_gives_the_same_hashes_as_building_it_at_once() -> None:
    leaves = leaves_for(300)
    grown = MerkleTree()
    for start in range(0, 300, 37):
        grown.extend(leaves[start : start + 37])
        # Ask for proofs between extensions: memoised right-border hashes must stay right.
        size = grown.size
        assert grown.root() == naive_root(leaves[:size])
        assert grown.inclusion_proof(size - 1) == naive_path(size - 1, leaves[:size])
    grown.append(leaf_hash(b"one more"))
    leaves.append(leaf_hash(b"one more"))
    built = MerkleTree(leaves)
    for size in (0, 1, 2, 3, 255, 256, 257, 300, 301):
        assert grown.root(size) == built.root(size) == naive_root(leaves[:size])


def test_frontier_root_matches_the_tree_at_every_size() -> None:
    leaves = leaves_for(130)
    tree = MerkleTree(leaves)
    frontier = MerkleFrontier()
    assert frontier.root() == EMPTY_ROOT
    for size in range(1, 131):
        frontier.append(leaves[size - 1])
        assert frontier.size == size
        assert len(frontier.hashes) == size.bit_count()
        assert frontier.root() == naive_root(leaves[:size])
        assert frontier == tree.frontier(size)


def test_frontier_holds_the_perfect_subtree_roots_largest_first() -> None:
    leaves = leaves_for(7)
    frontier = MerkleFrontier()
    frontier.extend(leaves)
    assert frontier.hashes == (
        naive_root(leaves[0:4]),
        naive_root(leaves[4:6]),
        leaves[6],
    )


def test_frontier_bytes_round_trip_exactly() -> None:
    leaves = leaves_for(11)
    frontier = MerkleFrontier()
    frontier.extend(leaves)
    data = frontier.to_bytes()
    # 11 = 8 + 2 + 1: three subtree roots after the 8-byte size.
    assert data == (11).to_bytes(8, "big") + b"".join(frontier.hashes)
    assert len(data) == 8 + 3 * 32
    restored = MerkleFrontier.from_bytes(data)
    assert restored == frontier
    assert restored.root() == naive_root(leaves)
    restored.append(leaf_hash(b"next"))
    frontier.append(leaf_hash(b"next"))
    assert restored.root() == frontier.root() == naive_root([*leaves, leaf_hash(b"next")])
    assert MerkleFrontier.from_bytes(MerkleFrontier().to_bytes()) == MerkleFrontier()
    assert MerkleFrontier().to_bytes() == bytes(8)


def test_copy_is_independent() -> None:
    frontier = MerkleFrontier()
    frontier.extend(leaves_for(3))
    copy = frontier.copy()
    copy.append(leaf_hash(b"x"))
    assert frontier.size == 3
    assert copy.size == 4


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "at least 8 bytes"),
        ((3).to_bytes(8, "big") + bytes(32), "size 3 has 72 bytes, got 40"),
        ((1).to_bytes(8, "big") + bytes(33), "size 1 has 40 bytes, got 41"),
        ((0).to_bytes(8, "big") + bytes(32), "size 0 has 8 bytes, got 40"),
    ],
)
def test_malformed_frontier_bytes_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MerkleFrontier.from_bytes(data)


def test_frontier_construction_is_checked() -> None:
    with pytest.raises(ValueError, match="a frontier of size 3 holds 2 hashes, got 1"):
        MerkleFrontier(3, [bytes(32)])
    with pytest.raises(ValueError, match="must be 32 bytes"):
        MerkleFrontier(1, [bytes(31)])

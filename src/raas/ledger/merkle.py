"""The prover side of the ledger's RFC 6962 / RFC 9162 Merkle tree: roots, inclusion proofs and
consistency proofs over a log of leaf hashes, and the compact frontier a store keeps per append.

Hashing follows RFC 9162 section 2.1.1: a leaf hash is SHA-256(0x00 || entry) (see
`raas.core.canonical.leaf_hash`), an interior node is SHA-256(0x01 || left || right), and the
root of the empty tree is SHA-256 of nothing. The tree over n leaves splits at the largest power
of two below n, so every tree is a row of perfect subtrees whose sizes are the bits of n.

Two structures:

- `MerkleFrontier`: the roots of those perfect subtrees (a "compact range"). Appending a leaf
  costs O(log n) hashes; the root is one fold. It serializes to bytes so a store can persist it
  beside the log and never rehash the log to learn its current root.
- `MerkleTree`: every perfect subtree hash, level by level. Built once (n - 1 hashes) it answers
  `root`, `inclusion_proof` and `consistency_proof` for any size up to its own by lookups, so a
  batch of proofs costs O(log n) each. It can be extended as the log grows.

The functions `root`, `inclusion_proof` and `consistency_proof` answer one question over a
`LeafHashSource` (a sequence of leaf hashes, or a callable reading them by index range, so a
database can back it); each reads the leaves up to the size asked for and builds a `MerkleTree`.
Build the tree yourself to answer many.

Proofs are lists of 32-byte hashes, ordered from the leaf (or old root) upwards, exactly as
RFC 9162 sections 2.1.3.1 and 2.1.4.1 produce them; `raas.audit.proofs` verifies them and shares no
code with this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from raas.core.canonical import leaf_hash

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE_BYTES",
    "LeafHashSource",
    "MerkleFrontier",
    "MerkleTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
]

HASH_SIZE_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# How many leaf hashes `MerkleTree.from_source` asks a callable source for at once: large enough
# that a database round trip is amortised, small enough to keep memory flat on big logs.
SOURCE_CHUNK_LEAVES = 65_536

# Right-border subtree hashes (ranges that are not perfect subtrees) are folded from up to log n
# perfect subtrees; proofs for one tree size share the same few, so they are memoised. The memo
# is dropped when it grows past this, which only happens when many different sizes are asked.
RANGE_MEMO_ENTRIES_MAX = 4_096

LeafHashSource = Sequence[bytes] | Callable[[int, int], Sequence[bytes]]
"""Leaf hashes by position: a sequence, or `read(start, end)` giving those of [start, end)."""

_sha256 = hashlib.sha256
_NODE_PREFIX = b"\x01"


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE_BYTES:
        raise ValueError(f"{what} must be {HASH_SIZE_BYTES} bytes, got {value!r:.80}")


def _check_size(size: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {size!r}")


class MerkleFrontier:
    """The roots of the perfect subtrees that make up a log of `size` leaves, largest first.

    There is one root per set bit of `size`. Appending a leaf merges equal-sized roots like a
    binary counter carries, so it costs at most log2(size) node hashes.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_size(size, "size")
        if len(hashes) != size.bit_count():
            raise ValueError(
                f"a frontier of size {size} holds {size.bit_count()} hashes, got {len(hashes)}"
            )
        for position, value in enumerate(hashes):
            _check_hash(value, f"frontier hash #{position}")
        self._size = size
        self._hashes = [bytes(value) for value in hashes]

    @property
    def size(self) -> int:
        """The number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The perfect subtree roots, from the leftmost (largest) to the rightmost (smallest)."""
        return tuple(self._hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash (not the entry: hash entries with `leaf_hash`)."""
        _check_hash(leaf, "leaf hash")
        node = bytes(leaf)
        size = self._size
        hashes = self._hashes
        # Each trailing one bit of the old size is a perfect subtree of the new leaf's height.
        while size & 1:
            node = _sha256(_NODE_PREFIX + hashes.pop() + node).digest()
            size >>= 1
        hashes.append(node)
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add leaf hashes in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """The Merkle tree hash of the log as it stands."""
        hashes = self._hashes
        if not hashes:
            return EMPTY_ROOT
        node = hashes[-1]
        for left in reversed(hashes[:-1]):
            node = _sha256(_NODE_PREFIX + left + node).digest()
        return node

    def copy(self) -> MerkleFrontier:
        """An independent frontier at the same size."""
        return MerkleFrontier(self._size, self._hashes)

    def to_bytes(self) -> bytes:
        """8-byte big-endian size, then the subtree roots: what a store persists."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> MerkleFrontier:
        """Read `to_bytes` output back; raises ValueError if it is malformed."""
        if len(data) < 8:
            raise ValueError(f"a serialized frontier has at least 8 bytes, got {len(data)}")
        size = int.from_bytes(data[:8], "big")
        body = data[8:]
        expected_bytes = size.bit_count() * HASH_SIZE_BYTES
        if len(body) != expected_bytes:
            raise ValueError(
                f"a serialized frontier of size {size} has {8 + expected_bytes} bytes, "
                f"got {len(data)}"
            )
        hashes = [
            bytes(body[offset : offset + HASH_SIZE_BYTES])
            for offset in range(0, len(body), HASH_SIZE_BYTES)
        ]
        return cls(size, hashes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MerkleFrontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    def __hash__(self) -> int:
        return hash((self._size, *self._hashes))

    def __repr__(self) -> str:
        return f"MerkleFrontier(size={self._size}, root={self.root().hex()[:16]}...)"


class MerkleTree:
    """Every perfect subtree hash of a log, for answering many roots and proofs cheaply.

    `levels[height][index]` is the hash of leaves [index * 2**height, (index + 1) * 2**height).
    Level 0 holds the leaf hashes themselves. Memory is about two hashes per leaf.
    """

    __slots__ = ("_levels", "_range_memo")

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self._range_memo: dict[tuple[int, int], bytes] = {}
        self.extend(leaves)

    @classmethod
    def from_source(cls, source: LeafHashSource, size: int) -> MerkleTree:
        """A tree over the first `size` leaf hashes of `source`."""
        _check_size(size, "size")
        tree = cls()
        if callable(source):
            for start in range(0, size, SOURCE_CHUNK_LEAVES):
                end = min(start + SOURCE_CHUNK_LEAVES, size)
                chunk = source(start, end)
                if len(chunk) != end - start:
                    raise ValueError(
                        f"leaf hash source gave {len(chunk)} hashes for [{start}, {end})"
                    )
                tree.extend(chunk)
        else:
            if len(source) < size:
                raise ValueError(f"leaf hash source holds {len(source)} hashes, need {size}")
            tree.extend(source[:size])
        return tree

    @property
    def size(self) -> int:
        """The number of leaves in the tree."""
        return len(self._levels[0])

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash."""
        self.extend((leaf,))

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Add leaf hashes in order, hashing every subtree they complete."""
        bottom = self._levels[0]
        for position, leaf in enumerate(leaves):
            _check_hash(leaf, f"leaf hash #{len(bottom) + position}")
            bottom.append(bytes(leaf))
        levels = self._levels
        height = 0
        while len(levels[height]) >= 2:
            below = levels[height]
            if height + 1 == len(levels):
                levels.append([])
            above = levels[height + 1]
            sha256 = _sha256
            prefix = _NODE_PREFIX
            for index in range(len(above), len(below) // 2):
                above.append(sha256(prefix + below[2 * index] + below[2 * index + 1]).digest())
            height += 1
        # Memoised right-border hashes stay valid (they cover fixed ranges), so the memo is kept.

    def frontier(self, size: int | None = None) -> MerkleFrontier:
        """The compact frontier of the log at `size` (default: the whole tree)."""
        size = self.size if size is None else size
        self._check_within(size, "size")
        hashes = []
        start = 0
        # Perfect subtrees from the largest bit down: each starts where the previous ended.
        for height in range(size.bit_length() - 1, -1, -1):
            if size >> height & 1:
                hashes.append(self._levels[height][start >> height])
                start += 1 << height
        return MerkleFrontier(size, hashes)

    def root(self, size: int | None = None) -> bytes:
        """The Merkle tree hash of the first `size` leaves (default: all of them)."""
        size = self.size if size is None else size
        self._check_within(size, "size")
        if size == 0:
            return EMPTY_ROOT
        return self._range_hash(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 9162 section 2.1.3.1 PATH(index, D[0:size]), from the leaf's sibling upwards."""
        size = self.size if size is None else size
        self._check_within(size, "size")
        _check_size(index, "index")
        if index >= size:
            raise ValueError(f"leaf index {index} is not in a tree of size {size}")
        return self._path(index, 0, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """RFC 9162 section 2.1.4.1 PROOF(old_size, D[0:new_size]).

        Empty when old_size is 0 or equal to new_size: there is nothing to prove (verifiers take
        an empty proof in exactly those cases, see `raas.audit.proofs`).
        """
        new_size = self.size if new_size is None else new_size
        self._check_within(new_size, "new size")
        _check_size(old_size, "old size")
        if old_size > new_size:
            raise ValueError(f"old size {old_size} is larger than new size {new_size}")
        if old_size == 0 or old_size == new_size:
            return []
        # The old tree's last perfect subtree is the smallest one, of height = its trailing zero
        # bits. Proving that node inside the new tree proves the whole old tree, because every
        # node left of it is a left sibling on its path.
        height = (old_size & -old_size).bit_length() - 1
        index = (old_size - 1) >> height
        path = self._path(index, height, new_size)
        if index == 0:
            # The old tree is that one perfect subtree: the verifier already holds its root.
            return path
        return [self._levels[height][index], *path]

    def range_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end), a range inclusion paths split the tree into: start is a
        multiple of the largest power of two not above end - start."""
        self._check_within(end, "end")
        _check_size(start, "start")
        if not start < end:
            raise ValueError(f"expected a range of leaves, found [{start}, {end})")
        if start % (1 << ((end - start).bit_length() - 1)):
            raise ValueError(f"leaves [{start}, {end}) are not a subtree the tree splits into")
        return self._range_hash(start, end)

    def _path(self, index: int, height: int, size: int) -> list[bytes]:
        """The inclusion path of the perfect node (height, index) in the tree of `size` leaves.

        Below the "fork" (the highest ancestor that is still a perfect subtree) the siblings are
        perfect nodes; then comes the hash of what lies right of the fork (if anything), then the
        perfect subtrees left of the fork, smallest first. This is the order PATH produces.
        """
        levels = self._levels
        # The fork is where the paths to this node and to the tree's end part.
        inner = (index ^ (size >> height)).bit_length() - 1
        proof = [levels[height + level][(index >> level) ^ 1] for level in range(inner)]
        fork_height = height + inner
        fork_start = (index >> inner) << fork_height
        fork_end = fork_start + (1 << fork_height)
        if fork_end < size:
            proof.append(self._range_hash(fork_end, size))
        # Left of the fork, [0, fork_start) splits into perfect subtrees by the bits of
        # fork_start; all of them lie above the fork's height.
        remaining = fork_start >> fork_height
        level = fork_height
        while remaining:
            if remaining & 1:
                proof.append(levels[level][remaining - 1])
            remaining >>= 1
            level += 1
        return proof

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH of leaves [start, end), where start is aligned to the enclosing power of two."""
        count = end - start
        if count & (count - 1) == 0:
            height = count.bit_length() - 1
            return self._levels[height][start >> height]
        key = (start, end)
        memo = self._range_memo
        cached = memo.get(key)
        if cached is not None:
            return cached
        # Fold the perfect subtrees of the range from the right, smallest first.
        node: bytes | None = None
        position = end
        for height in range(count.bit_length()):
            if count >> height & 1:
                position -= 1 << height
                subtree = self._levels[height][position >> height]
                node = subtree if node is None else _sha256(_NODE_PREFIX + subtree + node).digest()
        assert node is not None  # count > 0 because a perfect power of two was excluded above
        if len(memo) >= RANGE_MEMO_ENTRIES_MAX:
            memo.clear()
        memo[key] = node
        return node

    def _check_within(self, size: int, what: str) -> None:
        _check_size(size, what)
        if size > self.size:
            raise ValueError(f"{what} {size} is beyond the tree's {self.size} leaves")


def root(source: LeafHashSource, size: int) -> bytes:
    """The Merkle tree hash of the first `size` leaves of `source`."""
    return MerkleTree.from_source(source, size).root(size)


def inclusion_proof(source: LeafHashSource, index: int, size: int) -> list[bytes]:
    """The inclusion proof of leaf `index` in the tree of the first `size` leaves of `source`."""
    return MerkleTree.from_source(source, size).inclusion_proof(index, size)


def consistency_proof(source: LeafHashSource, old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof from the tree of `old_size` leaves to that of `new_size` leaves."""
    return MerkleTree.from_source(source, new_size).consistency_proof(old_size, new_size)

"""Inclusion proofs for the episode page without the whole Merkle tree: the hashes of a tenant's
log in aligned blocks of BLOCK_LEAVES leaves, kept in a file beside the episode tables.

A proof of one entry needs a few perfect subtree hashes that together cover the whole log; the
ledger builds its full tree for that (every leaf hashed again in each process, and again on each
call once the log outgrows its tree cache). A complete block's hash never changes, as the log
only grows, so the blocks are hashed once, appended as the log grows, and a proof reads only the
entry's own block and the last partial one from the ledger. The proofs are RFC 9162's PATH, the
same bytes `LedgerStore.inclusion_proofs` gives.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from raas.ledger.merkle import HASH_SIZE_BYTES, MerkleTree
from raas.ledger.store import LedgerStore, check_index, check_size

BLOCK_HEIGHT: Final = 10
BLOCK_LEAVES: Final = 1 << BLOCK_HEIGHT
# Leaves read and hashed at once while blocks are added (about 2 MiB of leaf hashes).
FILL_BLOCKS_AT_ONCE: Final = 64

_sha256 = hashlib.sha256
_NODE: Final = b"\x01"


class KeptSubtrees:
    """One tenant's block hashes: a file of 32-byte hashes, block 0 first, and in memory the
    tree over them (the log's perfect subtrees of BLOCK_LEAVES leaves and more). Not
    thread-safe: the caller holds a lock."""

    def __init__(self, path: Path, tenant: str) -> None:
        self.path = path
        self.tenant = tenant
        self._blocks: MerkleTree | None = None  # over the block hashes, read on first use

    @property
    def blocks(self) -> int:
        return 0 if self._blocks is None else self._blocks.size

    def update(self, ledger: LedgerStore, size: int) -> int:
        """Hash (and append to the file) the blocks the first `size` entries complete that are
        not kept yet; returns how many were added. Kept hashes of another log are dropped."""
        if self._blocks is None:
            self._blocks = self._read(ledger)
        complete = size // BLOCK_LEAVES
        tree = self._blocks
        added = 0
        while tree.size < complete:
            first = tree.size
            count = min(complete - first, FILL_BLOCKS_AT_ONCE)
            leaves = ledger.leaf_hashes(
                self.tenant, first * BLOCK_LEAVES, (first + count) * BLOCK_LEAVES
            )
            hashes = block_hashes(leaves)
            with self.path.open("ab") as file:
                file.write(b"".join(hashes))
            tree.extend(hashes)
            added += count
        return added

    def inclusion_proofs(
        self, ledger: LedgerStore, indexes: Sequence[int], size: int
    ) -> list[list[bytes]]:
        """RFC 9162 inclusion proofs of the entries at `indexes` in the tree of `size` entries,
        as `ledger.inclusion_proofs` gives them; blocks up to `size` are kept first."""
        check_size(self.tenant, size, ledger.head(self.tenant))
        for index in indexes:
            check_index(self.tenant, index, size)
        self.update(ledger, size)
        proofs = _Proofs(self, ledger, size)
        return [proofs.path(index, 0, size) for index in indexes]

    def _read(self, ledger: LedgerStore) -> MerkleTree:
        """The kept hashes, when they are of this log: the last one is hashed again from the
        ledger's leaves (a file of another log, or one beyond this log's end, is dropped)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        whole = len(data) - len(data) % HASH_SIZE_BYTES  # a torn append leaves a part
        hashes = [data[at : at + HASH_SIZE_BYTES] for at in range(0, whole, HASH_SIZE_BYTES)]
        if hashes:
            last = len(hashes) - 1
            end = (last + 1) * BLOCK_LEAVES
            same = (
                end <= ledger.head(self.tenant)
                and hashes[last]
                == block_hashes(ledger.leaf_hashes(self.tenant, last * BLOCK_LEAVES, end))[0]
            )
            if not same:
                hashes = []
        if len(hashes) * HASH_SIZE_BYTES != len(data):
            _rewrite(self.path, b"".join(hashes))
        return MerkleTree(hashes)


class _Proofs:
    """PATH over the kept blocks for one tree size; leaves of partial blocks read once each."""

    def __init__(self, kept: KeptSubtrees, ledger: LedgerStore, size: int) -> None:
        assert kept._blocks is not None
        self.blocks = kept._blocks
        self.ledger = ledger
        self.tenant = kept.tenant
        self.size = size
        self._block_trees: dict[int, MerkleTree] = {}

    def path(self, index: int, start: int, end: int) -> list[bytes]:
        """PATH(index - start, D[start:end]) (RFC 9162 section 2.1.3.1)."""
        count = end - start
        if count == 1:
            return []
        split = 1 << ((count - 1).bit_length() - 1)  # the largest power of two below count
        if index < start + split:
            return [*self.path(index, start, start + split), self.hash(start + split, end)]
        return [*self.path(index, start + split, end), self.hash(start, start + split)]

    def hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a range PATH asks for (start aligned to its largest split)."""
        count = end - start
        block = start // BLOCK_LEAVES
        if count >= BLOCK_LEAVES and count & (count - 1) == 0:  # perfect, of whole blocks
            return self.blocks.range_hash(block, end // BLOCK_LEAVES)
        if (end - 1) // BLOCK_LEAVES == block:
            # Within one block, complete or the log's last part.
            return self._block_tree(block).range_hash(
                start - block * BLOCK_LEAVES, end - block * BLOCK_LEAVES
            )
        split = 1 << ((count - 1).bit_length() - 1)
        left, right = self.hash(start, start + split), self.hash(start + split, end)
        return _sha256(_NODE + left + right).digest()

    def _block_tree(self, block: int) -> MerkleTree:
        tree = self._block_trees.get(block)
        if tree is None:
            start = block * BLOCK_LEAVES
            end = min(start + BLOCK_LEAVES, self.size)
            tree = MerkleTree(self.ledger.leaf_hashes(self.tenant, start, end))
            self._block_trees[block] = tree
        return tree


def block_hashes(leaves: Sequence[bytes]) -> list[bytes]:
    """The roots of consecutive complete blocks of BLOCK_LEAVES leaf hashes (pure)."""
    if len(leaves) % BLOCK_LEAVES:
        raise ValueError(f"expected whole blocks of {BLOCK_LEAVES} leaves, found {len(leaves)}")
    level = list(leaves)
    sha256, node = _sha256, _NODE
    for _ in range(BLOCK_HEIGHT):
        level = [
            sha256(node + level[at] + level[at + 1]).digest() for at in range(0, len(level), 2)
        ]
    return level


def _rewrite(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".writing")
    partial.write_bytes(data)
    os.replace(partial, path)

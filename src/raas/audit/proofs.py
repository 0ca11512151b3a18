"""Verifiers for RFC 9162 Merkle inclusion and consistency proofs, as an auditor runs them offline.

Written from RFC 9162 sections 2.1.3.2 and 2.1.4.2 alone, sharing no code with the prover
(`raas.ledger.merkle`), so that a bug in one is not silently mirrored in the other. Every failure
raises `ProofError`; success returns None.

Rules, including the edge cases the RFC leaves to the implementation:

- Hashes are SHA-256, 32 bytes. The leaf hash and every proof element must be exactly 32 bytes:
  with other lengths an interior node's 65-byte preimage could be split differently and passed
  off as a leaf. A root compared with a recomputed one must equal it byte for byte.
- Inclusion (`verify_inclusion`):
  - a tree of size 0 includes nothing: always an error, whatever the proof;
  - an index below 0 or at or beyond the size is an error;
  - the proof must have exactly as many hashes as the path from that leaf to the root of that
    size has levels, and must hash up to the given root.
- Consistency (`verify_consistency`):
  - old size > new size is an error (a log never shrinks);
  - old size == new size: the proof must be empty and the two roots equal; at size 0 both must
    be the empty tree's root, SHA-256 of nothing. At other equal sizes the roots are only compared
    with each other (the transparency-dev vectors accept two equal opaque values there);
  - old size 0 < new size: the proof must be empty, the old root must be the empty tree's root,
    and the new root may be any 32-byte hash, since every tree extends the empty one: such a
    proof shows nothing, and callers must not treat it as evidence about the new tree;
  - 0 < old size < new size: the proof must be non-empty and must hash, by the RFC's algorithm,
    to both the old root and the new root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from raas.errors import RaasError

__all__ = ["EMPTY_ROOT", "HASH_SIZE_BYTES", "ProofError", "verify_consistency", "verify_inclusion"]

HASH_SIZE_BYTES = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256
_NODE_PREFIX = b"\x01"


class ProofError(RaasError):
    """A Merkle proof does not prove what it claims: why, and the roots involved if any.

    `expected_root` is the root the caller holds (from a checkpoint); `actual_root` is the one the
    proof leads to. Both are None when the proof was rejected before any hashing.
    """

    def __init__(
        self,
        reason: str,
        *,
        expected_root: bytes | None = None,
        actual_root: bytes | None = None,
    ) -> None:
        self.reason = reason
        self.expected_root = expected_root
        self.actual_root = actual_root
        message = reason
        if expected_root is not None and actual_root is not None:
            message += f" (expected root {expected_root.hex()}, proof gives {actual_root.hex()})"
        super().__init__(message)


def _check_size(size: int, what: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ProofError(f"{what} must be a non-negative integer, got {size!r}")


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE_BYTES:
        length = len(value) if isinstance(value, bytes | bytearray) else type(value).__name__
        raise ProofError(f"{what} must be a {HASH_SIZE_BYTES}-byte hash, got {length}")


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that the leaf with hash `leaf_hash` sits at `index` in the tree of `size` with `root`.

    RFC 9162 section 2.1.3.2. Raises ProofError if not.
    """
    _check_size(index, "leaf index")
    _check_size(size, "tree size")
    if size == 0:
        raise ProofError("a tree of size 0 includes no leaf")
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root")
    # The path splits where the leaf's path and the last leaf's path part: below that every
    # level has a sibling; above it only the levels where the leaf lies in a right subtree do.
    inner_levels = (index ^ (size - 1)).bit_length()
    expected_length = inner_levels + (index >> inner_levels).bit_count()
    if len(proof) != expected_length:
        raise ProofError(
            f"inclusion proof for leaf {index} in a tree of size {size} has "
            f"{expected_length} hashes, got {len(proof)}"
        )

    sha256 = _sha256
    prefix = _NODE_PREFIX
    first_index = index
    last_index = size - 1
    node = leaf_hash
    for position, sibling in enumerate(proof):
        if len(sibling) != HASH_SIZE_BYTES:
            raise ProofError(f"proof element #{position} must be a {HASH_SIZE_BYTES}-byte hash")
        if last_index == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        if first_index & 1 or first_index == last_index:
            node = sha256(prefix + sibling + node).digest()
            if not first_index & 1:
                # The node is the last of its level: climb until it is a right child again.
                while first_index and not first_index & 1:
                    first_index >>= 1
                    last_index >>= 1
        else:
            node = sha256(prefix + node + sibling).digest()
        first_index >>= 1
        last_index >>= 1
    if last_index != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    if node != root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not lead to the root of size {size}",
            expected_root=bytes(root),
            actual_root=node,
        )


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree of `new_size` with `new_root` extends the one of `old_size`/`old_root`.

    RFC 9162 section 2.1.4.2, plus the size-0 and equal-size rules in this module's docstring.
    Raises ProofError if not.
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is larger than new size {new_size}")
    if old_size == new_size:
        if proof:
            raise ProofError(f"a consistency proof between equal sizes is empty, got {len(proof)}")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError(
                "the old root is not the root of the empty tree",
                expected_root=bytes(old_root),
                actual_root=EMPTY_ROOT,
            )
        if old_root != new_root:
            raise ProofError(
                f"two roots given for the same size {old_size}",
                expected_root=bytes(new_root),
                actual_root=bytes(old_root),
            )
        return
    if old_size == 0:
        if proof:
            raise ProofError(f"a consistency proof from size 0 is empty, got {len(proof)}")
        if old_root != EMPTY_ROOT:
            raise ProofError(
                "the old root is not the root of the empty tree",
                expected_root=bytes(old_root),
                actual_root=EMPTY_ROOT,
            )
        _check_hash(new_root, "new root")
        return

    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    if not proof:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is empty")
    for position, element in enumerate(proof):
        if len(element) != HASH_SIZE_BYTES:
            raise ProofError(f"proof element #{position} must be a {HASH_SIZE_BYTES}-byte hash")

    path = list(proof)
    # A perfect old tree is itself a node of the new tree; its root starts the path.
    if old_size & (old_size - 1) == 0:
        path.insert(0, bytes(old_root))
    first_index = old_size - 1
    last_index = new_size - 1
    # Start from the highest perfect subtree ending at the old tree's last leaf.
    while first_index & 1:
        first_index >>= 1
        last_index >>= 1

    sha256 = _sha256
    prefix = _NODE_PREFIX
    old_node = new_node = path[0]
    for element in path[1:]:
        if last_index == 0:
            raise ProofError("consistency proof is longer than the path to the new root")
        if first_index & 1 or first_index == last_index:
            old_node = sha256(prefix + element + old_node).digest()
            new_node = sha256(prefix + element + new_node).digest()
            if not first_index & 1:
                while first_index and not first_index & 1:
                    first_index >>= 1
                    last_index >>= 1
        else:
            new_node = sha256(prefix + new_node + element).digest()
        first_index >>= 1
        last_index >>= 1
    if last_index != 0:
        raise ProofError("consistency proof is shorter than the path to the new root")
    if old_node != old_root:
        raise ProofError(
            f"consistency proof does not lead to the old root of size {old_size}",
            expected_root=bytes(old_root),
            actual_root=old_node,
        )
    if new_node != new_root:
        raise ProofError(
            f"consistency proof does not lead to the new root of size {new_size}",
            expected_root=bytes(new_root),
            actual_root=new_node,
        )

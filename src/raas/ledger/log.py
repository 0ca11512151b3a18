"""What every store shares about its per-tenant Merkle logs: the origin naming a log, the rule for
signing its next checkpoint, the frontier update on the append path, and the shape of what
`raas ledger check` reports.

The ledger belongs to one vendor and keeps one log per tenant (the buyer), so a buyer's proofs
show nothing of other buyers' traffic. A log's origin, the first line of its checkpoints, is
f"{vendor}/raas/{tenant}".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from raas.audit.proofs import ProofError, verify_consistency
from raas.errors import StoreError
from raas.ledger.checkpoint import sign_checkpoint
from raas.ledger.keys import SignerKey
from raas.ledger.merkle import MerkleFrontier
from raas.native import speedups

VENDOR_DEFAULT: Final = "raas"
VENDOR_CHARACTERS_MAX: Final = 256
_NODE_PREFIX: Final = b"\x01"


def check_vendor(vendor: str) -> None:
    """Raise StoreError unless `vendor` can start a log origin: printable, no spaces, not empty."""
    if not isinstance(vendor, str) or not vendor or len(vendor) > VENDOR_CHARACTERS_MAX:
        raise StoreError(
            f"a vendor name has 1 to {VENDOR_CHARACTERS_MAX} characters, got {vendor!r}"
        )
    if not vendor.isprintable() or any(character.isspace() for character in vendor):
        raise StoreError(f"vendor name {vendor!r} may hold no spaces or control characters")


def origin_for(vendor: str, tenant: str) -> str:
    """The origin line of the tenant's log: f"{vendor}/raas/{tenant}"."""
    return f"{vendor}/raas/{tenant}"


class SignedHead(msgspec.Struct, frozen=True):
    """The (size, root) a log last signed, under which origin."""

    origin: str
    size: int
    root: bytes


def sign_next_checkpoint(
    tenant: str,
    origin: str,
    size: int,
    root: bytes,
    previous: SignedHead | None,
    consistency_proof: Callable[[int, int], list[bytes]],
    signer: SignerKey | Sequence[SignerKey],
) -> str:
    """Sign (size, root) for the tenant's log, if it extends what the log signed before.

    The consistency proof from the previous signed size comes from the store's own tree and is
    checked with the auditor's verifier, exactly as a buyer would check the two checkpoints; a
    log whose stored leaves no longer give the root it signed fails here and signs nothing.
    Raises StoreError when the checkpoint would not be consistent with the previous one.
    """
    if size == 0:
        raise StoreError(f"the log of tenant {tenant!r} is empty: there is nothing to sign")
    if previous is not None:
        if previous.origin != origin:
            raise StoreError(
                f"the log of tenant {tenant!r} signed its checkpoints as {previous.origin!r}; "
                f"refusing to sign one as {origin!r}"
            )
        if size < previous.size:
            raise StoreError(
                f"the log of tenant {tenant!r} has {size} entries but signed size "
                f"{previous.size} before; a log never shrinks"
            )
        proof = consistency_proof(previous.size, size)
        try:
            verify_consistency(previous.size, size, proof, previous.root, root)
        except ProofError as error:
            raise StoreError(
                f"refusing to sign size {size} of tenant {tenant!r}'s log: it is not consistent "
                f"with the checkpoint signed at size {previous.size}: {error}"
            ) from error
    return sign_checkpoint(origin, size, root, signer)


class LedgerProblem(msgspec.Struct, frozen=True):
    """The first thing a check found wrong: where (tenant, log index, seq, as far as known), what.

    `tenant` is None for a problem of the ledger as a whole (seqs, rows outside every log).
    """

    tenant: str | None
    log_index: int | None
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = ["the ledger" if self.tenant is None else f"tenant {self.tenant!r}"]
        if self.log_index is not None:
            where.append(f"log index {self.log_index}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        return f"{', '.join(where)}: {self.what}"


class LedgerCheck(msgspec.Struct, frozen=True):
    """What a check of a whole ledger read, and the first problem it found (None: all is well)."""

    tenants: int
    entries: int
    checkpoints: int
    signatures_verified: int
    problem: LedgerProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def extend_frontier(frontier: MerkleFrontier, leaves: Sequence[bytes]) -> MerkleFrontier:
    """The frontier after appending `leaves` (32-byte leaf hashes), as `MerkleFrontier.extend`.

    Level by level rather than leaf by leaf: at each height the new nodes, led by the old
    subtree of that height when there is one (it is their left neighbour), are paired into the
    next height; a node left without a pair is the new frontier's subtree of that height. The
    same hashes as the binary-counter merge, at about half the interpreter's cost a leaf, which
    matters on the append path. The result is checked by `MerkleFrontier` itself.
    """
    size = frontier.size
    old_heights = [height for height in range(size.bit_length() - 1, -1, -1) if size >> height & 1]
    old_by_height = dict(zip(old_heights, frontier.hashes, strict=True))
    new_by_height: dict[int, bytes] = {}
    sha256 = hashlib.sha256
    prefix = _NODE_PREFIX
    nodes = list(leaves)
    height = 0
    while nodes:
        if size >> height & 1:
            nodes = [old_by_height.pop(height), *nodes]
        if len(nodes) & 1:
            new_by_height[height] = nodes.pop()
        if speedups is not None:
            nodes = speedups.sha256_pairs(nodes, prefix)
        else:
            pairs = iter(nodes)
            nodes = [
                sha256(prefix + left + right).digest()
                for left, right in zip(pairs, pairs, strict=True)
            ]
        height += 1
    new_by_height.update(old_by_height)  # higher subtrees the new leaves did not reach
    return MerkleFrontier(
        size + len(leaves),
        [new_by_height[height] for height in sorted(new_by_height, reverse=True)],
    )

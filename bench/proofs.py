"""Benchmark of the Merkle prover and verifier: build a 100,000-leaf tree, prove every leaf's
inclusion, verify all the proofs; prints medians of several runs, writes bench/results/proofs.json.

    .venv/bin/python bench/proofs.py [--leaves 100000] [--runs 5]

Target: verifying the 100,000 proofs takes under 2 seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raas.audit.proofs import verify_consistency, verify_inclusion
from raas.core.canonical import leaf_hash
from raas.ledger.merkle import MerkleFrontier, MerkleTree

VERIFY_TARGET_SECONDS = 2.0
RESULTS = Path(__file__).resolve().parent / "results" / "proofs.json"


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def one_run(leaves: list[bytes]) -> dict[str, float]:
    size = len(leaves)
    build_seconds, tree = timed(lambda: MerkleTree(leaves))
    root = tree.root()
    prove_seconds, proofs = timed(
        lambda: [tree.inclusion_proof(index, size) for index in range(size)]
    )

    def verify_all() -> None:
        for index in range(size):
            verify_inclusion(leaves[index], index, size, proofs[index], root)

    verify_seconds, _ = timed(verify_all)

    # Consistency from every 97th size to the full tree: a steady sample of shapes.
    old_sizes = range(1, size, 97)
    consistency_prove_seconds, consistency_proofs = timed(
        lambda: [tree.consistency_proof(old_size, size) for old_size in old_sizes]
    )
    old_roots = [tree.root(old_size) for old_size in old_sizes]

    def verify_consistency_all() -> None:
        for old_size, proof, old_root in zip(old_sizes, consistency_proofs, old_roots, strict=True):
            verify_consistency(old_size, size, proof, old_root, root)

    consistency_verify_seconds, _ = timed(verify_consistency_all)

    def append_all() -> MerkleFrontier:
        frontier = MerkleFrontier()
        for leaf in leaves:
            frontier.append(leaf)
        return frontier

    frontier_seconds, frontier = timed(append_all)
    assert frontier.root() == root
    return {
        "build_tree_seconds": build_seconds,
        "inclusion_prove_seconds": prove_seconds,
        "inclusion_verify_seconds": verify_seconds,
        "consistency_proofs": len(old_sizes),
        "consistency_prove_seconds": consistency_prove_seconds,
        "consistency_verify_seconds": consistency_verify_seconds,
        "frontier_append_seconds": frontier_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()

    leaves = [leaf_hash(b"entry %d" % index) for index in range(arguments.leaves)]
    runs = [one_run(leaves) for _ in range(arguments.runs)]
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}

    size = arguments.leaves
    print(f"{size} leaves, median of {arguments.runs} runs")
    print(f"  build tree              {medians['build_tree_seconds']:8.3f} s")
    print(
        f"  {size} inclusion proofs  {medians['inclusion_prove_seconds']:8.3f} s  "
        f"({medians['inclusion_prove_seconds'] / size * 1e6:.2f} µs each)"
    )
    print(
        f"  verify them             {medians['inclusion_verify_seconds']:8.3f} s  "
        f"({medians['inclusion_verify_seconds'] / size * 1e6:.2f} µs each; "
        f"target < {VERIFY_TARGET_SECONDS} s)"
    )
    count = int(medians["consistency_proofs"])
    print(
        f"  {count} consistency proofs {medians['consistency_prove_seconds']:8.3f} s, "
        f"verify {medians['consistency_verify_seconds']:.3f} s"
    )
    print(f"  frontier, {size} appends {medians['frontier_append_seconds']:8.3f} s")

    result = {
        "benchmark": "proofs",
        "leaves": size,
        "runs": arguments.runs,
        "median": medians,
        "all_runs": runs,
        "verify_target_seconds": VERIFY_TARGET_SECONDS,
        "verify_within_target": medians["inclusion_verify_seconds"] < VERIFY_TARGET_SECONDS,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "platform": platform.platform(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0 if result["verify_within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())

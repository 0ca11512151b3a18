"""Every case of transparency-dev/merkle's proof vectors (tests/cases/merkle-vectors, Apache-2.0,
see SOURCE.txt there): good proofs verify, every `wantErr` case raises ProofError."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from raas.audit.proofs import ProofError, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[1] / "cases" / "merkle-vectors"
CASES = sorted(VECTORS.rglob("*.json"))


def decode(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return case


def run(case: dict[str, Any]) -> None:
    # Go marshals an empty proof slice as null.
    proof = [decode(element) for element in case["proof"] or []]
    if "leafIdx" in case:
        verify_inclusion(
            decode(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, decode(case["root"])
        )
    else:
        verify_consistency(
            case["size1"], case["size2"], proof, decode(case["root1"]), decode(case["root2"])
        )


def test_every_vector_file_is_here() -> None:
    # A copy that lost files would quietly test less: pin the counts of the upstream set.
    inclusion = [path for path in CASES if "inclusion" in path.parts]
    consistency = [path for path in CASES if "consistency" in path.parts]
    assert (len(inclusion), len(consistency)) == (98, 98)
    good = [path for path in CASES if not load(path)["wantErr"]]
    assert len(good) == 12
    assert (VECTORS / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")


@pytest.mark.parametrize("path", CASES, ids=[str(path.relative_to(VECTORS)) for path in CASES])
def test_vector(path: Path) -> None:
    case = load(path)
    if case["wantErr"]:
        with pytest.raises(ProofError):
            run(case)
    else:
        run(case)

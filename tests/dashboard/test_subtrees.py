"""Inclusion proofs from kept block hashes: what would break is a proof that differs from the
ledger's own (a wrong split at a block's edge or at the log's partial last block), or hashes
kept from another log, or a torn append, being used."""

from __future__ import annotations

from pathlib import Path

import pytest

from raas.dashboard import subtrees
from raas.dashboard.subtrees import KeptSubtrees
from raas.ingest.validate import parse_batch
from raas.ledger.sqlite import SqliteLedger
from raas.sim import SimConfig, Simulation


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks of 8 leaves: a small log then has many blocks, partial ones and large subtrees.
    monkeypatch.setattr(subtrees, "BLOCK_HEIGHT", 3)
    monkeypatch.setattr(subtrees, "BLOCK_LEAVES", 8)


def grow(ledger: SqliteLedger, seed: int, conversations: int) -> None:
    simulation = Simulation(
        SimConfig(conversations=conversations, seed=seed, tenant="acme", source=f"urn:t:{seed}")
    )
    for body in simulation.ndjson_batches():
        ledger.append(parse_batch(body, ndjson=True))


def test_proofs_equal_the_ledgers_as_the_log_grows(tmp_path: Path) -> None:
    kept_path = tmp_path / "acme.merkle-blocks"
    with SqliteLedger(tmp_path / "ledger.db") as ledger:
        for seed in (1, 2):
            grow(ledger, seed, 6)
            head = ledger.head("acme")
            for size in sorted({1, 7, 8, 9, 64, 65, head // 2, head - 1, head}):
                kept = KeptSubtrees(kept_path, "acme")  # the file read again each time
                indexes = list(range(size))
                proofs = kept.inclusion_proofs(ledger, indexes, size)
                assert proofs == ledger.inclusion_proofs("acme", indexes, size), size
            assert kept.blocks == head // 8
            assert kept_path.stat().st_size == 32 * (head // 8)


def test_hashes_of_another_log_or_a_torn_append_are_not_used(tmp_path: Path) -> None:
    kept_path = tmp_path / "acme.merkle-blocks"
    with SqliteLedger(tmp_path / "one.db") as one:
        grow(one, 1, 6)
        KeptSubtrees(kept_path, "acme").update(one, one.head("acme"))
    with SqliteLedger(tmp_path / "other.db") as other:
        grow(other, 2, 6)
        head = other.head("acme")
        indexes = list(range(head))
        expected = other.inclusion_proofs("acme", indexes, head)
        assert KeptSubtrees(kept_path, "acme").inclusion_proofs(other, indexes, head) == expected
        with kept_path.open("ab") as file:
            file.write(b"torn")
        kept = KeptSubtrees(kept_path, "acme")
        assert kept.inclusion_proofs(other, indexes, head) == expected
        assert kept_path.stat().st_size == 32 * (head // 8)

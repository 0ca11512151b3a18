"""Where the CPU time of an append goes: CPU microseconds an event, stage by stage.

Shared by bench/ingest.py and bench/appends.py, which write it into their JSON as `stages`.
Each stage is timed alone over the same batches (process CPU time, the median of a few passes),
so the figures are steadier than wall time on a shared machine; their sum is close to, not
exactly, the CPU time of a real append (caches and the interleaving differ).

- decode_validate: `parse_batch`, JSON bytes -> typed events (msgspec, one pass).
- canonical_encode: RFC 8785 bytes of each event (`canonical_bytes`), personal fields aside.
- commitments: the rest of `entries_and_disclosures`, the salted HMAC commitments and the
  disclosures of the events with personal fields, and the type and time checks.
- key_hash, leaf_hash: the 64-bit hash of (tenant, source, id) and SHA-256(0x00 || entry).
- batch_columns: the rest of making a batch ready (`_Batch`): the columns, in-batch repeats.
- tree_nodes: the Merkle frontier extended by the batch's leaves, per tenant.
- sqlite_events: the statement that inserts the event rows (the rows, their key index): an
  executemany, or with the native speed-ups (raas.native) one INSERT ... SELECT over
  the packed columns.
- sqlite_other: the rest of the write transaction before COMMIT: log state, customer rows,
  leaf blocks, frontiers, the seq counter, and building the rows in Python.
- commit_fsync: COMMIT with synchronous=FULL (WAL write, fsync, the WAL checkpoints it runs).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from raas.core.canonical import canonical_bytes, leaf_hash
from raas.core.events import Event, entries_and_disclosures
from raas.ingest import parse_batch
from raas.ledger.batch import leaf_hashes
from raas.ledger.log import extend_frontier
from raas.ledger.merkle import MerkleFrontier
from raas.ledger.sqlite import SqliteLedger, _Batch, _key_hashes, _store

_KEY = bytes(32)


class _TimedConnection:
    """A connection whose executemany of event rows is timed apart from everything else."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.events_seconds = 0.0

    def execute(self, query: str, *arguments: Any) -> Any:
        if "INTO events" not in query:
            return self.connection.execute(query, *arguments)
        # The native path: one statement over the packed columns (packed before the clock).
        started = time.process_time()
        cursor = self.connection.execute(query, *arguments)
        self.events_seconds += time.process_time() - started
        return cursor

    def executemany(self, query: str, rows: Iterable[Any]) -> Any:
        if "INTO events" not in query:
            return self.connection.executemany(query, rows)
        listed = list(rows)  # the zip is built before the clock starts
        started = time.process_time()
        cursor = self.connection.executemany(query, listed)
        self.events_seconds += time.process_time() - started
        return cursor


def _cpu(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def stage_breakdown(
    bodies: Sequence[bytes], folder: Path | None = None, passes: int = 3
) -> dict[str, float]:
    """CPU microseconds an event of each stage over these JSON-array batches (module doc)."""
    batches = [parse_batch(body) for body in bodies]
    events: list[Event] = [event for batch in batches for event in batch]
    count = len(events)
    made = [entries_and_disclosures(batch, _KEY)[0] for batch in batches]
    entries = [entry for batch_entries in made for entry in batch_entries]
    leaves = [leaf_hash(entry) for entry in entries]
    keys = [[(event.tenant, event.source, event.id) for event in batch] for batch in batches]
    # Each batch's leaves by tenant, as the append groups them.
    grouped: list[dict[str, list[bytes]]] = []
    place = 0
    for batch in batches:
        groups: dict[str, list[bytes]] = {}
        for event in batch:
            groups.setdefault(event.tenant, []).append(leaves[place])
            place += 1
        grouped.append(groups)

    def frontiers() -> None:
        kept: dict[str, MerkleFrontier] = {}
        for groups in grouped:
            for tenant, tenant_leaves in groups.items():
                kept[tenant] = extend_frontier(kept.get(tenant, MerkleFrontier()), tenant_leaves)

    measured: dict[str, list[float]] = {}
    for _ in range(passes):
        decode = _cpu(lambda: [parse_batch(body) for body in bodies])
        encode = _cpu(lambda: [canonical_bytes(event, checked=False) for event in events])
        entry = _cpu(lambda: [entries_and_disclosures(batch, _KEY) for batch in batches])
        key_hashes = _cpu(lambda: [_key_hashes(batch_keys) for batch_keys in keys])
        hashes = _cpu(lambda: [leaf_hashes(batch_entries) for batch_entries in made])
        prepare = _cpu(lambda: [_Batch(batch, _KEY) for batch in batches])
        tree = _cpu(frontiers)
        stored = _store_stages([_Batch(batch, _KEY) for batch in batches], folder)
        stages = {
            "decode_validate": decode,
            "canonical_encode": encode,
            "commitments": entry - encode,
            "key_hash": key_hashes,
            "leaf_hash": hashes,
            "batch_columns": prepare - entry - key_hashes - hashes,
            "tree_nodes": tree,
            **stored,
        }
        for name, seconds in stages.items():
            measured.setdefault(name, []).append(seconds / count * 1e6)
    result = {name: round(statistics.median(values), 2) for name, values in measured.items()}
    result["total"] = round(sum(result.values()), 2)
    return result


def _store_stages(prepared: list[_Batch], folder: Path | None) -> dict[str, float]:
    """CPU seconds of the write transaction (events apart) and of COMMIT, into a fresh ledger."""
    transaction = commit = 0.0
    with (
        tempfile.TemporaryDirectory(dir=folder) as directory,
        SqliteLedger(Path(directory) / "stages.db") as ledger,
    ):
        connection = ledger._connection
        assert connection is not None
        timed = _TimedConnection(connection)
        keys = ledger._keys
        for batch in prepared:
            started = time.process_time()
            connection.execute("BEGIN IMMEDIATE")
            keys.begin(connection)
            assert not keys.find(batch.key_hashes)  # the looking up `_write_batch` does first
            _store(timed, batch, keys)  # type: ignore[arg-type]  # quacks as a connection
            written = time.process_time()
            connection.execute("COMMIT")
            keys.committed()
            committed = time.process_time()
            transaction += written - started
            commit += committed - written
    return {
        "sqlite_events": timed.events_seconds,
        "sqlite_other": transaction - timed.events_seconds,
        "commit_fsync": commit,
    }

"""`ingest_file`: a large file's second parse goes to a worker process, and stores what the
stream in this process stores; a small one stays here.

What would break: the worker path storing other events, or in another order, than the stream;
a rerun of a large file storing anything twice; a small file paying for a worker process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import raas.ingest.files as files_module
from raas.ingest.files import ingest_file
from raas.ledger.sqlite import SqliteLedger
from raas.sim import SimConfig, Simulation


def workload(path: Path) -> Path:
    simulation = Simulation(SimConfig(seed=3, conversations=40))
    path.write_bytes(b"\n".join(simulation.ndjson_batches()))
    return path


def stored(path: Path) -> list[tuple[object, ...]]:
    """Each log's events in log order, by what does not depend on the file's commitment key."""
    with SqliteLedger(path) as ledger:
        return [
            (tenant, row.event.source, row.event.id, row.event.type, row.event.time)
            for tenant in ledger.tenants()
            for row in ledger.iter_events(tenant)
        ]


def test_a_large_file_is_parsed_in_a_worker_and_stored_as_the_stream_stores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = workload(tmp_path / "events.ndjson")
    # Batches of 50 events: the file holds some twenty of them.
    monkeypatch.setattr(files_module, "BATCH_EVENTS_MAX", 50)
    monkeypatch.setattr(files_module, "WORKER_BATCHES_MIN", 3)
    monkeypatch.setattr(files_module.os, "cpu_count", lambda: 2)
    worker_calls: list[int] = []
    real_append_parsed = SqliteLedger.append_parsed

    def counted(self: SqliteLedger, *arguments: object, **options: object) -> object:
        worker_calls.append(1)
        return real_append_parsed(self, *arguments, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(SqliteLedger, "append_parsed", counted)
    with SqliteLedger(tmp_path / "worker.db") as ledger:
        first = ingest_file(ledger, events)
        again = ingest_file(ledger, events)
    assert worker_calls == [1, 1]
    assert first.stored > 500 and (again.stored, again.duplicates) == (
        0,
        first.stored + first.duplicates,
    )

    monkeypatch.setattr(files_module, "WORKER_BATCHES_MIN", 10**6)
    with SqliteLedger(tmp_path / "stream.db") as ledger:
        assert ingest_file(ledger, events).stored == first.stored
    assert worker_calls == [1, 1]  # the small file stayed in this process
    assert stored(tmp_path / "worker.db") == stored(tmp_path / "stream.db")

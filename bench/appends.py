"""Ledger appends with Merkle tree maintenance: events/s into SQLite with fsync at every commit.

Times `SqliteLedger.append` batch by batch, and `SqliteLedger.append_batches` (which makes the
next batch ready while the one before commits), on the realistic workload of bench/ingest.py
(already parsed: this is the ledger's side of ingest). Each append builds the canonical entries
with salted commitments, hashes the leaves, inserts the rows, extends each tenant's leaf blocks,
customer rows and Merkle frontier, and commits with synchronous=FULL. Several runs into fresh
ledgers; prints and stores medians, with the CPU time per event (steadier than wall time on a
shared machine) and the load average while it ran. The last run's ledger is then checked in
full (untimed), so the figure is for a tree that is right.

    .venv/bin/python bench/appends.py [--events 200000] [--batch 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

import raas.native as native
from ingest import bodies_of, workload  # bench/ingest.py, beside this file
from raas.core.events import Event
from raas.ledger.sqlite import SqliteLedger, _Batch
from stages import stage_breakdown  # bench/stages.py

RESULTS_PATH = Path(__file__).parent / "results" / "appends.json"
TARGET_EVENTS_PER_SECOND = 100_000


def append_each(ledger: SqliteLedger, batches: Sequence[Sequence[Event]]) -> int:
    return sum(ledger.append(batch).stored for batch in batches)


def append_stream(ledger: SqliteLedger, batches: Sequence[Sequence[Event]]) -> int:
    return sum(receipt.stored for receipt in ledger.append_batches(batches))


MODES: dict[str, Callable[[SqliteLedger, Sequence[Sequence[Event]]], int]] = {
    "append": append_each,
    "append_batches": append_stream,
}


def run(
    mode: str, batches: Sequence[Sequence[Event]], path: Path, events_count: int
) -> dict[str, float]:
    with SqliteLedger(path) as ledger:
        wall_started = time.perf_counter()
        cpu_started = time.process_time()
        stored = MODES[mode](ledger, batches)
        cpu_seconds = time.process_time() - cpu_started
        seconds = time.perf_counter() - wall_started
    assert stored == events_count, (stored, events_count)
    return {
        "seconds": seconds,
        "events_per_second": events_count / seconds,
        "cpu_microseconds_per_event": cpu_seconds / events_count * 1e6,
    }


def prepare_microseconds(batches: Sequence[Sequence[Event]], events_count: int) -> float:
    """CPU time to make the batches ready (entries, commitments, hashes), without storing."""
    key = bytes(32)
    started = time.process_time()
    for batch in batches:
        _Batch(batch, key)
    return (time.process_time() - started) / events_count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000, help="events per batch")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", nargs="+", choices=sorted(MODES), default=list(MODES))
    parser.add_argument(
        "--folder", type=Path, default=None, help="where ledgers go (default: a temporary folder)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    arguments = parser.parse_args()

    print(f"generating {arguments.events:,} events ...", flush=True)
    events = workload(arguments.events, arguments.seed)
    events_count = len(events)
    batches = [
        events[start : start + arguments.batch] for start in range(0, events_count, arguments.batch)
    ]
    # The workload stays in memory for every run; freezing it keeps the garbage collector from
    # walking 200,000 events at each collection, which a service (holding one batch) never does.
    gc.collect()
    gc.freeze()

    load_before = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in arguments.modes}
    with tempfile.TemporaryDirectory(dir=arguments.folder) as folder:
        last_path = Path(folder) / "unused.db"
        for run_number in range(arguments.runs):
            for mode in arguments.modes:
                last_path = Path(folder) / f"{mode}-{run_number}.db"
                result = run(mode, batches, last_path, events_count)
                results[mode].append(result)
                print(
                    f"run {run_number + 1} {mode:<15} {result['events_per_second']:>9,.0f} "
                    f"events/s  ({result['cpu_microseconds_per_event']:.2f} us CPU an event)",
                    flush=True,
                )
        with SqliteLedger(last_path) as ledger:
            check = ledger.check()
        assert check.problem is None, str(check.problem)
        assert check.entries == events_count
    load_after = os.getloadavg()
    prepare = statistics.median(
        prepare_microseconds(batches, events_count) for _ in range(arguments.runs)
    )
    print("timing the stages ...", flush=True)
    stages = stage_breakdown(bodies_of(events, arguments.batch), arguments.folder)

    summary: dict[str, Any] = {
        "benchmark": (
            "ledger appends with Merkle maintenance: SqliteLedger.append / append_batches, "
            "WAL, synchronous=FULL"
        ),
        "events": events_count,
        "batch_events": arguments.batch,
        "runs": arguments.runs,
        "target_events_per_second": TARGET_EVENTS_PER_SECOND,
        "median_events_per_second": {
            mode: round(statistics.median(item["events_per_second"] for item in items))
            for mode, items in results.items()
        },
        "median_cpu_microseconds_per_event": {
            mode: round(statistics.median(item["cpu_microseconds_per_event"] for item in items), 2)
            for mode, items in results.items()
        },
        # 1 / CPU time an event: the rate one free core would give (wall time on a shared machine
        # also counts the time other processes held the cores).
        "events_per_cpu_second": {
            mode: round(
                1e6 / statistics.median(item["cpu_microseconds_per_event"] for item in items)
            )
            for mode, items in results.items()
        },
        "prepare_cpu_microseconds_per_event": round(prepare, 2),
        # CPU microseconds an event, stage by stage (bench/stages.py; decode_validate is not
        # part of an append from parsed events).
        "stages": stages,
        "checked_after_last_run": {"entries": check.entries, "problem": None},
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "runs_detail": results,
        "machine": {
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "msgspec": msgspec.__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            # The C speed-ups of raas.native in use (False: the pure-Python path, e.g. with
            # RAAS_PURE_PYTHON=1 for a side-by-side run).
            "native_speedups": native.speedups is not None,
        },
    }
    for mode, median in summary["median_events_per_second"].items():
        print(
            f"median {mode:<15} {median:>9,} events/s (target {TARGET_EVENTS_PER_SECOND:,}), "
            f"{summary['median_cpu_microseconds_per_event'][mode]} us CPU an event"
        )
    print(f"events per CPU second: {summary['events_per_cpu_second']}")
    print("stages, CPU us an event: " + ", ".join(f"{k} {v}" for k, v in stages.items()))
    print(
        f"making a batch ready: {summary['prepare_cpu_microseconds_per_event']} us CPU an event; "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()

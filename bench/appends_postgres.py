"""Ledger appends into PostgreSQL: events/s of `PostgresLedger.append`, one appender and several
processes appending at once, beside `SqliteLedger.append` on the same batches in the same run.

The workload is bench/ingest.py's (already parsed events; this is the ledger's side of ingest),
cut into batches of `--batch` events (1,000: what a service request carries). Each append makes
the entries, commitments and leaf hashes, locks the batch's tenants, looks its keys up, takes the
seq counter, COPYs the rows in binary and moves each tenant's frontier, in one transaction
committed with synchronous_commit on. Several processes share one tenant's log, so they queue on
its lock: the figure says what the serialization costs, not how fast independent tenants go.

Each run appends into a fresh database (created and dropped here, on the server at
--server). Prints and stores medians of wall and client CPU time; the server's CPU is not
counted in "CPU per event" (it runs in other processes). The load average is recorded because the
machine is shared. The last PostgreSQL run is then checked in full (untimed).

    .venv/bin/python bench/appends_postgres.py [--events 100000] [--batch 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ingest import workload  # bench/ingest.py, beside this file
from raas.core.events import Event
from raas.ledger import open_ledger

RESULTS_PATH = Path(__file__).parent / "results" / "appends_postgres.json"
SERVER_DEFAULT = "postgresql://postgres@127.0.0.1:5432"


def create_database(server: str) -> str:
    name = f"raas_bench_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"{server}/{name}"


def drop_database(url: str) -> None:
    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def append_all(location: str, batches: Sequence[Sequence[Event]]) -> tuple[int, float]:
    """Append the batches one by one; (events stored, client CPU seconds)."""
    with open_ledger(location) as ledger:
        cpu_started = time.process_time()
        stored = sum(ledger.append(batch).stored for batch in batches)
        return stored, time.process_time() - cpu_started


def timed(location: str, batches: Sequence[Sequence[Event]], processes: int) -> dict[str, float]:
    """Append every batch, with `processes` appenders taking every processes-th batch."""
    open_ledger(location).close()  # created or migrated before the clock starts
    events_count = sum(len(batch) for batch in batches)
    if processes == 1:
        started = time.perf_counter()
        stored, cpu_seconds = append_all(location, batches)
        seconds = time.perf_counter() - started
    else:
        shares = [(location, batches[worker::processes]) for worker in range(processes)]
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            pool.apply(len, ([],))  # the workers are up before the clock starts
            started = time.perf_counter()
            done = pool.starmap(append_all, shares)
            seconds = time.perf_counter() - started
        stored, cpu_seconds = sum(item[0] for item in done), sum(item[1] for item in done)
    assert stored == events_count, (stored, events_count)
    return {
        "seconds": seconds,
        "events_per_second": events_count / seconds,
        "client_cpu_microseconds_per_event": cpu_seconds / events_count * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000, help="events per batch")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=3, help="concurrent appenders")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--server", default=SERVER_DEFAULT)
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    arguments = parser.parse_args()

    print(f"generating {arguments.events:,} events ...", flush=True)
    events = workload(arguments.events, arguments.seed)
    batches = [
        events[start : start + arguments.batch] for start in range(0, len(events), arguments.batch)
    ]
    gc.collect()
    gc.freeze()
    modes = {
        "sqlite": 1,
        "postgres": 1,
        f"postgres_{arguments.processes}_processes": arguments.processes,
    }
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    check_entries = 0
    with tempfile.TemporaryDirectory() as folder:
        for run_number in range(arguments.runs):
            for mode, processes in modes.items():
                if mode == "sqlite":
                    location = str(Path(folder) / f"run-{run_number}.db")
                else:
                    location = create_database(arguments.server)
                try:
                    result = timed(location, batches, processes)
                    if mode == "postgres" and run_number == arguments.runs - 1:
                        with open_ledger(location) as ledger:
                            check = ledger.check()
                        assert check.problem is None, str(check.problem)
                        check_entries = check.entries
                finally:
                    if mode != "sqlite":
                        drop_database(location)
                results[mode].append(result)
                print(
                    f"run {run_number + 1} {mode:<22} {result['events_per_second']:>9,.0f} "
                    f"events/s ({result['client_cpu_microseconds_per_event']:.2f} us client "
                    "CPU an event)",
                    flush=True,
                )
    load_after = os.getloadavg()

    medians = {
        mode: round(statistics.median(item["events_per_second"] for item in items))
        for mode, items in results.items()
    }
    with psycopg.connect(f"{arguments.server}/postgres") as connection:
        row = connection.execute("SHOW server_version").fetchone()
        server_version = "" if row is None else str(row[0])
    summary: dict[str, Any] = {
        "benchmark": (
            "ledger appends into PostgreSQL (PostgresLedger.append: advisory lock per tenant, "
            "binary COPY, frontier in the same transaction, synchronous_commit on), beside "
            "SqliteLedger.append on the same batches"
        ),
        "events": len(events),
        "batch_events": arguments.batch,
        "runs": arguments.runs,
        "median_events_per_second": medians,
        "median_client_cpu_microseconds_per_event": {
            mode: round(
                statistics.median(item["client_cpu_microseconds_per_event"] for item in items), 2
            )
            for mode, items in results.items()
        },
        "postgres_to_sqlite_ratio": round(medians["postgres"] / medians["sqlite"], 3),
        "checked_after_last_postgres_run": {"entries": check_entries, "problem": None},
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "runs_detail": results,
        "machine": {
            "python": sys.version.split()[0],
            "postgresql": server_version,
            "psycopg": psycopg.__version__,
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
    }
    for mode, median in medians.items():
        print(f"median {mode:<22} {median:>9,} events/s")
    print(
        f"postgres / sqlite: {summary['postgres_to_sqlite_ratio']}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()

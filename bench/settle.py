"""Settlement with the pure reference judge: time to settle one month from the embedded ledger.

For each workload size it builds (once, then reuses) a SQLite ledger holding a simulated month
of that many conversations, then settles November 2026 under examples/contracts/acme-support.yaml
several times, each run in a fresh process so its peak memory is its own. Prints the median
seconds, events/s and peak RSS, and writes bench/results/settle.json.

    .venv/bin/python bench/settle.py [--conversations 100000 1000000] [--runs 3]
                                     [--workdir /tmp/raas-bench]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = ROOT / "bench" / "results" / "settle.json"
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
SEED = 1


def build(conversations: int, database: Path) -> dict[str, Any]:
    """Simulate and ingest, unless a complete ledger for this size is already there."""
    from raas.ingest import parse_batch
    from raas.ledger.sqlite import SqliteLedger
    from raas.sim import SimConfig, Simulation

    marker = database.with_suffix(".complete")
    if marker.exists() and database.exists():
        built: dict[str, Any] = json.loads(marker.read_text())
        if built.get("format") == _storage_format():
            return built
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    simulation = Simulation(SimConfig(seed=SEED, conversations=conversations, batch_events=10_000))
    started = time.perf_counter()
    stored = 0
    with SqliteLedger(database) as ledger:
        for body in simulation.ndjson_batches():
            stored += ledger.append(parse_batch(body, ndjson=True)).stored
    seconds = time.perf_counter() - started
    built = {
        "events": stored,
        "build_seconds": seconds,
        "build_events_per_second": stored / seconds,
    }
    marker.write_text(json.dumps(built))
    return built


def _storage_format() -> str:
    """Changes whenever the code that decides what a stored ledger holds changes."""
    digest = hashlib.sha256()
    for module in ("core/events.py", "ledger/sqlite.py", "sim/workload.py", "sim/conversation.py"):
        digest.update((ROOT / "src" / "raas" / module).read_bytes())
    return digest.hexdigest()[:16]


def settle_once(database: Path) -> None:
    """One settlement in this process; prints seconds, events read and peak RSS as JSON."""
    from raas.core.contract import load_contract
    from raas.core.periods import month_period
    from raas.engine.reference import settle_from_ledger
    from raas.ledger.sqlite import SqliteLedger

    contract = load_contract(CONTRACT)
    period = month_period(contract.time_zone, 2026, 11)
    with SqliteLedger(database) as ledger:
        started = time.perf_counter()
        settlement = settle_from_ledger(ledger, contract, period)
        seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "events": settlement.invoice.ledger.size,
                "episodes_final": settlement.report.episodes,
                "total": str(settlement.invoice.total),
                "peak_rss_mib": peak_kib / 1024,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raas-bench"))
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker is not None:
        settle_once(arguments.worker)
        return

    arguments.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for conversations in arguments.conversations:
        database = arguments.workdir / f"settle-{conversations}.db"
        built = build(conversations, database)
        runs = []
        for _ in range(arguments.runs):
            output = subprocess.run(
                [sys.executable, __file__, "--worker", str(database)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs.append(json.loads(output))
        seconds = statistics.median(run["seconds"] for run in runs)
        events = runs[0]["events"]
        assert len({run["total"] for run in runs}) == 1, "settlement must be deterministic"
        result = {
            "conversations": conversations,
            "events": events,
            "median_seconds": round(seconds, 3),
            "median_events_per_second": round(events / seconds),
            "median_peak_rss_mib": round(statistics.median(r["peak_rss_mib"] for r in runs), 1),
            "episodes_final": runs[0]["episodes_final"],
            "total": runs[0]["total"],
            "runs": runs,
            "ledger_build": built,
        }
        results.append(result)
        print(
            f"{conversations:>9,} conversations  {events:>11,} events  "
            f"settle median {seconds:8.2f} s  ({events / seconds:,.0f} events/s)  "
            f"peak RSS {result['median_peak_rss_mib']:,.0f} MiB  total {result['total']} USD"
        )
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(
        json.dumps(
            {
                "benchmark": "settle one month with the pure reference judge from SQLite",
                "engine": "reference (raas.engine.reference.settle_from_ledger)",
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                },
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()

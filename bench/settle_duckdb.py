"""Settlement on DuckDB: time and peak memory to settle a month of 1,000,000 conversations.

For each workload size it builds (once, then reuses) a SQLite ledger holding a simulated month,
builds the episode table from it (timed, in a fresh process: from scratch without the log's
last 10,000 entries, then incrementally up to date), then settles November 2026 under
examples/contracts/acme-support.yaml on DuckDB several times, each run in a fresh process so
that its peak memory (ru_maxrss) is its own: the settlement query and the rating that turns its
result into the invoice. For the ratio, the pure reference judge settles the same ledger
(as bench/settle.py does, in a worker of its own), and the two invoices must be equal byte
for byte. Prints the medians and writes bench/results/settle_duckdb.json.

    .venv/bin/python bench/settle_duckdb.py [--conversations 1000000] [--runs 5]
        [--reference-runs 1] [--workdir /tmp/raas-bench-duckdb]
"""

from __future__ import annotations

import argparse
import functools
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
RESULTS_PATH = ROOT / "bench" / "results" / "settle_duckdb.json"
CONTRACT = ROOT / "examples" / "contracts" / "acme-support.yaml"
REFERENCE_BENCH = ROOT / "bench" / "settle.py"
SEED = 1
TENANT = "acme"
TARGET_SECONDS = 10.0
TARGET_PEAK_MIB = 2048.0
# The table is built without the log's last entries, then brought up to date: the incremental
# path's figure (late events of the month's last conversations).
INCREMENT_ENTRIES = 10_000
TABLE_PROCESSES = 1
HORIZON = "72h"  # the example contract's window, with which the table links episodes


# ---------------------------------------------------------------------------------------------
# The ledger and the episode table, built once per size


def build_ledger(conversations: int, database: Path) -> dict[str, Any]:
    """Simulate and ingest (in a worker), unless a readable ledger of this size and seed is
    already there."""
    marker = database.with_suffix(".complete")
    if marker.exists() and database.exists():
        built: dict[str, Any] = json.loads(marker.read_text())
        if built.get("seed") == SEED and _readable(database, built.get("events")):
            return built
    return dict(json.loads(_worker("ledger", database, conversations)))


def ledger_once(database: Path, conversations: int) -> None:
    """Simulate and ingest a month into a new ledger; prints its figures as JSON."""
    from raas.ingest import parse_batch
    from raas.ledger.sqlite import SqliteLedger
    from raas.sim import SimConfig, Simulation

    marker = database.with_suffix(".complete")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    marker.unlink(missing_ok=True)
    simulation = Simulation(SimConfig(seed=SEED, conversations=conversations, batch_events=10_000))
    started = time.perf_counter()
    stored = 0
    parse = functools.partial(parse_batch, ndjson=True)
    with SqliteLedger(database) as ledger:
        # Parsing and hashing in a second process while this one writes.
        for receipt in ledger.append_parsed(simulation.ndjson_batches(), parse, processes=1):
            stored += receipt.stored
    seconds = time.perf_counter() - started
    built = {
        "seed": SEED,
        "conversations": conversations,
        "events": stored,
        "build_seconds": round(seconds, 1),
        "build_events_per_second": round(stored / seconds),
    }
    marker.write_text(json.dumps(built))
    print(json.dumps(built))


def _readable(database: Path, events: object) -> bool:
    """Whether this raas reads the ledger file (its format changes between versions)."""
    from raas.errors import RaasError
    from raas.ledger.sqlite import SqliteLedger

    try:
        with SqliteLedger(database) as ledger:
            if ledger.head(TENANT) != events:
                return False
            next(iter(ledger.iter_customers(TENANT)), None)
    except RaasError:
        return False
    return True


def build_table(database: Path, table: Path) -> dict[str, Any]:
    """Build the episode table in a fresh process (timed), unless the table of this ledger's
    current size and last leaf is there; returns the build's figures."""
    from raas.engine.episode_table import EPISODE_TABLE_FORMAT
    from raas.errors import StoreError

    marker = table.with_suffix(".complete")
    if marker.exists() and table.exists():
        built: dict[str, Any] = json.loads(marker.read_text())
        try:
            state = _table_state(table)
        except StoreError:  # a table of an earlier format: built again
            state = None
        current = (
            state is not None
            and state["format"] == EPISODE_TABLE_FORMAT
            and state["last_leaf"] == _last_leaf(database)
        )
        if current and built.get("state") == state:
            return built
    output = _worker("table", database, table)
    built = json.loads(output)
    built["state"] = _table_state(table)
    marker.write_text(json.dumps(built))
    return built


def _last_leaf(database: Path) -> str:
    from raas.ledger.sqlite import SqliteLedger

    with SqliteLedger(database) as ledger:
        head = ledger.head(TENANT)
        return ledger.leaf_hashes(TENANT, head - 1, head)[0].hex()


def _table_state(table: Path) -> dict[str, Any]:
    import msgspec

    from raas.engine.episode_table import read_episode_table_state

    return dict(msgspec.to_builtins(read_episode_table_state(table)))


# ---------------------------------------------------------------------------------------------
# Workers: each runs in a fresh process, so its peak memory is its own


def table_once(database: Path, table: Path) -> None:
    """Build the episode table from scratch without the log's last INCREMENT_ENTRIES entries,
    then bring it up to date incrementally (both timed); prints figures and peak RSS as JSON."""
    from raas.core.contract import load_contract
    from raas.engine.episode_table import build_episode_table
    from raas.ledger.sqlite import SqliteLedger

    contract = load_contract(CONTRACT)
    for suffix in ("", ".wal"):
        Path(f"{table}{suffix}").unlink(missing_ok=True)
    with SqliteLedger(database) as ledger:
        head = ledger.head(TENANT)
        started = time.perf_counter()
        # One worker derives while this process reads the ledger and writes the table.
        full = build_episode_table(
            ledger,
            TENANT,
            head - INCREMENT_ENTRIES,
            table,
            link_horizon=contract.window,
            processes=TABLE_PROCESSES,
        )
        built = time.perf_counter()
        update = build_episode_table(ledger, TENANT, head, table, link_horizon=contract.window)
        updated = time.perf_counter()
    assert full.full and not update.full
    seconds = built - started
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "entries_read": full.entries_read,
                "entries_per_second": round(full.entries_read / seconds),
                "customers": update.state.customers,
                "episodes": update.state.episodes,
                "table_mib": round(table.stat().st_size / 2**20, 1),
                "processes": 1 + TABLE_PROCESSES,
                "incremental": {
                    "new_entries": INCREMENT_ENTRIES,
                    "seconds": round(updated - built, 2),
                    "customers_derived": update.customers_derived,
                    "entries_read": update.entries_read,
                },
                "peak_rss_mib": _peak_mib(),
            }
        )
    )


def duckdb_once(table: Path, contract_path: Path = CONTRACT) -> None:
    """One settlement on DuckDB: the query, then the rating; prints figures as JSON."""
    import duckdb

    from raas.core.contract import load_contract
    from raas.core.invoice import invoice_json
    from raas.core.periods import month_period
    from raas.core.plan import plan_of
    from raas.engine.duckdb_engine import rate_classified, settle_with_duckdb

    contract = load_contract(contract_path)
    period = month_period(contract.time_zone, 2026, 11)
    plan = plan_of(contract)
    case_costs = [name for name, terms in contract.outcomes.items() if terms.case_cost is not None]
    started, cpu_started = time.perf_counter(), time.process_time()
    classified = settle_with_duckdb(
        plan,
        table,
        period,
        tenant=contract.buyer,
        link_horizon_seconds=int(contract.window.total_seconds()),
        currency=contract.currency,
        case_cost_outcomes=case_costs,
    )
    queried = time.perf_counter()
    settlement = rate_classified(contract, plan, classified, period=period)
    body = invoice_json(settlement.invoice)
    finished, cpu_finished = time.perf_counter(), time.process_time()
    print(
        json.dumps(
            {
                "seconds": finished - started,
                # Every thread of this process (DuckDB runs two): what the work costs, whatever
                # else the machine is doing.
                "cpu_seconds": cpu_finished - cpu_started,
                "query_seconds": queried - started,
                "rating_seconds": finished - queried,
                "duckdb": duckdb.__version__,
                "units_final": classified.units,
                "provisional": classified.provisional,
                "total": str(settlement.invoice.total),
                "invoice_sha256": hashlib.sha256(body).hexdigest(),
                "peak_rss_mib": _peak_mib(),
            }
        )
    )


def reference_once(database: Path) -> None:
    """One settlement with the pure reference judge from the ledger, with its invoice's hash."""
    from raas.core.contract import load_contract
    from raas.core.invoice import invoice_json
    from raas.core.periods import month_period
    from raas.engine.reference import settle_from_ledger
    from raas.ledger.sqlite import SqliteLedger

    contract = load_contract(CONTRACT)
    period = month_period(contract.time_zone, 2026, 11)
    with SqliteLedger(database) as ledger:
        started, cpu_started = time.perf_counter(), time.process_time()
        settlement = settle_from_ledger(ledger, contract, period)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "units_final": settlement.report.units,
                "total": str(settlement.invoice.total),
                "invoice_sha256": hashlib.sha256(invoice_json(settlement.invoice)).hexdigest(),
                "peak_rss_mib": _peak_mib(),
            }
        )
    )


def _peak_mib() -> float:
    """This process's peak resident memory, MiB: ru_maxrss, checked against /proc's VmHWM.

    On Linux ru_maxrss survives exec, so a worker forked from a large parent would report the
    parent's peak; the parent here stays small (the ledger is built in a worker too)."""
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                # The larger of the two, so that the figure is never flattering.
                peak_kib = max(peak_kib, int(line.split()[1]))
    return round(peak_kib / 1024, 1)


def _worker(kind: str, *arguments: object) -> str:
    """Run one worker in a fresh process; its standard output."""
    return subprocess.run(
        [sys.executable, __file__, "--worker", kind, *map(str, arguments)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} {five:.1f} {fifteen:.1f}"


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--reference-runs", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raas-bench-duckdb"))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker is not None:
        kind, *paths = arguments.worker
        if kind == "ledger":
            ledger_once(Path(paths[0]), int(paths[1]))
        elif kind == "table":
            table_once(Path(paths[0]), Path(paths[1]))
        elif kind == "duckdb":
            duckdb_once(Path(paths[0]), *map(Path, paths[1:]))
        else:
            reference_once(Path(paths[0]))
        return

    arguments.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for conversations in arguments.conversations:
        database = arguments.workdir / f"settle-{conversations}.db"
        table = arguments.workdir / f"episodes-{conversations}.duckdb"
        print(f"{conversations:,} conversations: ledger ...", flush=True)
        ledger = build_ledger(conversations, database)
        print(f"  {ledger['events']:,} events; episode table ...", flush=True)
        built = build_table(database, table)
        increment = built["incremental"]
        print(
            f"  table: {built['episodes']:,} episodes in {built['seconds']:.1f} s "
            f"({built['entries_per_second']:,} entries/s), peak RSS {built['peak_rss_mib']:,} MiB; "
            f"{increment['new_entries']:,} more entries: {increment['customers_derived']:,} "
            f"customers derived again in {increment['seconds']:.1f} s",
            flush=True,
        )
        runs = []
        for _ in range(arguments.runs):
            runs.append(json.loads(_worker("duckdb", table)))
            run = runs[-1]
            print(
                f"  duckdb: {run['seconds']:.2f} s (query {run['query_seconds']:.2f} s, rating "
                f"{run['rating_seconds']:.2f} s; CPU {run['cpu_seconds']:.2f} s), peak RSS "
                f"{run['peak_rss_mib']:,} MiB; load {_load()}",
                flush=True,
            )
        # Every example contract that links episodes with the table's 72h horizon, once each:
        # per conversation, gates, business shares, holdouts, SLA figures, at this size.
        every_contract = {}
        for path in sorted((ROOT / "examples" / "contracts").glob("*.yaml")):
            if f"window: {HORIZON}" not in path.read_text() and path != CONTRACT:
                continue
            every_contract[path.stem] = json.loads(_worker("duckdb", table, path))
            run = every_contract[path.stem]
            print(
                f"  {path.stem}: {run['seconds']:.2f} s (query {run['query_seconds']:.2f} s, "
                f"rating {run['rating_seconds']:.2f} s), peak RSS {run['peak_rss_mib']:,} MiB",
                flush=True,
            )
        references = []
        for _ in range(arguments.reference_runs):
            references.append(json.loads(_worker("reference", database)))
            reference = references[-1]
            print(
                f"  reference: {reference['seconds']:.1f} s "
                f"(CPU {reference['cpu_seconds']:.1f} s), "
                f"peak RSS {reference['peak_rss_mib']:,} MiB; load {_load()}",
                flush=True,
            )
        hashes = {run["invoice_sha256"] for run in runs + references}
        assert len(hashes) == 1, "DuckDB and the reference must give the same invoice bytes"
        seconds = statistics.median(run["seconds"] for run in runs)
        peak = statistics.median(run["peak_rss_mib"] for run in runs)
        result: dict[str, Any] = {
            "conversations": conversations,
            "events": ledger["events"],
            "episodes": built["episodes"],
            "units_final": runs[0]["units_final"],
            "total": runs[0]["total"],
            "invoice_sha256": runs[0]["invoice_sha256"],
            "duckdb": {
                "median_seconds": round(seconds, 3),
                "median_query_seconds": round(
                    statistics.median(run["query_seconds"] for run in runs), 3
                ),
                "median_rating_seconds": round(
                    statistics.median(run["rating_seconds"] for run in runs), 3
                ),
                "median_cpu_seconds": round(
                    statistics.median(run["cpu_seconds"] for run in runs), 3
                ),
                "median_peak_rss_mib": peak,
                "within_target": seconds < TARGET_SECONDS and peak < TARGET_PEAK_MIB,
                "runs": runs,
            },
            "every_example_contract_once": every_contract,
            "episode_table_build": built,
            "ledger_build": ledger,
        }
        if references:
            reference_seconds = statistics.median(run["seconds"] for run in references)
            result["reference"] = {
                "median_seconds": round(reference_seconds, 3),
                "median_cpu_seconds": round(
                    statistics.median(run["cpu_seconds"] for run in references), 3
                ),
                "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in references),
                "runs": references,
            }
            result["reference_over_duckdb"] = round(reference_seconds / seconds, 1)
            result["reference_over_duckdb_cpu"] = round(
                result["reference"]["median_cpu_seconds"] / result["duckdb"]["median_cpu_seconds"],
                1,
            )
        results.append(result)
        print(
            f"{conversations:>9,} conversations {ledger['events']:>11,} events: DuckDB settles in "
            f"{seconds:.2f} s (median of {len(runs)}), peak RSS {peak:,.0f} MiB"
            + (
                f"; reference {result['reference']['median_seconds']:.1f} s "
                f"({result['reference_over_duckdb']}x)"
                if references
                else ""
            )
            + f"; total {result['total']} USD, same invoice bytes",
            flush=True,
        )
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(
        json.dumps(
            {
                "benchmark": "settle one month on DuckDB from the episode table",
                "engine": "raas.engine.duckdb_engine (one query) + the reference's rating step",
                "contract": str(CONTRACT.relative_to(ROOT)),
                "target": {"seconds": TARGET_SECONDS, "peak_rss_mib": TARGET_PEAK_MIB},
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_average_at_end": _load(),
                },
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()

"""Settlement on Spark (local[*]): time to settle a month of 1,000,000 conversations, for the
record beside DuckDB.

Reuses bench/settle_duckdb.py's ledger and episode table (built once under its --workdir, the
same files), exports the table to Parquet once (timed), then, in one fresh process per size,
starts a Spark session (timed) and settles November 2026 under
examples/contracts/acme-support.yaml several times: Spark's query, then the shared rating step.
Wall seconds, CPU seconds (this process and the JVM it started) and the JVM's peak memory are
recorded per run; DuckDB settles the same table side by side in the same invocation for the
ratio, and every invoice must be byte for byte the same. Writes bench/results/settle_spark.json.

    .venv/bin/python bench/settle_spark.py [--conversations 1000000] [--runs 3]
        [--duckdb-runs 3] [--workdir /tmp/raas-bench-duckdb] [--driver-memory 6g]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The sibling benchmark: its ledger, episode table and DuckDB worker.
import settle_duckdb

ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = ROOT / "bench" / "results" / "settle_spark.json"
CONTRACT = settle_duckdb.CONTRACT


def spark_once(table: Path, runs: int, driver_memory: str) -> None:
    """Start Spark, export the table (or reuse its export), settle `runs` times; prints JSON."""
    from raas.core.contract import load_contract
    from raas.core.invoice import invoice_json
    from raas.core.periods import month_period
    from raas.engine.spark_engine import (
        export_for_spark,
        settle_contract_with_spark,
        spark_session,
    )

    contract = load_contract(CONTRACT)
    period = month_period(contract.time_zone, 2026, 11)
    started = time.perf_counter()
    export_for_spark(table)
    exported = time.perf_counter()
    session = spark_session(
        "local[*]", config={"spark.driver.memory": driver_memory}, app_name="raas-bench"
    )
    import pyspark

    session_seconds = time.perf_counter() - exported
    figures: list[dict[str, Any]] = []
    for _ in range(runs):
        cpu_before = _cpu_seconds()
        begun = time.perf_counter()
        settlement = settle_contract_with_spark(contract, table, period, session=session)
        body = invoice_json(settlement.invoice)
        figures.append(
            {
                "seconds": time.perf_counter() - begun,
                "cpu_seconds": _cpu_seconds() - cpu_before,
                "units_final": settlement.report.units,
                "total": str(settlement.invoice.total),
                "invoice_sha256": hashlib.sha256(body).hexdigest(),
                "load": settle_duckdb._load(),
            }
        )
    print(
        json.dumps(
            {
                "pyspark": pyspark.__version__,
                "export_seconds": exported - started,
                "session_seconds": session_seconds,
                "runs": figures,
                "peak_rss_mib": _peak_mib_with_jvm(),
            }
        )
    )
    session.stop()


def _children() -> list[int]:
    """This process's child processes (the JVM that pyspark starts), by /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.append(int(stat.parent.name))
    return found


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its children so far (user + system)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in _children():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _peak_mib_with_jvm() -> float:
    """Peak resident memory of this process plus its children's (VmHWM), MiB."""
    peak = settle_duckdb._peak_mib()
    for pid in _children():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak += int(line.split()[1]) / 1024
    return round(peak, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duckdb-runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/raas-bench-duckdb"))
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker is not None:
        table, runs, memory = arguments.worker
        spark_once(Path(table), int(runs), memory)
        return

    arguments.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for conversations in arguments.conversations:
        database = arguments.workdir / f"settle-{conversations}.db"
        table = arguments.workdir / f"episodes-{conversations}.duckdb"
        print(f"{conversations:,} conversations: ledger and episode table ...", flush=True)
        ledger = settle_duckdb.build_ledger(conversations, database)
        built = settle_duckdb.build_table(database, table)
        print(f"  {ledger['events']:,} events, {built['episodes']:,} episodes", flush=True)
        spark = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    str(table),
                    str(arguments.runs),
                    arguments.driver_memory,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        for run in spark["runs"]:
            print(
                f"  spark: {run['seconds']:.2f} s (CPU {run['cpu_seconds']:.2f} s); "
                f"load {run['load']}",
                flush=True,
            )
        duckdb_runs = []
        for _ in range(arguments.duckdb_runs):
            duckdb_runs.append(json.loads(settle_duckdb._worker("duckdb", table)))
            run = duckdb_runs[-1]
            print(
                f"  duckdb: {run['seconds']:.2f} s (CPU {run['cpu_seconds']:.2f} s); "
                f"load {settle_duckdb._load()}",
                flush=True,
            )
        hashes = {run["invoice_sha256"] for run in spark["runs"] + duckdb_runs}
        assert len(hashes) == 1, "Spark and DuckDB must give the same invoice bytes"
        # The first Spark run compiles and warms the JVM; the median is over the others.
        warm = spark["runs"][1:] or spark["runs"]
        spark_seconds = statistics.median(run["seconds"] for run in warm)
        spark_cpu = statistics.median(run["cpu_seconds"] for run in warm)
        duckdb_seconds = statistics.median(run["seconds"] for run in duckdb_runs)
        duckdb_cpu = statistics.median(run["cpu_seconds"] for run in duckdb_runs)
        results.append(
            {
                "conversations": conversations,
                "events": ledger["events"],
                "episodes": built["episodes"],
                "total": spark["runs"][0]["total"],
                "invoice_sha256": spark["runs"][0]["invoice_sha256"],
                "spark": {
                    "master": "local[*]",
                    "pyspark": spark["pyspark"],
                    "driver_memory": arguments.driver_memory,
                    "parquet_export_seconds": round(spark["export_seconds"], 2),
                    "session_start_seconds": round(spark["session_seconds"], 2),
                    "first_run_seconds": round(spark["runs"][0]["seconds"], 3),
                    "median_seconds": round(spark_seconds, 3),
                    "median_cpu_seconds": round(spark_cpu, 3),
                    "peak_rss_mib_with_jvm": spark["peak_rss_mib"],
                    "runs": spark["runs"],
                },
                "duckdb": {
                    "median_seconds": round(duckdb_seconds, 3),
                    "median_cpu_seconds": round(duckdb_cpu, 3),
                    "median_peak_rss_mib": statistics.median(
                        run["peak_rss_mib"] for run in duckdb_runs
                    ),
                    "runs": duckdb_runs,
                },
                "spark_over_duckdb": round(spark_seconds / duckdb_seconds, 2),
                "spark_over_duckdb_cpu": round(spark_cpu / duckdb_cpu, 2),
            }
        )
        print(
            f"  spark {spark_seconds:.2f} s / duckdb {duckdb_seconds:.2f} s = "
            f"{spark_seconds / duckdb_seconds:.1f}x (CPU {spark_cpu / duckdb_cpu:.1f}x)",
            flush=True,
        )
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(
        json.dumps(
            {
                "benchmark": "settle one month on Spark (local) from the episode table",
                "engine": "raas.engine.spark_engine (Spark SQL over the Parquet export) "
                "+ the reference's rating step",
                "contract": "examples/contracts/acme-support.yaml",
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_average_at_end": settle_duckdb._load(),
                },
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()

"""Sustained HTTP ingestion into `raas serve`: a separate load process posts NDJSON batches of
1,000 events over loopback for --minutes; events/s, p50/p99 request latency, and the server's
memory (RSS) after one minute and at the end. Writes bench/results/serve_ingest.json.

    python bench/serve_ingest.py                 # the full run: 10 minutes
    python bench/serve_ingest.py --minutes 2     # a quick one (recorded as such)

The server's memory and CPU include its worker processes (`raas serve --ingest-processes`).

Every event is new (ids carry the batch number), so each request does a full append: parse,
commitments, leaf hashes, Merkle frontier, one SQLite transaction fsynced (synchronous=FULL).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from raas.service.apikeys import create_api_key
from raas.service.sql_store import SqliteServiceStore
from raas.sim import SimConfig, Simulation

RESULTS = Path(__file__).resolve().parent / "results" / "serve_ingest.json"
TARGET_EVENTS_PER_SECOND = 20_000
RAAS_SERVE = [sys.executable, "-m", "raas.cli.main", "serve"]


def _templates(events_per_batch: int) -> list[dict[str, Any]]:
    simulation = Simulation(SimConfig(conversations=200, seed=7, batch_events=events_per_batch))
    lines = [line for body in simulation.ndjson_batches() for line in body.splitlines() if line]
    decoded: list[dict[str, Any]] = [msgspec.json.decode(line) for line in lines]
    return decoded[:events_per_batch]


def _body(templates: list[dict[str, Any]], batch: int, encoder: msgspec.json.Encoder) -> bytes:
    out = bytearray()
    for template in templates:
        event = dict(template)
        event["id"] = f"{template['id']}-b{batch}"
        out += encoder.encode(event)
        out += b"\n"
    return bytes(out)


def load(
    base: str, key: str, seconds: float, connections: int, events_per_batch: int, results: Any
) -> None:
    """The load process: `connections` threads each posting batches back to back."""
    templates = _templates(events_per_batch)
    deadline = time.monotonic() + seconds
    counter = iter(range(10**12))
    lock = threading.Lock()
    latencies: list[tuple[float, float]] = []  # (finished at, seconds)
    failures: list[str] = []
    events = 0

    def worker() -> None:
        nonlocal events
        encoder = msgspec.json.Encoder()
        headers = {"Authorization": f"Bearer {key}", "content-type": "application/x-ndjson"}
        with httpx.Client(base_url=base, timeout=120) as client:
            while time.monotonic() < deadline:
                with lock:
                    batch = next(counter)
                body = _body(templates, batch, encoder)
                started = time.perf_counter()
                response = client.post("/v1/events", content=body, headers=headers)
                took = time.perf_counter() - started
                with lock:
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")
                        continue
                    events += response.json()["accepted"]
                    latencies.append((time.monotonic(), took))

    cpu_before = time.process_time()
    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(
        {
            "events": events,
            "seconds": time.monotonic() - started,
            "latencies": [took for _, took in latencies],
            "failures": failures[:10],
            "failure_count": len(failures),
            "load_cpu_seconds": time.process_time() - cpu_before,
        }
    )


def _server_pids(pid: int) -> list[int]:
    """The server and its worker processes (the ones preparing ingested batches)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(child) for child in (task / "children").read_text().split()]
    return [pid, *(grandchild for child in children for grandchild in _server_pids(child))]


def _rss_bytes(pid: int) -> int:
    """Resident memory of the server and its workers together."""
    total = 0
    for process in _server_pids(pid):
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _cpu_seconds(pid: int) -> float:
    """CPU time of the server and its workers together."""
    ticks = 0
    for process in _server_pids(pid):
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--events-per-batch", type=int, default=1_000)
    parser.add_argument(
        "--ingest-processes",
        type=int,
        default=None,
        help="raas serve --ingest-processes (default: the server's own default)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    seconds = arguments.minutes * 60
    folder = Path(tempfile.mkdtemp(prefix="raas-serve-bench-"))
    database = folder / "raas.db"
    store = SqliteServiceStore(database)
    key, _ = create_api_key(store, "acme", "ingest", "bench", "bench")
    store.close()
    port = _free_port()
    processes = arguments.ingest_processes
    server = subprocess.Popen(
        [*RAAS_SERVE, "--db", f"sqlite:///{database}", "--port", str(port), "--rate", "100000"]
        + ([] if processes is None else ["--ingest-processes", str(processes)]),
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    load_before = os.getloadavg()[0]
    server_cpu_before = _cpu_seconds(server.pid)
    server_processes = len(_server_pids(server.pid))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    loader = context.Process(
        target=load,
        args=(base, key, seconds, arguments.connections, arguments.events_per_batch, results),
    )
    loader.start()
    started = time.monotonic()
    rss_samples: list[tuple[float, int]] = []
    # Take the loader's result while it runs: a process that has put a large object on a queue
    # does not exit until the object is read, so waiting for it to exit first never ends.
    while True:
        rss_samples.append((time.monotonic() - started, _rss_bytes(server.pid)))
        try:
            outcome = results.get(timeout=5)
            break
        except queue.Empty:
            if not loader.is_alive():
                raise SystemExit("the load process ended without a result") from None
    loader.join()
    rss_end = _rss_bytes(server.pid)
    server_cpu = _cpu_seconds(server.pid) - server_cpu_before
    load_after = os.getloadavg()[0]
    server.send_signal(signal.SIGINT)
    server.wait(timeout=60)
    after_minute = [rss for at, rss in rss_samples if at >= 60]
    rss_one_minute = after_minute[0] if after_minute else None
    latencies = sorted(outcome["latencies"])
    events_per_second = outcome["events"] / outcome["seconds"]
    record = {
        "benchmark": "raas serve: sustained HTTP ingest (NDJSON batches, one load process on "
        "loopback, SQLite ledger, synchronous=FULL)",
        "minutes": arguments.minutes,
        "connections": arguments.connections,
        "events_per_batch": arguments.events_per_batch,
        "ingest_processes": "server default" if processes is None else processes,
        "server_processes": server_processes,
        "events": outcome["events"],
        "requests": len(latencies),
        "failed_requests": outcome["failure_count"],
        "failures": outcome["failures"],
        "events_per_second": round(events_per_second),
        "target_events_per_second": TARGET_EVENTS_PER_SECOND,
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1)
        if latencies
        else None,
        "server_rss_mib_after_1_minute": round(rss_one_minute / 2**20, 1)
        if rss_one_minute
        else None,
        "server_rss_mib_at_end": round(rss_end / 2**20, 1),
        "server_rss_end_over_1_minute": round(rss_end / rss_one_minute, 3)
        if rss_one_minute
        else None,
        "server_cpu_seconds": round(server_cpu, 1),
        "server_cpu_microseconds_per_event": round(server_cpu / max(outcome["events"], 1) * 1e6, 1),
        "load_process_cpu_seconds": round(outcome["load_cpu_seconds"], 1),
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(record, indent=2))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()

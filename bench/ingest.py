"""Ingest throughput end to end: JSON batches -> parse_batch -> SqliteLedger.append, fsync on.

Generates a realistic month of conversations (a mix of every common event type, interleaved in
time as they would arrive), encodes them as JSON array bodies, then times parsing and appending
into a fresh ledger, several runs. Prints the median events/s with the parse and append shares
and writes bench/results/ingest.json. Also times the stream that `raas ingest` uses
(`SqliteLedger.append_batches` over parsed bodies: each body is parsed and made ready while the
one before commits), reported as `stream_median_events_per_second`, and the same stream with
parsing and preparing in `--processes` worker processes (`SqliteLedger.append_parsed`), so that
ingest uses a second core: `processes_median_events_per_second` (0 skips it).

    .venv/bin/python bench/ingest.py [--events 200000] [--batch 5000] [--runs 5]

`--prefill 1000000` first fills each ledger with that many other events (untimed), to see how
ingest slows down as the ledger grows.

`--threads 2` also measures two sender threads sharing one ledger, each parsing and appending
its own batches, as a service handling concurrent requests does: while one thread waits on
SQLite (which releases the GIL while it writes and fsyncs), the other parses and prepares.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import queue
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

import raas.native as native
from raas.core.events import (
    ConversationClosed,
    ConversationStarted,
    Csat,
    CustomerConfirmation,
    Event,
    Handoff,
    Message,
    ModelCall,
    ResolutionClaimed,
    ToolCall,
    make_event,
)
from raas.ingest import parse_batch
from raas.ledger.sqlite import SqliteLedger
from stages import stage_breakdown  # bench/stages.py, beside this file

RESULTS_PATH = Path(__file__).parent / "results" / "ingest.json"
TARGET_EVENTS_PER_SECOND = 100_000
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
TENANTS = ("acme", "globex", "initech")
SOURCES = tuple(f"https://agents.helpdesk-ai.example/fleet/{n}" for n in range(4))
INTENTS = ("order_status", "refund", "billing", "password_reset", "shipping_address")
CUSTOMER_LINES = (
    "Hi, my order still has not arrived and the tracking page has not changed in four days.",
    "I was charged twice for the same subscription this month, can you refund one of them?",
    "How do I change the delivery address on an order I placed this morning?",
    "I can't log in, the reset link in the email says it has expired.",
)
AI_LINES = (
    "I'm sorry about the delay. I can see the parcel left the warehouse on Tuesday; let me check "
    "with the carrier.",
    "I found both charges. I've started a refund for the duplicate; it will show in 3-5 days.",
    "Done: the new address is on the order, and you'll get a confirmation email shortly.",
    "I've sent you a fresh reset link that is valid for one hour.",
)


def conversation_events(number: int, chance: random.Random, prefix: str) -> list[Event]:
    """One conversation: start, a few turns with model and tool calls, maybe a handoff, feedback."""
    tenant = chance.choice(TENANTS)
    source = chance.choice(SOURCES)
    customer = f"customer-{chance.randrange(40_000):05d}"
    conversation = f"{prefix}conversation-{number:07d}"
    intent = chance.choice(INTENTS)
    clock = MONTH_START + timedelta(milliseconds=chance.randrange(30 * 24 * 3600 * 1000))
    events: list[Event] = []

    def add(data: Any, with_intent: bool = True) -> None:
        nonlocal clock
        clock += timedelta(milliseconds=chance.randrange(300, 40_000))
        events.append(
            make_event(
                data,
                id=f"{conversation}-{len(events):03d}",
                source=source,
                time=clock,
                tenant=tenant,
                customer=customer,
                conversation=conversation,
                intent=intent if with_intent else None,
            )
        )

    add(ConversationStarted(channel=chance.choice(["chat", "chat", "email", "voice"])), False)
    for _turn in range(chance.randint(1, 4)):
        add(Message(role="customer", text=chance.choice(CUSTOMER_LINES)))
        tier = "small" if chance.random() < 0.8 else "large"
        input_tokens = chance.randrange(300, 4000)
        output_tokens = chance.randrange(20, 400)
        price = Decimal("0.0000002") if tier == "small" else Decimal("0.000003")
        add(
            ModelCall(
                tier=tier,
                model="llama-3.1-8b" if tier == "small" else "llama-3.1-70b",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                latency_ms=chance.randrange(150, 4000),
                cost=price * (input_tokens + output_tokens),
                time_to_first_token_ms=chance.randrange(50, 600),
            )
        )
        if chance.random() < 0.4:
            add(ToolCall(name="lookup_order", latency_ms=chance.randrange(5, 300)))
        add(Message(role="ai", text=chance.choice(AI_LINES)))
    if chance.random() < 0.15:
        add(Handoff(context_passed=chance.random() < 0.8, reason="customer asked for a human"))
        add(Message(role="human_agent", text="Hello, I'm Sam from the support team."))
    else:
        add(ResolutionClaimed())
        if chance.random() < 0.5:
            add(CustomerConfirmation(resolved=chance.random() < 0.85))
        if chance.random() < 0.3:
            add(Csat(score=chance.randint(1, 5)))
    add(ConversationClosed(), False)
    return events


def workload(events_count: int, seed: int, prefix: str = "") -> list[Event]:
    """`events_count` events of conversations in arrival (time) order; ids open with `prefix`."""
    chance = random.Random(seed)
    events: list[Event] = []
    number = 0
    while len(events) < events_count:
        events.extend(conversation_events(number, chance, prefix))
        number += 1
    events.sort(key=lambda event: event.time)
    return events[:events_count]


def bodies_of(events: list[Event], batch_events: int) -> list[bytes]:
    encoder = msgspec.json.Encoder()
    return [
        encoder.encode(events[start : start + batch_events])
        for start in range(0, len(events), batch_events)
    ]


def run_sequential(bodies: list[bytes], path: Path) -> dict[str, float]:
    parse_seconds = append_seconds = 0.0
    events_count = 0
    with SqliteLedger(path) as ledger:
        started = time.perf_counter()
        cpu_started = time.process_time()
        for body in bodies:
            before_parse = time.perf_counter()
            events = parse_batch(body)
            before_append = time.perf_counter()
            receipt = ledger.append(events)
            parse_seconds += before_append - before_parse
            append_seconds += time.perf_counter() - before_append
            assert receipt.stored == len(events)
            events_count += len(events)
        total_seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    return {
        "events": events_count,
        "seconds": total_seconds,
        "events_per_second": events_count / total_seconds,
        "cpu_microseconds_per_event": cpu_seconds / events_count * 1e6,
        "parse_seconds": parse_seconds,
        "append_seconds": append_seconds,
    }


def run_stream(bodies: list[bytes], path: Path) -> dict[str, float]:
    """Parse and append as one stream, as `raas ingest` does."""
    with SqliteLedger(path) as ledger:
        started = time.perf_counter()
        stored = sum(
            receipt.stored for receipt in ledger.append_batches(parse_batch(b) for b in bodies)
        )
        total_seconds = time.perf_counter() - started
    return {"events": stored, "seconds": total_seconds, "events_per_second": stored / total_seconds}


def _parse_timed(log: str, body: bytes) -> list[Event]:
    """`parse_batch` in a worker process, noting the worker's CPU time so far in `log` first."""
    with open(log, "a", encoding="ascii") as file:
        file.write(f"{os.getpid()} {time.process_time()}\n")
    return parse_batch(body)


def run_processes(bodies: list[bytes], path: Path, processes: int) -> dict[str, float]:
    """Parse and prepare in worker processes; this one writes and commits.

    The workers' CPU time an event is taken between their first and their last body (each
    notes its CPU time as it starts a body): what they spend on the bodies in between, without
    starting up (a service starts them once).
    """
    log = Path(f"{path}.cpu")
    with SqliteLedger(path) as ledger:
        started = time.perf_counter()
        cpu_started = time.process_time()
        stored = sum(
            receipt.stored
            for receipt in ledger.append_parsed(
                bodies, functools.partial(_parse_timed, str(log)), processes=processes
            )
        )
        total_seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    noted: dict[str, list[float]] = {}
    for line in log.read_text(encoding="ascii").splitlines():
        pid, seconds = line.split()
        noted.setdefault(pid, []).append(float(seconds))
    # Between its first and last notes a worker made ready all its bodies but the last.
    worker_seconds = sum(times[-1] - times[0] for times in noted.values())
    worker_bodies = sum(len(times) - 1 for times in noted.values())
    events_per_body = stored / len(bodies)
    return {
        "events": stored,
        "seconds": total_seconds,
        "events_per_second": stored / total_seconds,
        "writer_cpu_microseconds_per_event": cpu_seconds / stored * 1e6,
        "workers_cpu_microseconds_per_event": (
            worker_seconds / (worker_bodies * events_per_body) * 1e6
        ),
    }


def run_threads(bodies: list[bytes], path: Path, threads_count: int) -> dict[str, float]:
    """`threads_count` senders share one ledger; each takes the next body, parses and appends it."""
    pending: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        pending.put(body)
    stored: list[int] = []
    failures: list[BaseException] = []

    def send(ledger: SqliteLedger) -> None:
        try:
            while True:
                try:
                    body = pending.get_nowait()
                except queue.Empty:
                    return
                stored.append(ledger.append(parse_batch(body)).stored)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    with SqliteLedger(path) as ledger:
        started = time.perf_counter()
        senders = [threading.Thread(target=send, args=(ledger,)) for _ in range(threads_count)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        total_seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    return {
        "events": sum(stored),
        "seconds": total_seconds,
        "events_per_second": sum(stored) / total_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=5_000, help="events per batch")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="also measure this many sender threads sharing the ledger",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="also measure parsing and preparing in this many worker processes (0: do not)",
    )
    parser.add_argument(
        "--prefill",
        type=int,
        default=0,
        help="events already in each ledger before the timed ingest",
    )
    parser.add_argument(
        "--folder",
        type=Path,
        default=None,
        help="where the ledger files go (default: a temporary folder)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_PATH)
    arguments = parser.parse_args()

    print(f"generating {arguments.events:,} events ...", flush=True)
    events = workload(arguments.events, arguments.seed)
    events_count = len(events)
    bodies = bodies_of(events, arguments.batch)
    # A service does not hold a month of events in memory: drop them, so the garbage collector
    # does not walk them during the measurement.
    del events
    gc.collect()
    body_bytes = sum(len(body) for body in bodies)
    print(
        f"{len(bodies)} batches of {arguments.batch:,}, {body_bytes / events_count:.0f} bytes "
        "an event on the wire"
    )

    load_before = os.getloadavg()[0]
    sequential: list[dict[str, float]] = []
    streamed: list[dict[str, float]] = []
    in_processes: list[dict[str, float]] = []
    threaded: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(dir=arguments.folder) as folder:
        template = Path(folder) / "prefilled.db"
        if arguments.prefill:
            _prefill(template, arguments.prefill, arguments.seed, arguments.batch)
        for run in range(arguments.runs):
            path = Path(folder) / f"sequential-{run}.db"
            if arguments.prefill:
                shutil.copyfile(template, path)
            result = run_sequential(bodies, path)
            result["database_bytes"] = _database_bytes(path)
            sequential.append(result)
            print(
                f"run {run + 1}: {result['events_per_second']:>9,.0f} events/s  "
                f"(parse {result['parse_seconds']:.2f} s, "
                f"append {result['append_seconds']:.2f} s)",
                flush=True,
            )
            path = Path(folder) / f"stream-{run}.db"
            if arguments.prefill:
                shutil.copyfile(template, path)
            result = run_stream(bodies, path)
            streamed.append(result)
            print(f"       {result['events_per_second']:>9,.0f} events/s as a stream", flush=True)
            if arguments.processes:
                path = Path(folder) / f"processes-{run}.db"
                if arguments.prefill:
                    shutil.copyfile(template, path)
                result = run_processes(bodies, path, arguments.processes)
                in_processes.append(result)
                print(
                    f"       {result['events_per_second']:>9,.0f} events/s parsing in "
                    f"{arguments.processes} worker process(es)",
                    flush=True,
                )
            if arguments.threads > 1:
                path = Path(folder) / f"threads-{run}.db"
                if arguments.prefill:
                    shutil.copyfile(template, path)
                result = run_threads(bodies, path, arguments.threads)
                threaded.append(result)
                print(
                    f"       {result['events_per_second']:>9,.0f} events/s with "
                    f"{arguments.threads} sender threads",
                    flush=True,
                )

    print("timing the stages ...", flush=True)
    stages = stage_breakdown(bodies, arguments.folder)
    median = statistics.median(result["events_per_second"] for result in sequential)
    parse = sum(result["parse_seconds"] for result in sequential)
    append = sum(result["append_seconds"] for result in sequential)
    parse_share = parse / (parse + append)
    summary: dict[str, Any] = {
        "benchmark": "ingest: parse_batch + SqliteLedger.append, WAL, synchronous=FULL",
        "events": events_count,
        "batch_events": arguments.batch,
        "prefilled_events": arguments.prefill,
        "runs": arguments.runs,
        "bytes_per_event_on_the_wire": round(body_bytes / events_count),
        "median_events_per_second": round(median),
        # All of ingest on one core: what one free core would give is 1e6 / this.
        "median_cpu_microseconds_per_event": round(
            statistics.median(result["cpu_microseconds_per_event"] for result in sequential), 2
        ),
        "parse_share": round(parse_share, 3),
        "append_share": round(1 - parse_share, 3),
        "parse_microseconds_per_event": round(parse / (events_count * arguments.runs) * 1e6, 2),
        "append_microseconds_per_event": round(append / (events_count * arguments.runs) * 1e6, 2),
        "database_bytes_per_event": round(
            sequential[-1]["database_bytes"] / (events_count + arguments.prefill)
        ),
        "target_events_per_second": TARGET_EVENTS_PER_SECOND,
        # CPU microseconds an event, stage by stage (bench/stages.py).
        "stages": stages,
        "stream_median_events_per_second": round(
            statistics.median(result["events_per_second"] for result in streamed)
        ),
        # On a shared machine other work takes cores: wall times mean little when this is high.
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "runs_detail": sequential,
        "stream_runs_detail": streamed,
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
    if in_processes:
        summary["worker_processes"] = arguments.processes
        summary["processes_median_events_per_second"] = round(
            statistics.median(result["events_per_second"] for result in in_processes)
        )
        summary["processes_writer_cpu_microseconds_per_event"] = round(
            statistics.median(
                result["writer_cpu_microseconds_per_event"] for result in in_processes
            ),
            2,
        )
        summary["processes_workers_cpu_microseconds_per_event"] = round(
            statistics.median(
                result["workers_cpu_microseconds_per_event"] for result in in_processes
            ),
            2,
        )
        # With a core each, the pipeline runs at the pace of its busier side: the rate two free
        # cores would give (wall figures on a shared machine count others' time too).
        summary["processes_events_per_second_on_free_cores"] = round(
            1e6
            / max(
                summary["processes_writer_cpu_microseconds_per_event"],
                summary["processes_workers_cpu_microseconds_per_event"] / arguments.processes,
            )
        )
        summary["processes_runs_detail"] = in_processes
    if threaded:
        summary["sender_threads"] = arguments.threads
        summary["threads_median_events_per_second"] = round(
            statistics.median(result["events_per_second"] for result in threaded)
        )
        summary["threads_runs_detail"] = threaded
    print(
        f"median {median:,.0f} events/s (target {TARGET_EVENTS_PER_SECOND:,}); "
        f"parse {parse_share:.0%}, append {1 - parse_share:.0%} "
        f"({summary['parse_microseconds_per_event']} + "
        f"{summary['append_microseconds_per_event']} us an event)"
    )
    print("stages, CPU us an event: " + ", ".join(f"{k} {v}" for k, v in stages.items()))
    print(f"median as a stream: {summary['stream_median_events_per_second']:,} events/s")
    if in_processes:
        print(
            f"median parsing in {arguments.processes} worker process(es): "
            f"{summary['processes_median_events_per_second']:,} events/s (the writer's CPU: "
            f"{summary['processes_writer_cpu_microseconds_per_event']} us an event, the "
            f"workers' {summary['processes_workers_cpu_microseconds_per_event']}: "
            f"{summary['processes_events_per_second_on_free_cores']:,} events/s on free cores)"
        )
    if threaded:
        print(
            f"median with {arguments.threads} sender threads: "
            f"{summary['threads_median_events_per_second']:,} events/s"
        )
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {arguments.out}")


def _prefill(path: Path, events_count: int, seed: int, batch_events: int) -> None:
    print(f"prefilling a ledger with {events_count:,} other events ...", flush=True)
    events = workload(events_count, seed + 1, prefix="prefill-")
    with SqliteLedger(path) as ledger:
        for start in range(0, len(events), batch_events):
            ledger.append(events[start : start + batch_events])
    del events
    gc.collect()
    # Fold the WAL into the file, so that a plain copy of the file is the whole ledger.
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def _database_bytes(path: Path) -> int:
    return sum(
        os.path.getsize(f"{path}{suffix}")
        for suffix in ("", "-wal")
        if os.path.exists(f"{path}{suffix}")
    )


if __name__ == "__main__":
    main()

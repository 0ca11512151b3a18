"""Gateway overhead: streaming chat completions through `raas gateway` against the same upstream
called directly, side by side in one run, at 1, 50 and 200 concurrent streams; medians, the
offered load, the gateway process's CPU per proxied request, and the load average to
bench/results/gateway.json.

Three measures, each at 1, 50 and 200 streams:
- paced, steady: the headline. N streams stay open, each asking again as soon as its answer
  ends; the upstream sends an event every 10 ms. Each stream starts at a random moment within
  one answer's duration, so arrivals are spread as they would be under a steady load of N
  concurrent conversations; each stream's first two requests (warm-up, while the others are
  still starting) and its last (while the others are already stopping) are not counted.
- paced, burst: N streams start at the same instant and each asks a few times; the first
  requests of all streams reach the gateway together and queue for its CPU, so this shows how
  a synchronized burst of N arrivals is absorbed, not the overhead in steady state.
- back to back: the whole answer at once and the next request straight away, which saturates
  the CPUs (client, upstream and gateway share them) and so shows the gateway's CPU per request.

Three processes: a fast upstream (raw asyncio, a canned SSE answer of 13 events with usage, so
that it is not the bottleneck), the gateway as `raas gateway` runs it (its own HTTP server on
uvloop and httptools, a SQLite ledger), and the client here (keep-alive HTTP/1.1 on asyncio,
one connection per stream). Rounds alternate direct and gateway. The gateway's CPU per request
is what its threads ran during each gateway round (Linux schedstat); `--profile` runs it under
cProfile and prints where its time goes (dumped when it stops).

    .venv/bin/python bench/gateway.py [--quick] [--profile] [--mode M] [--streams N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path
from random import Random
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = (1, 50, 200)
# Paced: the upstream sends an event every 10 ms, as a model streaming ~100 tokens a second;
# the gateway relays 13 events per answer while up to 200 answers are open at once.
# Back to back: the whole answer at once and each stream asks again straight away, which
# saturates the CPUs and measures the gateway's cost per request.
PACED_INTERVAL_SECONDS = 0.01
EVENTS_PER_ANSWER = 13
ANSWER_SECONDS = (EVENTS_PER_ANSWER - 1) * PACED_INTERVAL_SECONDS
# Requests per stream and round that are counted; steady streams make WARM_UP more before and
# COOL_DOWN more after them.
REQUESTS_PER_STREAM = {
    "paced_steady": {1: 40, 50: 8, 200: 5},
    "paced_burst": {1: 40, 50: 4, 200: 2},
    "back_to_back": {1: 400, 50: 16, 200: 6},
}
WARM_UP = 2
COOL_DOWN = 1
MODES = {
    "paced_steady": "N streams open in steady state: each starts at a random moment within one "
    f"answer ({ANSWER_SECONDS * 1000:.0f} ms), asks again as soon as its answer ends, and its "
    f"first {WARM_UP} and last {COOL_DOWN} requests are not counted; the upstream sends an "
    f"event every {PACED_INTERVAL_SECONDS * 1000:.0f} ms",
    "paced_burst": "N streams start at the same instant and ask a few times each, all counted: "
    "the first requests of all streams arrive together and queue for the gateway's CPU",
    "back_to_back": "the whole answer at once and the next request straight away: CPU-bound, "
    "shows the gateway's CPU per request",
}
ROUNDS = 4
RESULTS = ROOT / "bench" / "results" / "gateway.json"
PROFILE_FILE = "gateway.prof"


def _loop_policy() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- the upstream: a raw asyncio server with one canned streaming answer ----------------------


def _canned_answer() -> tuple[bytes, list[bytes]]:
    """The response head and the chunked pieces of a streamed answer: 13 events (11 words, the
    usage, [DONE])."""
    words = [
        "Your",
        "parcel",
        "1234",
        "left",
        "our",
        "depot",
        "today",
        "and",
        "arrives",
        "tomorrow",
        ".",
    ]
    events = []
    for position, word in enumerate(words):
        delta = {"content": (" " if position else "") + word}
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1764000000,
            "model": "ok",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        events.append(chunk)
    usage = {"prompt_tokens": 12, "completion_tokens": len(words), "total_tokens": 12 + len(words)}
    events.append(
        {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    )
    encoded = [
        b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n" for event in events
    ]
    encoded.append(b"data: [DONE]\n\n")
    pieces = [b"%x\r\n%b\r\n" % (len(event), event) for event in encoded]
    pieces[-1] += b"0\r\n\r\n"
    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n"
    )
    return head, pieces


class _Upstream(asyncio.Protocol):
    """Answers every POST with the canned stream: all at once, or, when the request mentions
    "paced", one event every PACED_INTERVAL_SECONDS, as a model generating tokens would."""

    head, pieces = _canned_answer()
    answer = head + b"".join(pieces)
    models = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\n\r\n"
        b'{"object":"list","data":[]}'
    )

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            if not head.startswith(b"post"):
                self.transport.write(self.models)
            elif b"paced" in body:
                self.transport.write(self.head)
                loop = asyncio.get_running_loop()
                for position, piece in enumerate(self.pieces):
                    loop.call_later(position * PACED_INTERVAL_SECONDS, self._write, piece)
            else:
                self.transport.write(self.answer)

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)


def _serve_upstream(port: int) -> None:
    _loop_policy()

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(_Upstream, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


# -- the gateway process ----------------------------------------------------------------------


def _serve_gateway(port: int, upstream: str, database: str, profile: str | None) -> None:
    import cProfile

    from raas.gateway import build_gateway, parse_tier_file, serve
    from raas.ledger.sqlite import SqliteLedger

    tiers = parse_tier_file(
        {
            "tiers": [
                {
                    "name": "small",
                    "upstream": upstream,
                    "model": "ok",
                    "input_token_price": "0.0000001",
                    "output_token_price": "0.0000004",
                }
            ],
            "router": {"target": 0.8},
        }
    )
    gateway = build_gateway(tiers, SqliteLedger(database))
    profiler = cProfile.Profile(time.process_time) if profile else None
    if profiler is not None:
        profiler.enable()
    serve(gateway, "127.0.0.1", port)  # as `raas gateway` runs it, until SIGTERM
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)


# -- the client -------------------------------------------------------------------------------


async def _get_json(url: str) -> Any:
    import httpx  # for the few control requests; the measured ones use the lean client

    async with httpx.AsyncClient(timeout=30) as client:
        return (await client.get(url)).json()


async def _wait(url: str) -> None:
    import httpx

    for _ in range(400):
        try:
            await _get_json(url)
            return
        except (OSError, ValueError, httpx.HTTPError):
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def _body(paced: bool) -> bytes:
    text = "where is my parcel number 1234" + (" (paced)" if paced else "")
    request = {
        "model": "ok",
        "stream": True,
        "stream_options": {"include_usage": True},  # the same bytes come back both ways
        "messages": [
            {"role": "system", "content": "You are the parcel service's assistant."},
            {"role": "user", "content": text},
        ],
    }
    return json.dumps(request).encode()


class _Sample:
    """The counted requests of one round on one path: seconds to the first and to the last body
    byte, and how many failed."""

    def __init__(self) -> None:
        self.first: list[float] = []
        self.last: list[float] = []
        self.failures = 0


async def _measure(
    url: str, streams: int, requests_each: int, paced: bool, offsets: list[float] | None = None
) -> _Sample:
    """Run `streams` streams of requests; with `offsets` (steady state) stream i starts after
    offsets[i] seconds and makes WARM_UP requests before and COOL_DOWN after the counted ones."""
    from raas.gateway.upstream import Endpoint, UpstreamError, UpstreamPool

    pool = UpstreamPool()
    body = _body(paced)
    sample = _Sample()
    skip_before, skip_after = (WARM_UP, COOL_DOWN) if offsets is not None else (0, 0)

    async def stream(number: int) -> None:
        endpoint = Endpoint(
            url, {"content-type": "application/json", "x-raas-conversation": f"bench-{number}"}
        )
        if offsets is not None:
            await asyncio.sleep(offsets[number])
        for position in range(skip_before + requests_each + skip_after):
            counted = skip_before <= position < skip_before + requests_each
            started = time.perf_counter()
            try:
                connection = await pool.post(endpoint, body, 60)
                try:
                    await connection.receive()
                    first_byte = time.perf_counter()
                    while await connection.receive():
                        pass
                finally:
                    connection.release()
            except UpstreamError:
                sample.failures += counted
                continue
            if counted:
                sample.first.append(first_byte - started)
                sample.last.append(time.perf_counter() - started)

    await asyncio.gather(*(stream(number) for number in range(streams)))
    await pool.aclose()
    return sample


def _scheduled(pids: dict[str, int]) -> dict[str, tuple[float, float]]:
    """Seconds each process (all its threads) ran on a CPU and waited for one while runnable,
    from Linux's /proc/PID/task/*/schedstat (the bench needs it: the gateway's CPU is read so)."""
    times: dict[str, tuple[float, float]] = {}
    for name, pid in pids.items():
        try:
            ran = waited = 0
            for thread in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{thread}/schedstat") as numbers:
                    fields = numbers.read().split()
                ran, waited = ran + int(fields[0]), waited + int(fields[1])
        except (OSError, IndexError, ValueError) as error:
            raise SystemExit(f"bench/gateway.py needs Linux's schedstat: {error}") from error
        times[name] = (ran / 1e9, waited / 1e9)
    return times


async def _run(
    direct: str,
    gateway: str,
    quick: bool,
    pids: dict[str, int],
    modes: list[str],
    concurrency: list[int],
) -> dict[str, Any]:
    base = gateway.rsplit("/v1/", 1)[0]
    await _wait(direct.replace("/chat/completions", "/models"))
    await _wait(base + "/v1/models")
    rounds = 2 if quick else ROUNDS
    figures: dict[str, Any] = {}
    await _measure(direct, 4, 50, False)
    await _measure(gateway, 4, 50, False)  # warm both paths
    total_gateway = 200
    random = Random(5)
    for mode in modes:
        per_stream = REQUESTS_PER_STREAM[mode]
        paced = mode != "back_to_back"
        figures[mode] = {}
        for streams in concurrency:
            requests_each = max(2, per_stream[streams] // (4 if quick else 1))
            made_each = requests_each
            samples: dict[str, list[_Sample]] = {"direct": [], "gateway": []}
            cpu_per_request: list[float] = []
            client_cpu: list[float] = []
            scheduled: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
            for _ in range(rounds):
                offsets = None
                if mode == "paced_steady":
                    # The same spread for both paths in a round, another one each round.
                    offsets = [random.uniform(0, ANSWER_SECONDS) for _ in range(streams)]
                    made_each = WARM_UP + requests_each + COOL_DOWN
                samples["direct"].append(
                    await _measure(direct, streams, requests_each, paced, offsets)
                )
                client_before = time.process_time()
                scheduled_before, started = _scheduled(pids), time.perf_counter()
                samples["gateway"].append(
                    await _measure(gateway, streams, requests_each, paced, offsets)
                )
                seconds = time.perf_counter() - started
                scheduled_after = _scheduled(pids)
                for name, (ran, waited) in scheduled_after.items():
                    ran_before, waited_before = scheduled_before[name]
                    scheduled[name].append(
                        ((ran - ran_before) / seconds, (waited - waited_before) / seconds)
                    )
                requests = streams * made_each
                client_cpu.append((time.process_time() - client_before) / requests)
                total_gateway += requests
                # What the gateway's threads ran (its CPU time, ledger writer included).
                gateway_ran = scheduled_after["gateway"][0] - scheduled_before["gateway"][0]
                cpu_per_request.append(gateway_ran / requests)
            row = _row(samples, streams, streams * requests_each * rounds)
            row["gateway_cpu_us_per_request"] = round(statistics.median(cpu_per_request) * 1e6, 1)
            row["client_cpu_us_per_request"] = round(statistics.median(client_cpu) * 1e6, 1)
            # How much of one CPU the gateway kept busy: on 2 CPUs shared by client, upstream and
            # gateway (and whatever else runs), what is left for the others.
            row["gateway_cpus_busy"] = round(
                statistics.median(cpu_per_request) * row["requests_per_second"]["gateway"], 2
            )
            # Other work on the machine takes CPU from all three processes: say how much there
            # was, and how long each process of the gateway path, runnable, waited for a CPU.
            row["load_average_1_minute"] = round(os.getloadavg()[0], 2)
            row["gateway_path_cpus"] = {
                name: {
                    "running": round(statistics.median(ran for ran, _ in times), 2),
                    "waiting_for_a_cpu": round(statistics.median(w for _, w in times), 2),
                }
                for name, times in scheduled.items()
            }
            figures[mode][str(streams)] = row
            print(
                f"{mode:>12} {streams:>4} streams: overhead p50 first byte "
                f"{row['first_byte_overhead_median_ms']:8.3f} ms, last byte "
                f"{row['last_byte_overhead_median_ms']:8.3f} ms (direct "
                f"{row['last_byte_direct_median_ms']:.3f} ms); offered "
                f"{row['requests_per_second']['gateway']:.0f} requests/s; gateway CPU "
                f"{row['gateway_cpu_us_per_request']:.0f} us/request "
                f"({row['gateway_cpus_busy']:.2f} CPUs busy); load {row['load_average_1_minute']}"
                + _waits(row),
                flush=True,
            )
    figures["gateway_requests_total"] = total_gateway
    return figures


def _waits(row: dict[str, Any]) -> str:
    cpus = row.get("gateway_path_cpus")
    if not cpus:
        return ""
    return "; waiting for a CPU: " + ", ".join(
        f"{name} {times['waiting_for_a_cpu']:.2f}" for name, times in cpus.items()
    )


def _row(samples: dict[str, list[_Sample]], streams: int, counted_each_path: int) -> dict[str, Any]:
    """Medians per path and gateway minus direct, with the load each path carried: every stream
    has one request open at a time, so (Little's law) streams / mean time per request is the
    requests per second, and 13 times that the SSE events per second."""
    row: dict[str, Any] = {"streams": streams, "requests_each_path": counted_each_path}
    first = {path: [t for s in rounds for t in s.first] for path, rounds in samples.items()}
    last = {path: [t for s in rounds for t in s.last] for path, rounds in samples.items()}
    for name, times in (("first_byte", first), ("last_byte", last)):
        direct_median = statistics.median(times["direct"]) * 1000
        gateway_median = statistics.median(times["gateway"]) * 1000
        row[f"{name}_direct_median_ms"] = round(direct_median, 3)
        row[f"{name}_gateway_median_ms"] = round(gateway_median, 3)
        row[f"{name}_overhead_median_ms"] = round(gateway_median - direct_median, 3)
    for name, share in (("p90", 0.9), ("p99", 0.99)):
        for path in ("direct", "gateway"):
            row[f"last_byte_{path}_{name}_ms"] = round(_quantile(last[path], share) * 1000, 3)
    row["requests_per_second"] = {
        path: round(streams / statistics.fmean(times), 1) for path, times in last.items()
    }
    row["sse_events_per_second"] = {
        path: round(rate * EVENTS_PER_ANSWER) for path, rate in row["requests_per_second"].items()
    }
    row["failed"] = {path: sum(s.failures for s in rounds) for path, rounds in samples.items()}
    return row


def _quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _print_profile(path: str) -> None:
    import pstats

    print("\ngateway process, cProfile, by own time:")
    stats = pstats.Stats(path)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats("raas|uvicorn", 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests, for a smoke run")
    parser.add_argument("--profile", action="store_true", help="run the gateway under cProfile")
    parser.add_argument(
        "--mode",
        action="append",
        choices=list(REQUESTS_PER_STREAM),
        help="only this measure (repeatable), for iterating; only a full run writes results",
    )
    parser.add_argument(
        "--streams",
        action="append",
        type=int,
        choices=CONCURRENCY,
        help="only this concurrency (repeatable), for iterating",
    )
    arguments = parser.parse_args()
    _loop_policy()
    from raas.ledger.sqlite import SqliteLedger

    upstream_port, gateway_port = _free_port(), _free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        database = os.path.join(folder, "ledger.db")
        profile = os.path.join(folder, PROFILE_FILE) if arguments.profile else None
        processes = [
            multiprocessing.Process(target=_serve_upstream, args=(upstream_port,), daemon=True),
            multiprocessing.Process(
                target=_serve_gateway,
                args=(gateway_port, upstream, database, profile),
                daemon=True,
            ),
        ]
        for process in processes:
            process.start()
        try:
            figures = asyncio.run(
                _run(
                    f"{upstream}/chat/completions",
                    f"http://127.0.0.1:{gateway_port}/v1/chat/completions",
                    arguments.quick,
                    {
                        "client": os.getpid(),
                        "upstream": processes[0].pid or 0,
                        "gateway": processes[1].pid or 0,
                    },
                    arguments.mode or list(REQUESTS_PER_STREAM),
                    arguments.streams or list(CONCURRENCY),
                )
            )
        finally:
            for process in reversed(processes):
                process.terminate()  # SIGTERM: uvicorn shuts down cleanly, the ledger is flushed
                process.join()
        ledger = SqliteLedger(database)
        accounted = ledger.count("default")
        ledger.close()
        if profile is not None:
            _print_profile(profile)
    total = figures.pop("gateway_requests_total")
    print(f"ledger: {accounted} model-call events for {total} proxied requests")
    if arguments.quick or arguments.profile or arguments.mode or arguments.streams:
        return
    result = {
        "what": "streaming chat completion (13 SSE events, usage included), medians of the "
        "time to the first and to the last body byte, gateway minus direct to the same upstream, "
        "in one run, rounds alternating; the load each path carried (counted requests per "
        "second while they ran, and SSE events per second); the gateway's CPU per proxied "
        "request (counted or not): what its threads ran (Linux schedstat), ledger writer included; "
        "gateway_path_cpus: during the gateway rounds, how many CPUs each process of the path "
        "kept busy and how many of its threads were on average runnable but waiting for a CPU "
        "(Linux schedstat): waits mean the 2 CPUs were oversubscribed",
        "modes": MODES,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": [round(value, 2) for value in load_before],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "ledger_events": accounted,
        "proxied_requests": total,
        "streams": figures,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()

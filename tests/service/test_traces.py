"""`POST /v1/traces`: a real OpenTelemetry exporter's spans reach the ledger as model and tool
calls, re-exporting stores nothing twice, the OTLP answer counts the spans not stored, and bad
exports get a google.rpc.Status (protobuf or JSON, as the request was) naming what was wrong."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.rpc.status_pb2 import Status
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


def _status_of(response: Any) -> Status:
    """The google.rpc.Status of a refused export, decoded as its content type says."""
    if response.headers["content-type"] == "application/json":
        return json_format.Parse(response.content, Status())
    assert response.headers["content-type"] == "application/x-protobuf"
    return Status.FromString(response.content)


def test_refused_exports_get_a_status_in_the_requests_encoding_and_store_nothing(
    service: Service,
) -> None:
    ingest = service.headers("acme", "ingest")
    cases = [
        ({**ingest, **PROTOBUF}, b"\xff\xff\xff", 400, "not a protobuf ExportTraceServiceRequest"),
        ({**ingest, **JSON}, b'{"resourceSpans": 7}', 400, "not an OTLP JSON"),
        ({**ingest, "content-type": "text/plain"}, b"x", 415, "'text/plain' is not one of"),
        ({**ingest, **JSON, "content-encoding": "gzip"}, b"plain", 400, "not valid gzip"),
        ({**service.headers("acme", "buyer"), **JSON}, FIXTURE.read_bytes(), 403, "buyer key"),
        ({**service.headers("acme", "buyer"), **PROTOBUF}, _sdk_spans(), 403, "buyer key"),
        (JSON, FIXTURE.read_bytes(), 401, "send an API key"),
        (PROTOBUF, _sdk_spans(), 401, "send an API key"),
    ]
    codes = {400: 3, 401: 16, 403: 7, 415: 3}  # google.rpc.Code
    for headers, body, status, detail in cases:
        response = service.client.post("/v1/traces", content=body, headers=headers)
        assert response.status_code == status, (headers, response.text)
        expected = (
            "application/json"
            if headers.get("content-type") == JSON["content-type"]
            else (
                "application/x-protobuf"  # the OTLP default, also for a type raas does not take
            )
        )
        assert response.headers["content-type"] == expected
        answer = _status_of(response)
        assert answer.code == codes[status]
        assert detail in answer.message, answer.message
    with SqliteLedger(service.database) as ledger:
        assert ledger.count("acme") == 0


def test_a_span_id_reused_with_other_content_refuses_the_export_with_a_status(
    service: Service,
) -> None:
    headers = {**service.headers("acme", "ingest"), **JSON}
    first = _export(_chat_span("eee19b7ec3c1b171", "m", 1, 1))
    again = _export(
        _chat_span("eee19b7ec3c1b171", "m", 2, 1), _chat_span("eee19b7ec3c1b172", "m", 1, 1)
    )
    assert service.client.post("/v1/traces", content=first, headers=headers).status_code == 200
    response = service.client.post("/v1/traces", content=again, headers=headers)
    assert response.status_code == 409
    answer = _status_of(response)
    assert answer.code == 10  # ABORTED
    assert "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b171" in answer.message
    with SqliteLedger(service.database) as ledger:
        assert ledger.count("acme") == 1


def _chat_span(span_id: str, model: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    attributes: dict[str, str | int] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.conversation.id": "conv-priced",
        "raas.customer": "cust-priced",
        "gen_ai.usage.input_tokens": input_tokens,
        "gen_ai.usage.output_tokens": output_tokens,
    }
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "startTimeUnixNano": "1793700000000000000",
        "endTimeUnixNano": "1793700000500000000",
        "attributes": [
            {
                "key": key,
                "value": {"intValue": str(value)}
                if isinstance(value, int)
                else {"stringValue": value},
            }
            for key, value in attributes.items()
        ],
    }


def _export(*spans: dict[str, Any]) -> bytes:
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]}).encode()


PRICES = {
    "models": {
        "llama-3.1-8b": {
            "tier": "small",
            "input_token_price": "0.0000001",
            "output_token_price": "0.0000004",
        },
        "gpt-4o": {"input_token_price": 0.0000025, "output_token_price": "0.00001"},
    }
}


def test_the_price_table_costs_spans_and_a_model_without_price_is_named(service: Service) -> None:
    admin = service.headers("acme", "vendor-admin")
    stored = service.client.put("/v1/prices", json=PRICES, headers=admin)
    assert stored.status_code == 200, stored.text
    assert stored.json()["models"]["gpt-4o"] == {
        "tier": "gpt-4o",  # no tier given: the model's name
        "input_token_price": "0.0000025",
        "output_token_price": "0.00001",
        "currency": "USD",
    }
    assert service.client.get("/v1/prices", headers=admin).json() == stored.json()
    body = _export(
        _chat_span("eee19b7ec3c1b171", "llama-3.1-8b", 1000, 250),
        _chat_span("eee19b7ec3c1b172", "gpt-4o", 3, 7),
        _chat_span("eee19b7ec3c1b173", "mistral-large", 10, 10),
    )
    response = service.client.post(
        "/v1/traces", content=body, headers={**service.headers("acme", "ingest"), **JSON}
    )
    assert response.status_code == 200, response.text
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "0"
    assert (
        "1 span stored with a warning: no raas.cost and no price for model 'mistral-large'"
        in partial["errorMessage"]
    )
    assert "llama" not in partial["errorMessage"]
    with SqliteLedger(service.database) as ledger:
        calls = {
            event.data.model: event.data
            for event in (entry.event for entry in ledger.iter_events("acme"))
            if isinstance(event.data, ModelCall)
        }
    assert (calls["llama-3.1-8b"].cost, calls["llama-3.1-8b"].tier) == (Decimal("0.0002"), "small")
    assert calls["gpt-4o"].cost == Decimal("0.0000775")
    assert (calls["mistral-large"].cost, calls["mistral-large"].tier) == (0, "mistral-large")


def test_the_price_table_is_set_by_a_vendor_admin_and_checked_field_by_field(
    service: Service,
) -> None:
    put, get = service.client.put, service.client.get
    assert (
        put("/v1/prices", json=PRICES, headers=service.headers("acme", "buyer")).status_code == 403
    )
    assert get("/v1/prices", headers=service.headers("acme", "ingest")).status_code == 403
    admin = service.headers("acme", "vendor-admin")
    bad = [
        ({"tier": "s", "input_token_price": "-1", "output_token_price": "0"}, "input_token_price"),
        ({"input_token_price": "0.0000000000001", "output_token_price": "0"}, "input_token_price"),
        ({"input_token_price": "0", "output_token_price": "NaN"}, "output_token_price"),
        ({"input_token_price": "0", "output_token_price": "1", "currency": "usd"}, "currency"),
        ({"input_token_price": "0", "output_token_price": "1", "typo": 1}, "typo"),
    ]
    for price, field in bad:
        response = put("/v1/prices", json={"models": {"m": price}}, headers=admin)
        assert response.status_code == 422, (price, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["field"] == f"body.models.m.{field}", response.text
    assert get("/v1/prices", headers=admin).json() == {"models": {}}
    assert put("/v1/prices", json=PRICES, headers=admin).status_code == 200
    auditor = get("/v1/prices", headers=service.headers("acme", "auditor"))
    assert set(auditor.json()["models"]) == {"llama-3.1-8b", "gpt-4o"}
    assert get("/v1/prices", headers=service.headers("globex", "vendor-admin")).json() == {
        "models": {}
    }

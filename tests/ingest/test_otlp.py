"""OTLP traces -> raas events: GenAI spans become model and tool calls, every other span is counted
under its reason, the same export gives the same event ids, and protobuf and JSON agree."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from raas.core.events import ModelCall, ToolCall
from raas.ingest.otlp import (
    EVENT_SOURCE,
    ModelPrice,
    OtlpError,
    Span,
    convert_spans,
    convert_traces,
    decompressed,
    export_response,
)

CASES = Path(__file__).resolve().parents[1] / "cases" / "otlp"
FIXTURE = CASES / "genai-traces.json"


def _json_to_protobuf(document: dict[str, Any]) -> bytes:
    """OTLP JSON -> the binary request it stands for (ids hex -> base64, as proto3 JSON wants)."""
    document = json.loads(json.dumps(document))
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for field in ("traceId", "spanId"):
                    span[field] = base64.b64encode(bytes.fromhex(span[field])).decode()
    request = json_format.ParseDict(document, ExportTraceServiceRequest())
    return request.SerializeToString()


def test_fixture_maps_genai_spans_and_counts_every_other_span_by_reason() -> None:
    conversion = convert_traces(FIXTURE.read_bytes(), "application/json", tenant="acme")
    assert conversion.spans == 6
    assert len(conversion.events) + conversion.skipped_spans == conversion.spans
    assert conversion.skipped == {
        "operation 'invoke_agent' is neither a model call nor a tool call": 1,
        "not a GenAI span: no gen_ai.operation.name": 1,
        "no gen_ai.conversation.id": 1,
    }
    assert conversion.warnings == {"no raas.cost and no price for model 'claude-haiku': cost 0": 1}
    chat, tool, older = conversion.events
    assert chat.id == "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert chat.source == EVENT_SOURCE
    assert (chat.tenant, chat.customer, chat.conversation, chat.intent) == (
        "acme",
        "customer-7",
        "conv-1",
        "refund",
    )
    assert chat.subject == "openai"
    assert chat.time == datetime(2026, 11, 3, 10, 0, 0, 850000, tzinfo=UTC)
    assert chat.data == ModelCall(
        tier="small",
        model="gpt-4o-mini-2024-07-18",
        input_tokens=412,
        output_tokens=96,
        latency_ms=850,
        cost=Decimal("0.000120"),
    )
    assert tool.data == ToolCall(name="lookup_order", ok=False, latency_ms=120)
    # The older attribute names are read too; without a tier the model names it.
    assert older.subject == "anthropic"
    assert older.data == ModelCall(
        tier="claude-haiku",
        model="claude-haiku",
        input_tokens=1000,
        output_tokens=200,
        latency_ms=1000,
        cost=Decimal(0),
    )


def test_protobuf_and_json_of_the_same_export_give_the_same_events() -> None:
    document = json.loads(FIXTURE.read_text())
    from_json = convert_traces(FIXTURE.read_bytes(), "application/json", tenant="acme")
    from_protobuf = convert_traces(
        _json_to_protobuf(document), "application/x-protobuf; charset=binary", tenant="acme"
    )
    assert from_protobuf == from_json


def test_exporting_again_gives_the_same_event_ids_and_content() -> None:
    first = convert_traces(FIXTURE.read_bytes(), "application/json", tenant="acme")
    again = convert_traces(FIXTURE.read_bytes(), "application/json", tenant="acme")
    assert [event.id for event in again.events] == [event.id for event in first.events]
    assert again.events == first.events
    assert len({event.id for event in first.events}) == len(first.events)


def test_price_table_gives_tier_and_cost_and_a_cost_attribute_wins() -> None:
    prices = {
        "claude-haiku": ModelPrice(
            tier="large",
            input_token_price=Decimal("0.000001"),
            output_token_price=Decimal("0.000005"),
        ),
        "gpt-4o-mini": ModelPrice(
            tier="tiny", input_token_price=Decimal(1), output_token_price=Decimal(1)
        ),
    }
    conversion = convert_traces(
        FIXTURE.read_bytes(), "application/json", tenant="acme", prices=prices
    )
    chat, _tool, older = conversion.events
    assert older.data.tier == "large"
    assert older.data.cost == Decimal("0.002000")  # 1000 * 0.000001 + 200 * 0.000005
    # The span's own raas.tier and raas.cost win over the table (priced by its request model).
    assert (chat.data.tier, chat.data.cost) == ("small", Decimal("0.000120"))
    assert conversion.warnings == {}


def _sdk_export(spans: list[tuple[str, dict[str, Any], bool]]) -> bytes:
    """Spans made by the real OpenTelemetry SDK, encoded as its OTLP/HTTP exporter sends them."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "agent"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for name, attributes, failed in spans:
        with tracer.start_as_current_span(name, attributes=attributes) as span:
            if failed:
                span.set_status(Status(StatusCode.ERROR))
    provider.shutdown()
    return encode_spans(exporter.get_finished_spans()).SerializeToString()


def test_spans_from_the_opentelemetry_sdk() -> None:
    body = _sdk_export(
        [
            (
                "chat llama",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "llama-3.1-8b",
                    "gen_ai.usage.input_tokens": 30,
                    "gen_ai.usage.output_tokens": 7,
                    "gen_ai.conversation.id": "c-1",
                    "user.id": "u-1",
                    "raas.cost": 0.0025,
                },
                False,
            ),
            (
                "embeddings",
                {
                    "gen_ai.operation.name": "embeddings",
                    "gen_ai.request.model": "bge-small",
                    "gen_ai.usage.input_tokens": 12,
                    "gen_ai.conversation.id": "c-1",
                },
                False,
            ),
            (
                "chat broken",
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "llama-3.1-8b",
                    "gen_ai.usage.input_tokens": -3,
                    "gen_ai.usage.output_tokens": 1,
                    "gen_ai.conversation.id": "c-1",
                },
                True,
            ),
            ("db query", {"db.system.name": "postgresql"}, False),
        ]
    )
    conversion = convert_traces(body, "application/x-protobuf", tenant="acme")
    assert conversion.spans == 4
    chat, embeddings = conversion.events
    assert chat.customer == "u-1"
    assert chat.data.cost == Decimal("0.0025")  # a double is read as the decimal it prints as
    assert (chat.data.input_tokens, chat.data.output_tokens) == (30, 7)
    assert (embeddings.data.input_tokens, embeddings.data.output_tokens) == (12, 0)
    assert embeddings.customer == "c-1"  # no customer attribute: the conversation stands in
    assert conversion.skipped == {
        "attribute gen_ai.usage.input_tokens must be a non-negative integer": 1,
        "not a GenAI span: no gen_ai.operation.name": 1,
    }
    assert conversion.warnings == {
        "no raas.customer, user.id or enduser.id: the conversation id is the customer": 1,
        "no raas.cost and no price for model 'bge-small': cost 0": 1,
    }


def test_response_reports_rejected_spans_and_reasons_in_both_encodings() -> None:
    conversion = convert_traces(FIXTURE.read_bytes(), "application/json", tenant="acme")
    response = ExportTraceServiceResponse.FromString(export_response(conversion, json=False))
    assert response.partial_success.rejected_spans == 3
    assert "1 span skipped: no gen_ai.conversation.id" in response.partial_success.error_message
    assert "stored with a warning" in response.partial_success.error_message
    as_json = json.loads(export_response(conversion, json=True))
    assert as_json["partialSuccess"]["rejectedSpans"] == "3"
    assert as_json["partialSuccess"]["errorMessage"] == response.partial_success.error_message


def test_a_clean_export_answers_an_empty_response() -> None:
    conversion = convert_spans([], tenant="acme")
    assert export_response(conversion, json=False) == b""
    assert json.loads(export_response(conversion, json=True)) == {}


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"\xff\xff\xff", "application/x-protobuf", "not a protobuf ExportTraceServiceRequest"),
        (b"{not json", "application/json", "not an OTLP JSON ExportTraceServiceRequest"),
        (b'{"resourceSpans": 3}', "application/json", "not an OTLP JSON"),
        (b"{}", "text/plain", "content type 'text/plain' is not OTLP"),
        (
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}',
            "application/json",
            "`startTimeUnixNano` must be an integer of nanoseconds",
        ),
    ],
)
def test_unreadable_exports_are_refused_with_the_reason(
    body: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(OtlpError, match=reason):
        convert_traces(body, content_type, tenant="acme")


def test_a_number_too_large_for_a_float_is_read_exactly_not_through_a_float() -> None:
    document = json.loads(FIXTURE.read_text())
    attributes = document["resourceSpans"][0]["scopeSpans"][0]["spans"][2]["attributes"]
    attributes.append({"key": "raas.cost", "value": {"doubleValue": 10**400}})
    conversion = convert_traces(json.dumps(document).encode(), "application/json", tenant="acme")
    assert conversion.events[-1].data.cost == Decimal(10**400)


def test_json_ids_that_are_not_hex_or_zero_are_skipped_not_guessed() -> None:
    document = json.loads(FIXTURE.read_text())
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["spanId"] = "0000000000000000"
    spans[2]["traceId"] = "not-hex-at-all-not-hex-at-all-!!"
    conversion = convert_traces(json.dumps(document).encode(), "application/json", tenant="acme")
    assert (
        conversion.skipped["invalid trace id or span id (must be non-zero hex, 16 and 8 bytes)"]
        == 2
    )
    assert [event.data.name for event in conversion.events] == ["lookup_order"]


_attribute_values = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.integers(min_value=-5, max_value=2**60),
    st.floats(allow_nan=True),
    st.booleans(),
)
_attribute_names = st.sampled_from(
    [
        "gen_ai.operation.name",
        "gen_ai.conversation.id",
        "gen_ai.request.model",
        "gen_ai.response.model",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.tool.name",
        "raas.cost",
        "raas.currency",
        "raas.tier",
        "raas.customer",
    ]
)
_spans = st.builds(
    Span,
    trace_id=st.sampled_from(["5b8efff798038103d269b633813fc60c", "00", "zz" * 16]),
    span_id=st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    name=st.just("span"),
    start_ns=st.integers(min_value=0, max_value=2**63),
    end_ns=st.integers(min_value=0, max_value=2**64 - 1),
    error=st.booleans(),
    attributes=st.dictionaries(
        _attribute_names,
        st.one_of(
            _attribute_values,
            st.sampled_from(["chat", "execute_tool", "embeddings", "invoke_agent"]),
        ),
    ),
    resource=st.dictionaries(_attribute_names, _attribute_values, max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_spans, max_size=8))
def test_every_span_is_an_event_or_counted_under_a_reason(spans: list[Span]) -> None:
    conversion = convert_spans(spans, tenant="acme")
    assert len(conversion.events) + conversion.skipped_spans == len(spans)
    assert all(count > 0 for count in conversion.skipped.values())
    assert convert_spans(spans, tenant="acme") == conversion


def test_gzip_bodies_are_inflated_within_their_bound() -> None:
    body = FIXTURE.read_bytes()
    assert decompressed(gzip.compress(body), "gzip", bytes_max=len(body)) == body
    assert decompressed(body, None, bytes_max=1) == body
    with pytest.raises(OtlpError, match="inflates past 100 bytes"):
        decompressed(gzip.compress(b"0" * 10_000_000), "gzip", bytes_max=100)
    with pytest.raises(OtlpError, match="not valid gzip"):
        decompressed(b"plain", "gzip", bytes_max=100)
    with pytest.raises(OtlpError, match="truncated"):
        decompressed(gzip.compress(body)[:-20], "gzip", bytes_max=len(body))
    with pytest.raises(OtlpError, match="'br' is not supported"):
        decompressed(body, "br", bytes_max=len(body))


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(
            ["resourceSpans", "scopeSpans", "spans", "attributes", "key", "value", "traceId",
             "spanId", "startTimeUnixNano", "endTimeUnixNano", "status", "code", "stringValue",
             "intValue", "doubleValue", "arrayValue", "kvlistValue", "values", "resource"]
        ),
        children,
        max_size=4,
    ),
    max_leaves=30,
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_any_json_body_is_converted_or_refused_with_a_reason(document: object) -> None:
    """What a fuzzer sends the endpoint: never an exception other than OtlpError."""
    body = json.dumps(document).encode()
    try:
        conversion = convert_traces(body, "application/json", tenant="acme")
    except OtlpError as error:
        assert error.reason
    else:
        assert len(conversion.events) + conversion.skipped_spans == conversion.spans


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_as_protobuf_are_converted_or_refused_with_a_reason(body: bytes) -> None:
    try:
        conversion = convert_traces(body, "application/x-protobuf", tenant="acme")
    except OtlpError as error:
        assert error.reason
    else:
        assert len(conversion.events) + conversion.skipped_spans == conversion.spans

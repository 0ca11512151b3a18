"""OpenTelemetry in: OTLP trace exports (protobuf or JSON) -> raas model-call and tool-call events.

An agent instrumented with the OpenTelemetry GenAI semantic conventions needs only an exporter
address. Pure: bytes in, events and a report of every span that did not become one (counted per
reason) out; the HTTP route and the importer only move bytes.

Which attributes are read (semantic conventions for GenAI spans, status "Development"):
- kind of event: `gen_ai.operation.name`; chat, text_completion, generate_content and embeddings
  make a model call, execute_tool a tool call, anything else is skipped
- conversation: `gen_ai.conversation.id` (required)
- model: `gen_ai.response.model`, else `gen_ai.request.model` (one required)
- tokens: `gen_ai.usage.input_tokens` and `gen_ai.usage.output_tokens`, else the older
  `..prompt_tokens` and `..completion_tokens` (required; embeddings have 0 output tokens)
- tool name: `gen_ai.tool.name` (required for execute_tool); an error status makes it not ok
- customer: `raas.customer`, `user.id`, `enduser.id`; else the conversation id (a warning)
- intent, tier, cost, currency: `raas.intent`, `raas.tier`, `raas.cost`, `raas.currency`

Span and resource attributes are read alike (the span's win). Without `raas.tier` the tier is the
price table's tier for the model, else the model's own name; without `raas.cost` the cost comes
from the price table (the response model's price, else the requested model's), else it is 0 and
counted as a warning naming the model. The provider
(`gen_ai.provider.name`, or the older `gen_ai.system`) goes into the event's `subject`.

Event ids come from the trace and span ids, so exporting the same spans again stores nothing twice.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue as AnyValueProto
from opentelemetry.proto.common.v1.common_pb2 import KeyValue as KeyValueProto
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from raas.core.events import Event, ModelCall, ToolCall, make_event
from raas.errors import EventError, RaasError
from raas.ingest.validate import parse_event

EVENT_SOURCE: Final = "urn:raas:otlp"
SPANS_MAX: Final = 100_000
# A reason or warning text is cut to this length, so a sender cannot grow the report unbounded.
REASON_CHARACTERS_MAX: Final = 160
SUMMARY_REASONS_MAX: Final = 20
CONTENT_TYPE_PROTOBUF: Final = "application/x-protobuf"
CONTENT_TYPE_JSON: Final = "application/json"

MODEL_OPERATIONS: Final = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
TOOL_OPERATION: Final = "execute_tool"
# Operations whose spans report no output tokens by their nature.
INPUT_ONLY_OPERATIONS: Final = frozenset({"embeddings"})

_STATUS_ERROR: Final = 2  # STATUS_CODE_ERROR in the OTLP enum, in both encodings
_NANOSECONDS_PER_MILLISECOND: Final = 1_000_000
_LATENCY_MS_MAX: Final = 7 * 24 * 3600 * 1000

AttributeValue = str | bool | int | float | bytes | list[Any] | dict[str, Any] | None


class OtlpError(RaasError):
    """An OTLP export request that cannot be read at all (not protobuf, not OTLP JSON, too big)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"OTLP trace export refused, nothing stored: {reason}")


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a model costs per token, and the tier it counts as."""

    tier: str
    input_token_price: Decimal
    output_token_price: Decimal
    currency: str = "USD"


class Span(msgspec.Struct, frozen=True, kw_only=True):
    """The part of an OTLP span raas reads; ids in lowercase hex, attributes flattened."""

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    end_ns: int
    error: bool
    attributes: Mapping[str, AttributeValue]
    resource: Mapping[str, AttributeValue]


class TraceConversion(msgspec.Struct, frozen=True, kw_only=True):
    """The events made from one export, and every span that did not become one, by reason.

    `warnings` counts spans that did become events but with a default the sender may not expect
    (no cost, no customer); `skipped` counts spans that became nothing.
    """

    spans: int
    events: list[Event]
    skipped: dict[str, int]
    warnings: dict[str, int]

    @property
    def skipped_spans(self) -> int:
        return sum(self.skipped.values())


# -- decoding: protobuf ------------------------------------------------------------------------


def spans_of_protobuf(body: bytes) -> list[Span]:
    """The spans of a binary ExportTraceServiceRequest; raises OtlpError if it does not decode."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, ValueError) as error:
        raise OtlpError(f"the body is not a protobuf ExportTraceServiceRequest: {error}") from None
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _attributes_of_protobuf(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        error=span.status.code == Status.STATUS_CODE_ERROR,
                        attributes=_attributes_of_protobuf(span.attributes),
                        resource=resource,
                    )
                )
                _check_span_count(len(spans))
    return spans


def _attributes_of_protobuf(pairs: Iterable[KeyValueProto]) -> dict[str, AttributeValue]:
    return {pair.key: _value_of_protobuf(pair.value) for pair in pairs}


def _value_of_protobuf(value: AnyValueProto) -> AttributeValue:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value_of_protobuf(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes_of_protobuf(value.kvlist_value.values)
    found: AttributeValue = getattr(value, kind)
    return found


# -- decoding: OTLP JSON -----------------------------------------------------------------------
# OTLP JSON is proto3 JSON with two differences: ids are hex, not base64, and enums are integers.
# Unknown fields are ignored, as the OTLP specification asks of receivers.


class _JsonValue(msgspec.Struct, rename="camel"):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | str | None = None
    double_value: float | int | str | None = None
    array_value: _JsonArray | None = None
    kvlist_value: _JsonKeyValues | None = None
    bytes_value: str | None = None


class _JsonKeyValue(msgspec.Struct):
    key: str
    value: _JsonValue | None = None


class _JsonArray(msgspec.Struct):
    values: list[_JsonValue] = []


class _JsonKeyValues(msgspec.Struct):
    values: list[_JsonKeyValue] = []


class _JsonStatus(msgspec.Struct):
    code: int | str = 0


class _JsonSpan(msgspec.Struct, rename="camel"):
    trace_id: str = ""
    span_id: str = ""
    name: str = ""
    start_time_unix_nano: int | str = 0
    end_time_unix_nano: int | str = 0
    attributes: list[_JsonKeyValue] = []
    status: _JsonStatus | None = None


class _JsonScopeSpans(msgspec.Struct):
    spans: list[_JsonSpan] = []


class _JsonResource(msgspec.Struct):
    attributes: list[_JsonKeyValue] = []


class _JsonResourceSpans(msgspec.Struct, rename="camel"):
    resource: _JsonResource | None = None
    scope_spans: list[_JsonScopeSpans] = []


class _JsonRequest(msgspec.Struct, rename="camel"):
    resource_spans: list[_JsonResourceSpans] = []


_json_request_decoder: Final = msgspec.json.Decoder(_JsonRequest)


def spans_of_json(body: bytes) -> list[Span]:
    """The spans of an OTLP JSON ExportTraceServiceRequest; raises OtlpError if it does not read."""
    try:
        request = _json_request_decoder.decode(body)
    except msgspec.DecodeError as error:
        raise OtlpError(
            f"the body is not an OTLP JSON ExportTraceServiceRequest: {error}"
        ) from None
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource_attributes = resource_spans.resource.attributes if resource_spans.resource else []
        resource = _attributes_of_json(resource_attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                status = span.status.code if span.status is not None else 0
                spans.append(
                    Span(
                        trace_id=span.trace_id.lower(),
                        span_id=span.span_id.lower(),
                        name=span.name,
                        start_ns=_nanoseconds(span.start_time_unix_nano, "startTimeUnixNano"),
                        end_ns=_nanoseconds(span.end_time_unix_nano, "endTimeUnixNano"),
                        error=status in (_STATUS_ERROR, "STATUS_CODE_ERROR"),
                        attributes=_attributes_of_json(span.attributes),
                        resource=resource,
                    )
                )
                _check_span_count(len(spans))
    return spans


def _nanoseconds(value: int | str, field: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise OtlpError(
            f"`{field}` must be an integer of nanoseconds, got {value[:40]!r}"
        ) from None


def _attributes_of_json(pairs: Iterable[_JsonKeyValue]) -> dict[str, AttributeValue]:
    return {pair.key: _value_of_json(pair.value) for pair in pairs}


def _value_of_json(value: _JsonValue | None) -> AttributeValue:
    if value is None:
        return None
    if value.string_value is not None:
        return value.string_value
    if value.bool_value is not None:
        return value.bool_value
    if value.int_value is not None:
        try:
            return int(value.int_value)
        except ValueError:
            return str(value.int_value)
    if value.double_value is not None:
        try:
            return float(value.double_value)
        except (ValueError, OverflowError):
            return str(value.double_value)
    if value.array_value is not None:
        return [_value_of_json(item) for item in value.array_value.values]
    if value.kvlist_value is not None:
        return _attributes_of_json(value.kvlist_value.values)
    if value.bytes_value is not None:
        return value.bytes_value
    return None


def _check_span_count(count: int) -> None:
    if count > SPANS_MAX:
        raise OtlpError(f"an export may hold at most {SPANS_MAX:,} spans")


def decompressed(body: bytes, content_encoding: str | None, *, bytes_max: int) -> bytes:
    """The body without its Content-Encoding (identity or gzip, as OTLP/HTTP exporters send),
    refused once it would grow past `bytes_max` (a small gzip body can inflate a thousandfold)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise OtlpError(f"content encoding {encoding!r} is not supported; use gzip or none")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, bytes_max + 1)
    except zlib.error as error:
        raise OtlpError(f"the body is not valid gzip: {error}") from None
    if len(inflated) > bytes_max or inflater.unconsumed_tail:
        raise OtlpError(f"the body inflates past {bytes_max:,} bytes")
    if not inflater.eof:
        raise OtlpError("the gzip body is truncated")
    return inflated


def spans_of_body(body: bytes, content_type: str) -> list[Span]:
    """The spans of an OTLP/HTTP request body of the given content type (protobuf or JSON)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == CONTENT_TYPE_PROTOBUF:
        return spans_of_protobuf(body)
    if media_type == CONTENT_TYPE_JSON:
        return spans_of_json(body)
    raise OtlpError(
        f"content type {media_type!r} is not OTLP; expected {CONTENT_TYPE_PROTOBUF} or "
        f"{CONTENT_TYPE_JSON}"
    )


# -- spans -> events ---------------------------------------------------------------------------


class _Skip(Exception):
    """A span that does not become an event, and why (the reason is the report's key)."""

    def __init__(self, reason: str):
        self.reason = reason


def convert_spans(
    spans: Iterable[Span], *, tenant: str, prices: Mapping[str, ModelPrice] | None = None
) -> TraceConversion:
    """Each GenAI span -> one raas event of `tenant`; every other span counted under its reason."""
    prices = prices or {}
    events: list[Event] = []
    skipped: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    count = 0
    for span in spans:
        count += 1
        # A span's warnings count only if it becomes an event.
        span_warnings: list[str] = []
        try:
            event = _event_of(span, tenant, prices, span_warnings)
        except _Skip as skip:
            skipped[skip.reason[:REASON_CHARACTERS_MAX]] += 1
            continue
        try:
            # The ingest boundary's own check, so an OTLP event is held to what any event is.
            events.append(parse_event(_event_encoder.encode(event)))
        except EventError as error:
            skipped[f"field {error.field!r} {error.reason}"[:REASON_CHARACTERS_MAX]] += 1
            continue
        warnings.update(span_warnings)
    return TraceConversion(
        spans=count, events=events, skipped=dict(skipped), warnings=dict(warnings)
    )


_event_encoder: Final = msgspec.json.Encoder()


def convert_traces(
    body: bytes,
    content_type: str,
    *,
    tenant: str,
    prices: Mapping[str, ModelPrice] | None = None,
) -> TraceConversion:
    """An OTLP/HTTP trace export -> raas events; raises OtlpError if the body cannot be read."""
    return convert_spans(spans_of_body(body, content_type), tenant=tenant, prices=prices)


def _event_of(
    span: Span, tenant: str, prices: Mapping[str, ModelPrice], warnings: list[str]
) -> Event:
    operation = _text(span, "gen_ai.operation.name")
    if operation is None:
        raise _Skip("not a GenAI span: no gen_ai.operation.name")
    if operation not in MODEL_OPERATIONS and operation != TOOL_OPERATION:
        raise _Skip(f"operation {operation!r} is neither a model call nor a tool call")
    if not _is_hex_id(span.trace_id, 32) or not _is_hex_id(span.span_id, 16):
        raise _Skip("invalid trace id or span id (must be non-zero hex, 16 and 8 bytes)")
    conversation = _text(span, "gen_ai.conversation.id")
    if conversation is None:
        raise _Skip("no gen_ai.conversation.id")
    if span.end_ns <= 0:
        raise _Skip("no end time")
    if span.end_ns < span.start_ns:
        raise _Skip("ends before it starts")
    latency_ms = round((span.end_ns - span.start_ns) / _NANOSECONDS_PER_MILLISECOND)
    if latency_ms > _LATENCY_MS_MAX:
        raise _Skip("lasts longer than 7 days")
    customer = _text(span, "raas.customer", "user.id", "enduser.id")
    if customer is None:
        warnings.append(
            "no raas.customer, user.id or enduser.id: the conversation id is the customer"
        )
        customer = conversation
    data: ModelCall | ToolCall
    if operation == TOOL_OPERATION:
        tool = _text(span, "gen_ai.tool.name")
        if tool is None:
            raise _Skip("execute_tool span without gen_ai.tool.name")
        ok = not span.error and _text(span, "error.type") is None
        data = ToolCall(name=tool, ok=ok, latency_ms=latency_ms)
    else:
        data = _model_call(span, operation, latency_ms, prices, warnings)
    return make_event(
        data,
        id=f"{span.trace_id}-{span.span_id}",
        source=EVENT_SOURCE,
        time=_time_of(span.end_ns),
        tenant=tenant,
        customer=customer,
        conversation=conversation,
        intent=_text(span, "raas.intent"),
        subject=_text(span, "gen_ai.provider.name", "gen_ai.system"),
    )


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _time_of(unix_ns: int) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=unix_ns // 1000)
    except OverflowError:
        raise _Skip("end time out of range") from None


def _model_call(
    span: Span,
    operation: str,
    latency_ms: int,
    prices: Mapping[str, ModelPrice],
    warnings: list[str],
) -> ModelCall:
    model = _text(span, "gen_ai.response.model", "gen_ai.request.model")
    if model is None:
        raise _Skip("no gen_ai.response.model or gen_ai.request.model")
    input_tokens = _count(span, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
    if input_tokens is None:
        raise _Skip("no gen_ai.usage.input_tokens")
    output_tokens = _count(span, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
    if output_tokens is None:
        if operation not in INPUT_ONLY_OPERATIONS:
            raise _Skip("no gen_ai.usage.output_tokens")
        output_tokens = 0
    price = prices.get(model)
    if price is None:
        requested = _text(span, "gen_ai.request.model")
        price = prices.get(requested) if requested is not None else None
    cost = _decimal(span, "raas.cost")
    if cost is None and price is not None:
        cost = price.input_token_price * input_tokens + price.output_token_price * output_tokens
    if cost is None:
        warnings.append(
            f"no raas.cost and no price for model {model!r}: cost 0"[:REASON_CHARACTERS_MAX]
        )
        cost = Decimal(0)
    tier = _text(span, "raas.tier") or (price.tier if price is not None else model)
    currency = _text(span, "raas.currency") or (price.currency if price is not None else "USD")
    return ModelCall(
        tier=tier,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=latency_ms,
        cost=cost,
        currency=currency,
    )


def _attribute(span: Span, names: tuple[str, ...]) -> tuple[str, AttributeValue]:
    for name in names:
        if name in span.attributes:
            return name, span.attributes[name]
        if name in span.resource:
            return name, span.resource[name]
    return names[0], None


def _text(span: Span, *names: str) -> str | None:
    name, value = _attribute(span, names)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Skip(f"attribute {name} must be a string")
    return str(value)


def _count(span: Span, *names: str) -> int | None:
    name, value = _attribute(span, names)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Skip(f"attribute {name} must be a non-negative integer")
    return value


def _decimal(span: Span, *names: str) -> Decimal | None:
    name, value = _attribute(span, names)
    if value is None:
        return None
    # A double is read as the shortest decimal that prints it: what the sender most likely wrote.
    if isinstance(value, float) and math.isfinite(value):
        value = repr(value)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _Skip(f"attribute {name} must be a decimal number")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise _Skip(f"attribute {name} must be a decimal number") from None
    if not amount.is_finite() or amount < 0:
        raise _Skip(f"attribute {name} must be a finite, non-negative decimal")
    return amount


def _is_hex_id(value: str, length: int) -> bool:
    if len(value) != length or value == "0" * length:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True


# -- the OTLP/HTTP response ----------------------------------------------------------------------


def export_response(conversion: TraceConversion, *, json: bool) -> bytes:
    """The ExportTraceServiceResponse body: partial_success names the spans not stored and why,
    and the warnings, so an exporter's log shows both (the OTLP specification allows a message
    with no rejected spans as a warning)."""
    rejected = conversion.skipped_spans
    message = summary(conversion)
    if json:
        partial: dict[str, Any] = {}
        if rejected or message:
            partial = {"rejectedSpans": str(rejected), "errorMessage": message}
        return msgspec.json.encode({"partialSuccess": partial} if partial else {})
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.CopyFrom(
            ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
        )
    body: bytes = response.SerializeToString()
    return body


def summary(conversion: TraceConversion) -> str:
    """One line: each skip reason and each warning with its count, most frequent first (at most
    SUMMARY_REASONS_MAX of them: warnings name models, and a sender may use many)."""
    parts = [
        f"{count} span{'s' if count != 1 else ''} skipped: {reason}"
        for reason, count in sorted(conversion.skipped.items(), key=lambda item: -item[1])
    ]
    parts += [
        f"{count} span{'s' if count != 1 else ''} stored with a warning: {warning}"
        for warning, count in sorted(conversion.warnings.items(), key=lambda item: -item[1])
    ]
    if len(parts) > SUMMARY_REASONS_MAX:
        parts[SUMMARY_REASONS_MAX:] = [f"and {len(parts) - SUMMARY_REASONS_MAX} more reasons"]
    return "; ".join(parts)

"""The gateway's request handling: OpenAI-compatible `/v1/chat/completions` (plain and SSE
streaming) and `/v1/models`, routed per request to a tier, with fallback up the tiers and
accounting; served over HTTP by `raas.gateway.server`."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any, Final

import msgspec

from raas.core.events import RouteDecision
from raas.gateway.accounting import (
    EventSink,
    Identity,
    LedgerWriter,
    count_input_tokens,
    count_tokens,
    handoff_event,
    message_text,
    model_call_event,
    policy_text,
    route_decision,
)
from raas.gateway.server import Exchange, Headers, Source
from raas.gateway.tiers import TierConfig, TierFile
from raas.gateway.upstream import Endpoint, UpstreamError, UpstreamPool, UpstreamTimeout
from raas.router import Decision, EscalationMemory, Router, RouteRequest

HEADER_PREFIX: Final = b"x-raas-"
IDENTITY_FIELDS: Final = ("conversation", "customer", "tenant", "intent", "channel")
IDENTITY_LIMIT: Final = 256
_IDENTITY_HEADERS: Final = {HEADER_PREFIX + field.encode(): field for field in IDENTITY_FIELDS}
DEFAULT_TENANT: Final = "default"
RETRYABLE_STATUS: Final = frozenset({408, 409, 429})

MID_STREAM_ERROR: Final = (
    b'data: {"error":{"message":"the upstream failed mid-stream","type":"upstream_error"}}\n\n'
)

_encoder: Final = msgspec.json.Encoder()
_JSON_HEADERS: Final[Headers] = [(b"content-type", b"application/json")]
_SSE_HEADERS: Final[Headers] = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
]
# An SSE event ends with a blank line; servers end lines with LF or CRLF.
_SSE_EVENT_END: Final = re.compile(rb"(\r\n\r\n|\n\n)")
_EVENT_ENDS: Final = (b"\n\n", b"\r\n\r\n")
# Looked for with `find`, not `in`: `needle in data` first tries the needle as an integer and
# formats the TypeError it then drops, some 1,800 instructions a test (callgrind).
_USAGE: Final = b'"usage"'


class RequestError(Exception):
    """A request the gateway refuses (HTTP 400), naming the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class Gateway:
    """The gateway's handler: build with the tier file, a router and where events go (a ledger);
    `raas.gateway.server` serves it."""

    def __init__(
        self,
        tiers: TierFile,
        router: Router,
        sink: EventSink,
        *,
        memory: EscalationMemory | None = None,
    ) -> None:
        self.tiers = tiers
        self.router = router
        self.memory = memory or EscalationMemory()
        self.sink = sink
        self.writer: LedgerWriter | None = None
        self.pool: UpstreamPool | None = None
        self._policy = policy_text(router.policy)
        self._models_body = _encoder.encode(
            {
                "object": "list",
                "data": [
                    {"id": tier.name, "object": "model", "created": 0, "owned_by": "raas"}
                    for tier in tiers.tiers
                ],
            }
        )
        # Without a router model and without any model tier's `success`, the objective would
        # always pick the human tier (the only one with an estimate): serve the cheapest model
        # tier instead, still escalating on failures and obeying guardrails.
        self._cheapest_model_tiers: tuple[str, ...] = ()
        if router.predictor is None and all(
            tier.success is None for tier in tiers.tiers if tier.kind == "model"
        ):
            self._cheapest_model_tiers = tuple(
                tier.name
                for tier in sorted(router.policy.tiers, key=lambda tier: tier.cost)
                if tier.kind == "model"
            )
        self._endpoints: dict[str, Endpoint] = {}
        self._json_headers: dict[str, Headers] = {}
        self._sse_headers: dict[str, Headers] = {}
        for tier in tiers.tiers:
            tier_header = (b"x-raas-tier", tier.name.encode())
            self._json_headers[tier.name] = [*_JSON_HEADERS, tier_header]
            self._sse_headers[tier.name] = [*_SSE_HEADERS, tier_header]
            if tier.upstream is None:
                continue
            headers = {"content-type": "application/json"}
            if tier.api_key_environment:
                key = os.environ.get(tier.api_key_environment, "")
                if key:
                    headers["authorization"] = f"Bearer {key}"
            url = tier.upstream.rstrip("/") + "/chat/completions"
            self._endpoints[tier.name] = Endpoint(url, headers)

    # -- lifecycle -------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Open the upstream connection pool and start the ledger writer."""
        self.pool = UpstreamPool()
        self.writer = LedgerWriter(self.sink)
        self.writer.start()

    async def shutdown(self) -> None:
        """Write what is queued to the ledger and close the upstream connections."""
        if self.writer is not None:
            await self.writer.stop()
        if self.pool is not None:
            await self.pool.aclose()

    async def handle(self, exchange: Exchange) -> None:
        """Answer one request."""
        path, method = exchange.path, exchange.method
        if path == b"/v1/chat/completions":
            if method != b"POST":
                _error(exchange, 405, "use POST", "method")
                return
            await self._chat(exchange)
        elif path == b"/v1/models" and method == b"GET":
            exchange.respond(200, self._models_body, _JSON_HEADERS)
        else:
            route = f"{method.decode('latin-1')} {path.decode('latin-1')}"
            _error(exchange, 404, f"no route {route}", "path")

    # -- chat completions ------------------------------------------------------------------------

    async def _chat(self, exchange: Exchange) -> None:
        try:
            request = _parse_request(exchange.body)
            identity = _identify(exchange.headers, request)
        except RequestError as error:
            _error(exchange, 400, str(error), error.field)
            return
        stream = bool(request.get("stream"))
        forward = request
        if "metadata" in request:
            forward = {key: value for key, value in request.items() if key != "metadata"}
        client_wants_usage = False
        if stream:
            options = forward.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            client_wants_usage = bool(options.get("include_usage"))
            options["include_usage"] = True
            forward["stream_options"] = options
        messages = request["messages"]
        route_request = _route_request(messages, request, identity)
        tried: set[str] = set()
        attempt = 0
        while True:
            failed = self.memory.failed(identity.episode)
            if failed and route_request.earlier_failures != len(failed):
                route_request = msgspec.structs.replace(route_request, earlier_failures=len(failed))
            decision = self._decide(route_request, failed)
            attempt += 1
            if decision.tier in tried:
                _error(exchange, 502, "every tier failed for this request", "upstream")
                return
            tried.add(decision.tier)
            tier = self.tiers.tier(decision.tier)
            if decision.kind == "human":
                self._handoff(exchange, tier, identity, decision, attempt, stream)
                return
            forward["model"] = tier.model
            payload = _encoder.encode(forward)
            call = _Call(self, tier, identity, route_decision(decision, attempt, self._policy))
            if stream:
                served = await self._stream(exchange, call, payload, messages, client_wants_usage)
            else:
                served = await self._complete(exchange, call, payload, messages)
            if served:
                return
            self.memory.record_failure(identity.episode, tier.name)

    def _decide(self, request: RouteRequest, failed: frozenset[str]) -> Decision:
        decision = self.router.decide(request, failed_tiers=failed)
        if self._cheapest_model_tiers and decision.kind == "human" and decision.rule != "guardrail":
            for name in self._cheapest_model_tiers:
                if name not in decision.excluded:
                    return msgspec.structs.replace(
                        decision,
                        tier=name,
                        kind="model",
                        rule="only_tier",
                        reason="no router model and no model tier's success rate: "
                        "the cheapest model tier not failed in this episode",
                    )
        return decision

    async def _complete(
        self, exchange: Exchange, call: _Call, payload: bytes, messages: list[Any]
    ) -> bool:
        """One non-streaming call; False if the tier failed and the next one should be tried."""
        assert self.pool is not None
        tier = call.tier
        try:
            connection = await self.pool.post(self._endpoints[tier.name], payload, tier.timeout)
        except UpstreamError as failure:
            call.failed(messages, _problem(failure))
            return False
        try:
            status = connection.status
            if status >= 500 or status in RETRYABLE_STATUS:
                call.failed(messages, f"HTTP {status}")
                return False
            content = await connection.read()
        except UpstreamError as failure:
            call.failed(messages, _problem(failure))
            return False
        finally:
            connection.release()
        usage: Any = None
        output_text = ""
        try:
            answer = msgspec.json.decode(content)
        except msgspec.DecodeError:
            answer = None
        if isinstance(answer, dict):
            usage = answer.get("usage")
            if not _usage_tokens(usage):
                for choice in answer.get("choices") or ():
                    if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                        output_text += message_text(choice["message"].get("content"))
        problem = f"HTTP {status}" if status >= 400 else None
        call.served(messages, usage, output_text, time.perf_counter(), problem)
        exchange.respond(status, content, self._json_headers[tier.name])
        return True

    async def _stream(
        self,
        exchange: Exchange,
        call: _Call,
        payload: bytes,
        messages: list[Any],
        client_wants_usage: bool,
    ) -> bool:
        """One streaming call relayed as SSE; False if the tier failed before the first byte
        reached the agent (so the next tier can still answer)."""
        assert self.pool is not None
        tier = call.tier
        # A successful answer is started, relayed and ended from the upstream connection's
        # callbacks (see `_SseStream`); this task only accounts it at the end.
        relay = _SseStream(exchange, self._sse_headers[tier.name], client_wants_usage)
        try:
            connection = await self.pool.post(
                self._endpoints[tier.name], payload, tier.timeout, relay
            )
        except UpstreamError as failure:
            call.failed(messages, _problem(failure))
            return False
        try:
            status = connection.status
            if status < 400:  # taken by the relay
                broken: str | None = None
                try:
                    await connection.finished()
                except UpstreamError as failure:
                    broken = f"{_problem(failure)} mid-stream"
                    self.memory.record_failure(call.identity.episode, tier.name)
                    exchange.end(relay.finish() + MID_STREAM_ERROR)
                output_text = relay.text() if not _usage_tokens(relay.usage) else ""
                call.served(messages, relay.usage, output_text, relay.first_token, broken)
                return True
            if status >= 500 or status in RETRYABLE_STATUS:
                call.failed(messages, f"HTTP {status}")
                return False
            try:
                content = await connection.read()
            except UpstreamError as failure:
                call.failed(messages, _problem(failure))
                return False
            call.failed(messages, f"HTTP {status}")
            exchange.respond(status, content, self._json_headers[tier.name])
            return True
        finally:
            connection.release()

    def _handoff(
        self,
        exchange: Exchange,
        tier: TierConfig,
        identity: Identity,
        decision: Decision,
        attempt: int,
        stream: bool,
    ) -> None:
        """Answer with a transfer message the agent can act on, and record the handoff."""
        assert self.writer is not None
        self.writer.put(handoff_event(identity, route_decision(decision, attempt, self._policy)))
        self.memory.close(identity.episode)
        created = int(time.time())
        identifier = f"raas-handoff-{created}"
        transfer = {
            "handoff": True,
            "tier": tier.name,
            "reason": decision.reason,
            "conversation": identity.conversation,
        }
        headers_extra = [(b"x-raas-tier", tier.name.encode()), (b"x-raas-handoff", b"true")]
        if not stream:
            body = {
                "id": identifier,
                "object": "chat.completion",
                "created": created,
                "model": tier.name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": tier.handoff_message},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                "raas": transfer,
            }
            exchange.respond(200, _encoder.encode(body), [*_JSON_HEADERS, *headers_extra])
            return
        chunks: list[dict[str, Any]] = [
            {
                "delta": {"role": "assistant", "content": tier.handoff_message},
                "finish_reason": None,
            },
            {"delta": {}, "finish_reason": "stop"},
        ]
        parts = []
        for chunk in chunks:
            event = {
                "id": identifier,
                "object": "chat.completion.chunk",
                "created": created,
                "model": tier.name,
                "choices": [{"index": 0, **chunk}],
                "raas": transfer,
            }
            parts.append(b"data: " + _encoder.encode(event) + b"\n\n")
        parts.append(b"data: [DONE]\n\n")
        exchange.respond(200, b"".join(parts), [*_SSE_HEADERS, *headers_extra])


class _Call:
    """One upstream call being accounted: which tier, for whom, the router's decision, and when
    it started; `served` and `failed` put its `ModelCall` event on the ledger writer."""

    __slots__ = ("currency", "decision", "identity", "started", "tier", "writer")

    def __init__(
        self, gateway: Gateway, tier: TierConfig, identity: Identity, decision: RouteDecision
    ) -> None:
        assert gateway.writer is not None
        self.writer = gateway.writer
        self.currency = gateway.tiers.currency
        self.tier = tier
        self.identity = identity
        self.decision = decision
        self.started = time.perf_counter()

    def failed(self, messages: list[Any], error: str) -> None:
        self.served(messages, None, "", None, error)

    def served(
        self,
        messages: list[Any],
        usage: Any,
        output_text: str,
        first_token: float | None,
        error: str | None,
    ) -> None:
        now = time.perf_counter()
        tokens = _usage_tokens(usage)
        if tokens is not None:
            input_tokens, output_tokens = tokens
        else:
            input_tokens = count_input_tokens(messages)
            output_tokens = count_tokens(output_text) if error is None else 0
        event = model_call_event(
            self.identity,
            self.tier,
            self.currency,
            self.decision,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_seconds=now - self.started,
            first_token_seconds=first_token - self.started if first_token is not None else None,
            usage_counted=tokens is None and error is None,
            error=error,
        )
        self.writer.put(event)


class _SseRelay:
    """Passes the upstream's SSE bytes on whole events at a time, without decoding them: only
    an event that mentions usage is read (to account it, and to drop the usage-only chunk the
    gateway asked for when the agent did not). The events are kept until the end, in case no
    usage comes and the output has to be counted. `pass_on` takes a piece from the upstream and
    writes what can go on; the end of the stream goes out with `feed` and `finish`."""

    __slots__ = ("_buffer", "_keep_usage", "_relayed", "_write", "first_token", "usage")

    def __init__(self, keep_usage: bool, write: Callable[[bytes], None]) -> None:
        self._buffer = b""
        self._keep_usage = keep_usage
        self._relayed: list[bytes] = []
        self._write = write
        self.first_token: float | None = None
        self.usage: Any = None

    def pass_on(self, chunk: bytes) -> None:
        if self.first_token is None:
            self.first_token = time.perf_counter()
        # `feed`'s usual case inlined (this runs once per streamed event): whole events that
        # do not mention usage go on as they came.
        if not self._buffer and chunk.endswith(_EVENT_ENDS) and chunk.find(_USAGE) < 0:
            self._relayed.append(chunk)
            self._write(chunk)
            return
        out = self.feed(chunk)
        if out:
            self._write(out)

    def feed(self, chunk: bytes) -> bytes:
        if not self._buffer and chunk.endswith(_EVENT_ENDS):
            complete = chunk  # the usual case: the upstream wrote whole events
        else:
            data = self._buffer + chunk
            end = _events_end(data, len(data))
            if not end:
                self._buffer = data
                return b""
            complete, self._buffer = data[:end], data[end:]
        mention = complete.find(_USAGE)
        if mention >= 0:
            complete = self._read_usage(complete, mention)
        self._relayed.append(complete)
        return complete

    def finish(self, last: bytes = b"") -> bytes:
        """The end of the stream: what `last` (the bytes that came with the upstream's end)
        completes, then what was held back."""
        out = b""
        if last:
            if self.first_token is None:
                self.first_token = time.perf_counter()
            out = self.feed(last)
        rest, self._buffer = self._buffer, b""
        self._relayed.append(rest)
        return out + rest

    def text(self) -> str:
        """The streamed output text (deltas' content), read from every event relayed."""
        parts: list[str] = []
        for event in _SSE_EVENT_END.split(b"".join(self._relayed))[::2]:
            chunk = _event_json(event)
            if isinstance(chunk, dict):
                for choice in chunk.get("choices") or ():
                    if isinstance(choice, dict):
                        delta = choice.get("delta")
                        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                            parts.append(delta["content"])
        return "".join(parts)

    def _read_usage(self, complete: bytes, mention: int) -> bytes:
        """Read the events that mention usage (the first mention at `mention`); drop the
        usage-only one if not wanted."""
        # Only the events from the first mention on are read: an answer that came in one piece
        # has its usage near the end, after all its content events.
        start = _events_end(complete, mention)
        if complete.find(_USAGE, mention + len(_USAGE)) < 0:
            # The usual case: one event mentions usage, and only it is read. It ends where the
            # first event end after the mention begins (no event end lies between `start` and
            # the mention), as splitting the events from `start` would find.
            lf, crlf = complete.find(b"\n\n", mention), complete.find(b"\r\n\r\n", mention)
            end, after = (crlf, crlf + 4) if 0 <= crlf < lf or lf < 0 else (lf, lf + 2)
            chunk = _usage_chunk(complete[start:end])
            if chunk is not None and isinstance(chunk.usage, dict):
                self.usage = chunk.usage
                if not self._keep_usage and _empty(chunk.choices):
                    return complete[:start] + complete[after:]
            return complete
        head, complete = complete[:start], complete[start:]
        parts = _SSE_EVENT_END.split(complete)  # event, its end, event, its end, ..., b""
        for position in range(0, len(parts) - 1, 2):
            if parts[position].find(_USAGE) >= 0:
                chunk = _usage_chunk(parts[position])
                if chunk is not None and isinstance(chunk.usage, dict):
                    self.usage = chunk.usage
                    if not self._keep_usage and _empty(chunk.choices):
                        parts[position] = parts[position + 1] = b""
        return head + b"".join(parts)


class _SseStream(_SseRelay):
    """The relay as the upstream connection's stream: a successful answer starts the agent's
    response when the upstream's headers come, each piece goes on as it arrives, and the end
    with the upstream's, all from the connection's callbacks, so that neither the first byte
    nor the last waits for the request's task to be scheduled behind the other connections'
    work. Other answers are left to the task."""

    __slots__ = ("_exchange", "_headers")

    def __init__(self, exchange: Exchange, headers: Headers, keep_usage: bool) -> None:
        super().__init__(keep_usage, exchange.write)
        self._exchange = exchange
        self._headers = headers

    def begin(self, status: int, source: Source) -> bool:
        if status >= 400:
            return False
        self._exchange.start(200, self._headers)  # sent with the first events
        self._exchange.stream_from(source)  # paused while the agent reads slower
        return True

    def end(self, data: bytes) -> None:
        self._exchange.end(self.finish(data))  # what came with the end goes out with it


def _events_end(data: bytes, before: int) -> int:
    """Where the last whole event that ends before `before` ends (0 if none does)."""
    lf, crlf = data.rfind(b"\n\n", 0, before), data.rfind(b"\r\n\r\n", 0, before)
    return max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)


def _event_data(event: bytes) -> bytes:
    """The data of an SSE event: its data lines' values, joined."""
    if event.startswith(b"data:") and event.find(b"\n") < 0:  # the usual event: one data line
        return event[5:].strip()
    return b"".join(line[5:].strip() for line in event.splitlines() if line.startswith(b"data:"))


def _event_json(event: bytes) -> Any:
    """The JSON of an SSE event's data lines, or None (a comment, [DONE], not JSON)."""
    data = _event_data(event)
    if not data or data == b"[DONE]":
        return None
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None


class _UsageChunk(msgspec.Struct):
    """What the relay reads of a chunk that mentions usage; the rest is skipped, choices kept
    undecoded."""

    usage: Any = None
    choices: msgspec.Raw = msgspec.Raw(b"null")


_usage_decoder: Final = msgspec.json.Decoder(_UsageChunk)
_NO_CHOICES: Final = frozenset({b"null", b"[]"})


def _usage_chunk(event: bytes) -> _UsageChunk | None:
    """The usage and choices of an SSE event that is a JSON object, or None."""
    try:
        return _usage_decoder.decode(_event_data(event))
    except msgspec.DecodeError:  # not JSON, or not an object
        return None


def _empty(choices: msgspec.Raw) -> bool:
    """Whether a chunk's choices are missing, null or empty."""
    raw = bytes(choices)
    return raw in _NO_CHOICES or not msgspec.json.decode(raw)


def _usage_tokens(usage: Any) -> tuple[int, int] | None:
    """(input, output) tokens from an OpenAI `usage` object, or None if it has no counts."""
    if isinstance(usage, dict):
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if type(prompt) is int and type(completion) is int and prompt >= 0 and completion >= 0:
            return prompt, completion
    return None


def _problem(failure: UpstreamError) -> str:
    return "timeout" if isinstance(failure, UpstreamTimeout) else str(failure)


def _parse_request(body: bytes) -> dict[str, Any]:
    try:
        request = msgspec.json.decode(body)
    except msgspec.DecodeError as error:
        raise RequestError("body", f"not JSON: {error}") from error
    if not isinstance(request, dict):
        raise RequestError("body", "expected a JSON object")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages", "expected a non-empty list of messages")
    metadata = request.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise RequestError("metadata", "expected an object")
    return request


def _identify(headers: Headers, request: dict[str, Any]) -> Identity:
    """The request's tenant, customer, conversation, intent and channel: `X-Raas-...` headers
    first, then the request's `metadata`; the conversation is required."""
    found: dict[str, str] = {}
    for raw_name, raw_value in headers:  # names in lower case
        field = _IDENTITY_HEADERS.get(raw_name)
        if field is not None:
            found[field] = raw_value.decode("utf-8", "replace")
    metadata = request.get("metadata")
    if metadata:
        for field in IDENTITY_FIELDS:
            if field not in found and field in metadata:
                value = metadata[field]
                if not isinstance(value, str):
                    raise RequestError(f"metadata.{field}", "expected a string")
                found[field] = value
    for field, value in found.items():
        if not 0 < len(value) <= IDENTITY_LIMIT:
            raise RequestError(field, f"expected 1 to {IDENTITY_LIMIT} characters")
    conversation = found.get("conversation")
    if conversation is None:
        raise RequestError(
            "conversation", "name it in the X-Raas-Conversation header or metadata.conversation"
        )
    return Identity(
        tenant=found.get("tenant", DEFAULT_TENANT),
        customer=found.get("customer", conversation),
        conversation=conversation,
        intent=found.get("intent"),
        channel=found.get("channel"),
    )


def _route_request(
    messages: list[Any], request: dict[str, Any], identity: Identity
) -> RouteRequest:
    text = ""
    turns = 0
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            turns += 1
            text = message_text(message.get("content"))
    tools: list[str] = []
    for tool in request.get("tools") or ():
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            name = tool["function"].get("name")
            if isinstance(name, str):
                tools.append(name)
    return RouteRequest(
        text=text,
        intent=identity.intent,
        channel=identity.channel,
        turn=max(turns, 1),
        tools=tuple(tools),
    )


def _error(exchange: Exchange, status: int, message: str, field: str) -> None:
    kind = "invalid_request_error" if status < 500 else "upstream_error"
    body = _encoder.encode({"error": {"message": message, "type": kind, "param": field}})
    exchange.respond(status, body, _JSON_HEADERS)

"""The gateway's ASGI app: OpenAI-compatible `/v1/chat/completions` (plain and SSE streaming)
and `/v1/models`, routed per request to a tier, with fallback up the tiers and accounting."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import httpx
import msgspec

from raas.gateway.accounting import (
    EventSink,
    Identity,
    LedgerWriter,
    count_input_tokens,
    count_tokens,
    handoff_event,
    message_text,
    model_call_event,
)
from raas.gateway.tiers import TierConfig, TierFile
from raas.router import Decision, EscalationMemory, Router, RouteRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HEADER_PREFIX: Final = "x-raas-"
IDENTITY_FIELDS: Final = ("conversation", "customer", "tenant", "intent", "channel")
IDENTITY_LIMIT: Final = 256
DEFAULT_TENANT: Final = "default"
RETRYABLE_STATUS: Final = frozenset({408, 409, 429})
CONNECTION_LIMIT: Final = 1000

MID_STREAM_ERROR: Final = (
    b'data: {"error":{"message":"the upstream failed mid-stream","type":"upstream_error"}}\n\n'
)

_encoder: Final = msgspec.json.Encoder()
_JSON_HEADERS: Final = [(b"content-type", b"application/json")]
_SSE_HEADERS: Final = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class RequestError(Exception):
    """A request the gateway refuses (HTTP 400), naming the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class Gateway:
    """An ASGI app: build with the tier file, a router and where events go (a ledger)."""

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
        self.client: httpx.AsyncClient | None = None
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
        self._upstream_headers: dict[str, dict[str, str]] = {}
        for tier in tiers.tiers:
            headers = {"content-type": "application/json"}
            if tier.api_key_environment:
                key = os.environ.get(tier.api_key_environment, "")
                if key:
                    headers["authorization"] = f"Bearer {key}"
            self._upstream_headers[tier.name] = headers

    # -- lifecycle -------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Open the pooled upstream client and start the ledger writer."""
        limits = httpx.Limits(
            max_connections=CONNECTION_LIMIT, max_keepalive_connections=CONNECTION_LIMIT
        )
        self.client = httpx.AsyncClient(limits=limits, timeout=None)
        self.writer = LedgerWriter(self.sink)
        self.writer.start()

    async def shutdown(self) -> None:
        """Write what is queued to the ledger and close the upstream client."""
        if self.writer is not None:
            await self.writer.stop()
        if self.client is not None:
            await self.client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/v1/chat/completions":
            if method != "POST":
                await _error(send, 405, "use POST", "method")
                return
            await self._chat(scope, receive, send)
        elif path == "/v1/models" and method == "GET":
            await _respond(send, 200, self._models_body, _JSON_HEADERS)
        else:
            await _error(send, 404, f"no route {method} {path}", "path")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- chat completions ------------------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read_body(receive)
        try:
            request = _parse_request(body)
            identity = _identify(scope, request)
        except RequestError as error:
            await _error(send, 400, str(error), error.field)
            return
        stream = bool(request.get("stream"))
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
                await _error(send, 502, "every tier failed for this request", "upstream")
                return
            tried.add(decision.tier)
            tier = self.tiers.tier(decision.tier)
            if decision.kind == "human":
                await self._handoff(send, tier, identity, decision, attempt, stream)
                return
            forward["model"] = tier.model
            payload = _encoder.encode(forward)
            if stream:
                served = await self._stream(
                    send, tier, payload, messages, identity, decision, attempt, client_wants_usage
                )
            else:
                served = await self._complete(
                    send, tier, payload, messages, identity, decision, attempt
                )
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

    def _account(
        self,
        identity: Identity,
        tier: TierConfig,
        decision: Decision,
        attempt: int,
        messages: list[Any],
        usage: Any,
        output_text: str,
        started: float,
        first_token: float | None,
        error: str | None = None,
    ) -> None:
        now = time.perf_counter()
        input_tokens = output_tokens = None
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                input_tokens, output_tokens = prompt, completion
        counted = input_tokens is None or output_tokens is None
        if input_tokens is None or output_tokens is None:
            input_tokens = count_input_tokens(messages)
            output_tokens = count_tokens(output_text) if error is None else 0
        event = model_call_event(
            identity,
            tier,
            self.tiers.currency,
            decision,
            attempt,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            latency_seconds=now - started,
            first_token_seconds=first_token - started if first_token is not None else None,
            usage_counted=counted and error is None,
            error=error,
        )
        assert self.writer is not None
        self.writer.put(event)

    async def _complete(
        self,
        send: Send,
        tier: TierConfig,
        payload: bytes,
        messages: list[Any],
        identity: Identity,
        decision: Decision,
        attempt: int,
    ) -> bool:
        """One non-streaming call; False if the tier failed and the next one should be tried."""
        assert self.client is not None
        started = time.perf_counter()
        try:
            response = await self.client.post(
                _url(tier),
                content=payload,
                headers=self._upstream_headers[tier.name],
                timeout=tier.timeout,
            )
        except httpx.TimeoutException:
            self._account(
                identity, tier, decision, attempt, messages, None, "", started, None, "timeout"
            )
            return False
        except httpx.HTTPError as failure:
            self._account(
                identity,
                tier,
                decision,
                attempt,
                messages,
                None,
                "",
                started,
                None,
                type(failure).__name__,
            )
            return False
        status = response.status_code
        if status >= 500 or status in RETRYABLE_STATUS:
            self._account(
                identity,
                tier,
                decision,
                attempt,
                messages,
                None,
                "",
                started,
                None,
                f"HTTP {status}",
            )
            return False
        content = response.content
        usage: Any = None
        output_text = ""
        try:
            answer = msgspec.json.decode(content)
        except msgspec.DecodeError:
            answer = None
        if isinstance(answer, dict):
            usage = answer.get("usage")
            for choice in answer.get("choices") or ():
                if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
                    output_text += message_text(choice["message"].get("content"))
        problem = f"HTTP {status}" if status >= 400 else None
        self._account(
            identity,
            tier,
            decision,
            attempt,
            messages,
            usage,
            output_text,
            started,
            time.perf_counter(),
            problem,
        )
        headers = [*_JSON_HEADERS, (b"x-raas-tier", tier.name.encode())]
        await _respond(send, status, content, headers)
        return True

    async def _stream(
        self,
        send: Send,
        tier: TierConfig,
        payload: bytes,
        messages: list[Any],
        identity: Identity,
        decision: Decision,
        attempt: int,
        client_wants_usage: bool,
    ) -> bool:
        """One streaming call relayed as SSE; False if the tier failed before the first byte
        reached the agent (so the next tier can still answer)."""
        assert self.client is not None
        started = time.perf_counter()
        request = self.client.build_request(
            "POST",
            _url(tier),
            content=payload,
            headers=self._upstream_headers[tier.name],
            timeout=tier.timeout,
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            self._account(
                identity, tier, decision, attempt, messages, None, "", started, None, "timeout"
            )
            return False
        except httpx.HTTPError as failure:
            self._account(
                identity,
                tier,
                decision,
                attempt,
                messages,
                None,
                "",
                started,
                None,
                type(failure).__name__,
            )
            return False
        try:
            status = response.status_code
            if status >= 500 or status in RETRYABLE_STATUS:
                self._account(
                    identity,
                    tier,
                    decision,
                    attempt,
                    messages,
                    None,
                    "",
                    started,
                    None,
                    f"HTTP {status}",
                )
                return False
            if status >= 400:
                content = await response.aread()
                self._account(
                    identity,
                    tier,
                    decision,
                    attempt,
                    messages,
                    None,
                    "",
                    started,
                    None,
                    f"HTTP {status}",
                )
                await _respond(
                    send, status, content, [*_JSON_HEADERS, (b"x-raas-tier", tier.name.encode())]
                )
                return True
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*_SSE_HEADERS, (b"x-raas-tier", tier.name.encode())],
                }
            )
            relay = _SseRelay(client_wants_usage)
            first_token: float | None = None
            broken: str | None = None
            try:
                async for chunk in response.aiter_raw():
                    if first_token is None:
                        first_token = time.perf_counter()
                    out = relay.feed(chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
            except httpx.TimeoutException:
                broken = "timeout mid-stream"
            except httpx.HTTPError as failure:
                broken = f"{type(failure).__name__} mid-stream"
            tail = relay.finish()
            if broken is not None:
                tail += MID_STREAM_ERROR
                self.memory.record_failure(identity.episode, tier.name)
            await send({"type": "http.response.body", "body": tail, "more_body": False})
            self._account(
                identity, tier, decision, attempt, messages, relay.usage, "".join(relay.text),
                started, first_token, broken,
            )  # fmt: skip
            return True
        finally:
            await response.aclose()

    async def _handoff(
        self,
        send: Send,
        tier: TierConfig,
        identity: Identity,
        decision: Decision,
        attempt: int,
        stream: bool,
    ) -> None:
        """Answer with a transfer message the agent can act on, and record the handoff."""
        assert self.writer is not None
        self.writer.put(handoff_event(identity, decision, attempt))
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
            await _respond(send, 200, _encoder.encode(body), [*_JSON_HEADERS, *headers_extra])
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
        await _respond(send, 200, b"".join(parts), [*_SSE_HEADERS, *headers_extra])


class _SseRelay:
    """Splits the upstream's SSE bytes into events, notes usage and the streamed text, and drops
    the usage-only chunk the gateway asked for when the agent did not ask for it."""

    __slots__ = ("_buffer", "_keep_usage", "text", "usage")

    def __init__(self, keep_usage: bool) -> None:
        self._buffer = b""
        self._keep_usage = keep_usage
        self.usage: Any = None
        self.text: list[str] = []

    def feed(self, chunk: bytes) -> bytes:
        data = self._buffer + chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return b""
        self._buffer = data[end + 2 :]
        complete = data[: end + 2]
        out = []
        for event in complete.split(b"\n\n"):
            if event and self._keep(event):
                out.append(event + b"\n\n")
        return b"".join(out)

    def finish(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest

    def _keep(self, event: bytes) -> bool:
        for line in event.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]" or not data:
                continue
            try:
                chunk = msgspec.json.decode(data)
            except msgspec.DecodeError:
                continue
            if not isinstance(chunk, dict):
                continue
            choices = chunk.get("choices") or []
            for choice in choices:
                if isinstance(choice, dict):
                    delta = choice.get("delta")
                    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                        self.text.append(delta["content"])
            if chunk.get("usage"):
                self.usage = chunk["usage"]
                if not choices and not self._keep_usage:
                    return False
        return True


def _url(tier: TierConfig) -> str:
    assert tier.upstream is not None
    return tier.upstream.rstrip("/") + "/chat/completions"


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


def _identify(scope: Scope, request: dict[str, Any]) -> Identity:
    """The request's tenant, customer, conversation, intent and channel: `X-Raas-...` headers
    first, then the request's `metadata`; the conversation is required."""
    found: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        if name.startswith(HEADER_PREFIX):
            field = name[len(HEADER_PREFIX) :]
            if field in IDENTITY_FIELDS:
                found[field] = raw_value.decode("utf-8", "replace")
    metadata = request.get("metadata") or {}
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


async def _read_body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, message: str, field: str) -> None:
    kind = "invalid_request_error" if status < 500 else "upstream_error"
    body = _encoder.encode({"error": {"message": message, "type": kind, "param": field}})
    await _respond(send, status, body, _JSON_HEADERS)

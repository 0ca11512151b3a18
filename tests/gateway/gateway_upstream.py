"""A small OpenAI-protocol upstream for gateway tests, a helper that runs any ASGI app under
uvicorn on a free port in a background thread, and one that serves a gateway so.

The upstream behaves by the model asked for: "ok" answers (with usage), "nousage" answers
without usage, "fail" answers HTTP 500, "slow" waits `SLOW_SECONDS` before answering, "drip"
streams one word every `DRIP_SECONDS`, "cut" breaks its stream off after the first word.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal

import msgspec
import uvicorn

from raas.gateway import Gateway, GatewayServer

SLOW_SECONDS = 5.0
DRIP_SECONDS = 0.05

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class FakeUpstream:
    """An ASGI OpenAI-compatible chat server that echoes the last user message."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await _respond(send, 200, b'{"object":"list","data":[]}', "application/json")
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = msgspec.json.decode(body)
        self.bodies.append(request)
        model = request.get("model", "")
        self.calls[model] += 1
        if model == "fail":
            await _respond(send, 500, b'{"error":{"message":"boom"}}', "application/json")
            return
        if model == "slow":
            await asyncio.sleep(SLOW_SECONDS)
        text = "echo: " + str(request["messages"][-1].get("content", ""))
        words = text.split(" ")
        usage = {
            "prompt_tokens": 11,
            "completion_tokens": len(words),
            "total_tokens": 11 + len(words),
        }
        with_usage = model != "nousage"
        if not request.get("stream"):
            answer: dict[str, Any] = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
            }
            if with_usage:
                answer["usage"] = usage
            await _respond(send, 200, msgspec.json.encode(answer), "application/json")
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        for position, word in enumerate(words):
            piece = word if position == 0 else " " + word
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            await _event(send, msgspec.json.encode(chunk))
            if model == "cut":
                raise ConnectionAbortedError("the upstream broke off")  # uvicorn drops it
            if model == "drip":
                await asyncio.sleep(DRIP_SECONDS)
        final = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "model": model,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        await _event(send, msgspec.json.encode(final))
        options = request.get("stream_options") or {}
        if with_usage and options.get("include_usage"):
            usage_chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model}
            await _event(send, msgspec.json.encode({**usage_chunk, "choices": [], "usage": usage}))
        await _event(send, b"[DONE]")
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _event(send: Send, data: bytes) -> None:
    await send(
        {"type": "http.response.body", "body": b"data: " + data + b"\n\n", "more_body": True}
    )


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ServerThread:
    """Runs an ASGI app under uvicorn on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app: Any, *, lifespan: Literal["auto", "on", "off"] = "auto") -> None:
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exception: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class GatewayThread:
    """Serves a gateway as `raas gateway` does (its own HTTP server, uvloop where installed) on
    127.0.0.1 and a free port, in a background thread; leaving stops it (the ledger flushed)."""

    def __init__(self, gateway: Gateway) -> None:
        self.server = GatewayServer(gateway, self._failed)
        self.failures: list[BaseException] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = threading.Event()
        self.stopped: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _failed(self, error: BaseException) -> None:
        self.failures.append(error)

    def _run(self) -> None:
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        self.loop = loop

        async def main() -> None:
            self.stopped = asyncio.Event()
            await self.server.start("127.0.0.1", 0)
            self.started.set()
            await self.stopped.wait()
            await self.server.stop()

        loop.run_until_complete(main())
        loop.close()

    def __enter__(self) -> GatewayThread:
        self.thread.start()
        if not self.started.wait(10):
            raise RuntimeError("the gateway did not start")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def __exit__(self, *exception: object) -> None:
        assert self.loop is not None and self.stopped is not None
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(timeout=10)
        assert not self.failures, self.failures

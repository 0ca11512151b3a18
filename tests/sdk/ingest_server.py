"""A real ingest endpoint for the SDK tests until the service app exists: the ingest boundary
(`parse_batch`) and a real SQLite ledger behind `POST /v1/events`, plus a fault gate in front
that can fail requests after the ledger stored them (a lost acknowledgement) or hold them."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from raas.errors import BatchRejected
from raas.ingest.validate import parse_batch
from raas.ledger.sqlite import SqliteLedger

Scope = dict[str, Any]


class IngestApp:
    def __init__(self, ledger: SqliteLedger, keys: dict[str, str]) -> None:
        self.ledger = ledger
        self.keys = keys  # bearer key -> tenant
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.requests += 1
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        tenant = self.keys.get(headers.get(b"authorization", b"").decode().removeprefix("Bearer "))
        if tenant is None:
            await _answer(send, 401, {"title": "Unauthorized", "detail": "unknown key"})
            return
        try:
            events = parse_batch(body)
        except BatchRejected as error:
            await _answer(send, 400, {"title": "Bad Request", "detail": str(error)})
            return
        if any(event.tenant != tenant for event in events):
            await _answer(send, 403, {"title": "Forbidden", "detail": "another tenant's event"})
            return
        receipt = await asyncio.to_thread(self.ledger.append, events)
        await _answer(send, 200, {"accepted": receipt.stored, "duplicates": receipt.duplicates})


class FaultGate:
    """Wraps an app: the next `fail_after_store` requests reach the app but answer 503; the
    next `refuse` requests answer 503 without reaching it; while `held` is clear, requests wait."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.fail_after_store = 0
        self.refuse = 0
        self.held = threading.Event()
        self.held.set()
        self.failed = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        while not self.held.is_set():
            await asyncio.sleep(0.01)
        if self.refuse > 0:
            self.refuse -= 1
            self.failed += 1
            await _answer(send, 503, {"title": "Service Unavailable"}, retry_after="0")
            return
        if self.fail_after_store > 0:
            self.fail_after_store -= 1
            self.failed += 1

            async def swallow(message: dict[str, Any]) -> None:
                pass

            await self.app(scope, receive, swallow)
            await _answer(send, 503, {"title": "Service Unavailable"})
            return
        await self.app(scope, receive, send)


async def _answer(
    send: Any, status: int, body: dict[str, Any], retry_after: str | None = None
) -> None:
    headers = [(b"content-type", b"application/json")]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free loopback port in a thread; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()

"""A fault gate in front of the real service app: it can fail requests after the ledger stored
them (a lost acknowledgement), refuse them, or hold them (a service that stopped answering)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

Scope = dict[str, Any]


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

"""Bounds on what one request may take: its body's size and arrival time, its handling time, and
each key's request rate (a token bucket).

`RequestLimits` is plain ASGI, outside the framework: it reads the body whole (refusing it with
413 past its limit and 408 when it arrives too slowly), then hands it on, so a handler never
sees a body larger than its route allows. A handler that overruns its time gets 503 with
Retry-After; the work it started may finish (settlement runs record their own end).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from raas.service.problems import ServiceError, error_body

__all__ = ["RequestLimits", "TokenBuckets"]

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_App = Callable[[_Scope, _Receive, _Send], Awaitable[None]]

BUCKETS_MAX: Final = 100_000
RETRY_AFTER_SECONDS_MIN: Final = 1


class TokenBuckets:
    """One token bucket per key: `burst` tokens at most, refilled at `rate_per_second`.

    `clock` is injectable (monotonic seconds) so tests decide time instead of waiting for it.
    Buckets of keys unseen the longest are dropped past BUCKETS_MAX (a dropped key starts full).
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError(f"rate {rate_per_second}/s and burst {burst} must be positive")
        self._rate = rate_per_second
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> tokens, at

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take `cost` tokens; 0 when allowed, else the seconds until they would be there."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - at) * self._rate)
            wait = 0.0
            if tokens >= cost:
                tokens -= cost
            else:
                wait = (cost - tokens) / self._rate
            self._buckets[key] = (tokens, now)  # re-inserted last: dicts keep insertion order
            while len(self._buckets) > BUCKETS_MAX:
                del self._buckets[next(iter(self._buckets))]
            return wait

    def check(self, key: str) -> None:
        """Raise a 429 problem when the key has no token left."""
        wait = self.take(key)
        if wait > 0:
            retry = max(RETRY_AFTER_SECONDS_MIN, int(wait + 0.999))
            raise ServiceError(
                429,
                "rate-limited",
                "Too many requests",
                f"this key may make {self._rate:g} requests per second (bursts of "
                f"{self._burst:g}); retry after {retry} s",
                headers={"Retry-After": str(retry)},
            )


class RequestLimits:
    """ASGI middleware: body size and arrival time, and a deadline for the whole request."""

    def __init__(
        self,
        app: _App,
        *,
        body_bytes_max: Callable[[str], int],
        body_timeout_seconds: float,
        request_timeout_seconds: float,
    ) -> None:
        self._app = app
        self._body_bytes_max = body_bytes_max
        self._body_timeout_seconds = body_timeout_seconds
        self._request_timeout_seconds = request_timeout_seconds

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = self._body_bytes_max(path)
        try:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                raise _too_large(limit, f"{declared:,} bytes are declared (Content-Length)")
            body = await asyncio.wait_for(_read_body(receive, limit), self._body_timeout_seconds)
        except TimeoutError:
            await _send_problem(
                send,
                ServiceError(
                    408,
                    "request-timeout",
                    "Request body too slow",
                    f"the body did not arrive within {self._body_timeout_seconds:g} s",
                ),
                scope,
            )
            return
        except ServiceError as error:
            await _send_problem(send, error, scope)
            return
        if body is None:  # the client went away
            return
        started = False
        delivered = False

        async def replay() -> _Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def watched(message: _Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self._app(scope, replay, watched), self._request_timeout_seconds)
        except TimeoutError:
            if started:
                raise
            await _send_problem(
                send,
                ServiceError(
                    503,
                    "request-timeout",
                    "The request took too long",
                    f"handling took more than {self._request_timeout_seconds:g} s; "
                    "work it started may still finish: read it back before retrying",
                    headers={"Retry-After": str(RETRY_AFTER_SECONDS_MIN)},
                ),
                scope,
            )


def _header(scope: _Scope, wanted: bytes) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return bytes(value)
    return None


def _content_length(scope: _Scope) -> int | None:
    value = _header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ServiceError(
            400, "bad-request", "Bad request", "Content-Length is not a number"
        ) from None


def _too_large(limit: int, found: str) -> ServiceError:
    return ServiceError(
        413,
        "body-too-large",
        "Request body too large",
        f"{found}; this endpoint takes at most {limit:,} bytes",
    )


async def _read_body(receive: _Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, f"more than {size:,} bytes were sent")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_problem(send: _Send, error: ServiceError, scope: _Scope) -> None:
    content_type = _header(scope, b"content-type") or b""
    body, media_type = error_body(error, str(scope.get("path", "")), content_type.decode("latin-1"))
    headers = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    if error.status in (408, 413):
        # The rest of the body is not read: the connection cannot carry another request.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
